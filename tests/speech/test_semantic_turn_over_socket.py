"""Semantic end of turn over a real socket: a pause mid-sentence does not end the turn."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import connect, make_services, running_app
from tests.speech.sounds import silence
from tests.speech.test_offline_over_socket import speak_in_real_time
from voiceagent.brain import OfflineBrain
from voiceagent.models.offline import OfflineModel, OfflineModelConfig
from voiceagent.speech.turn_detector import TurnVerdict, find_turn_model
from voiceagent.speech.voices import load_voice


@pytest.mark.skipif(find_turn_model() is None, reason="the end-of-turn model is not installed")
@pytest.mark.parametrize("semantic", [True, False], ids=["semantic", "vad-only"])
async def test_a_pause_mid_sentence_ends_the_turn_only_without_the_model(semantic: bool) -> None:
    voice = load_voice("en")
    # "...a flight to" [1.2 s] "Paris on Friday.": the VAD ends a turn after 0.5 s of
    # silence; the model hears an unfinished sentence and keeps the turn open.
    spoken = (
        silence(0.3)
        + voice.synthesize("I would like to book a flight to")
        + silence(1.2)
        + voice.synthesize("Paris on Friday.")
        + silence(1.0)
    )
    model = OfflineModel(
        OfflineModelConfig(semantic_turn=semantic, delta_interval_s=0.0),
        brain_factory=OfflineBrain,
    )
    async with running_app(make_services(model, None)) as address, connect(address) as client:
        await client.wait_for("session_started")
        await speak_in_real_time(client, spoken)
        for _ in range(1 if semantic else 2):
            await client.wait_for("user_transcript", within=30)
        await client.drain(2.0)  # nothing more comes (the model's max delay is long past)
    starts = client.of_type("input_speech_started")
    transcripts = client.of_type("user_transcript")
    if semantic:
        assert len(starts) == 1 and len(transcripts) == 1
        assert len(client.of_type("input_speech_stopped")) == 1
        # Both parts in one transcript: more words than the first part's eight. (Which
        # words the recogniser hears varies with the synthesised voice, so no word is
        # required by name.)
        words = transcripts[0]["text"].lower().split()
        assert len(words) >= 9, words
    else:
        assert len(starts) == 2 and len(transcripts) == 2


class CertainModel:
    """An end-of-turn model that calls every pause the end of the turn, as Smart Turn
    often does on a synthetic voice reading digits: the words alone keep the turn."""

    async def decide(self, pcm16: bytes) -> TurnVerdict:
        await trio.sleep(0.01)
        return TurnVerdict(True, 0.99, 0.01)


@pytest.mark.parametrize("words", [True, False], ids=["words", "no-words"])
async def test_a_number_read_in_groups_stays_one_turn_when_the_words_are_checked(
    words: bool,
) -> None:
    voice = load_voice("en")
    spoken = (
        silence(0.3)
        + voice.synthesize("My phone number is five five five,")
        + silence(1.2)
        + voice.synthesize("two one three, four four seven nine.")
        + silence(1.0)
    )
    model = OfflineModel(
        OfflineModelConfig(semantic_turn=True, turn_words=words, delta_interval_s=0.0),
        brain_factory=OfflineBrain,
        turn_detector=CertainModel(),  # type: ignore[arg-type]
    )
    async with running_app(make_services(model, None)) as address, connect(address) as client:
        await client.wait_for("session_started")
        await speak_in_real_time(client, spoken)
        for _ in range(1 if words else 2):
            await client.wait_for("user_transcript", within=30)
        await client.drain(2.0)
    transcripts = [event["text"].lower() for event in client.of_type("user_transcript")]
    if words:
        # One turn with every group in it (the recogniser's spelling of the digits
        # varies; "nine" ends the number either way).
        assert len(transcripts) == 1, transcripts
        assert transcripts[0].split()[-1] == "nine", transcripts
        assert len(client.of_type("input_speech_stopped")) == 1
    else:
        assert len(transcripts) == 2, transcripts
