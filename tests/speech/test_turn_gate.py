"""The offline model's turn gate: model verdicts, the words check, model and recogniser
errors, and the wall-clock backstop."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from voiceagent.models.offline_turns import TurnGate, vad_config_for
from voiceagent.speech.stt import SpeechRecognitionError
from voiceagent.speech.turn_detector import TurnModelError, TurnVerdict
from voiceagent.speech.turn_end import EAGERNESS, EARLY_PAUSE_MS
from voiceagent.speech.vad import SpeechPause, SpeechStop, VadConfig


class FakeDetector:
    """Answers with a fixed probability (or raises) after `delay` seconds."""

    def __init__(self, probability: float | None, delay: float = 0.05) -> None:
        self.probability = probability
        self.delay = delay
        self.asked: list[bytes] = []

    async def decide(self, pcm16: bytes) -> TurnVerdict:
        self.asked.append(pcm16)
        await trio.sleep(self.delay)
        if self.probability is None:
            raise TurnModelError("broken model")
        return TurnVerdict(self.probability > 0.5, self.probability, self.delay)


class FakeWords:
    """A recogniser that hears `text` (or fails on None) after `delay` seconds; given a
    list, one answer per call."""

    def __init__(self, text: str | list[str] | None, delay: float = 0.2) -> None:
        self.answers = text if isinstance(text, list) else None
        self.text = text
        self.delay = delay
        self.asked: list[bytes] = []

    async def __call__(self, pcm16: bytes) -> str:
        self.asked.append(pcm16)
        await trio.sleep(self.delay)
        text = self.answers.pop(0) if self.answers is not None else self.text
        if text is None:
            raise SpeechRecognitionError("speech recognition worker exited")
        assert isinstance(text, str)
        return text


async def gate_run(
    detector: Any, script: Any, within: float = 10, words: FakeWords | None = None
) -> list[tuple[float, SpeechStop, str | None]]:
    """Run `script` against a gate; the commits it made within `within` seconds."""
    commits: list[tuple[float, SpeechStop, str | None]] = []

    async def commit(turn: SpeechStop, transcript: str | None) -> None:
        commits.append((trio.current_time(), turn, transcript))

    with trio.move_on_after(within):
        async with trio.open_nursery() as nursery:
            gate = TurnGate(
                detector,
                eagerness=EAGERNESS["auto"],
                max_turn_ms=30_000,
                nursery=nursery,
                commit=commit,
                transcribe=words,
            )
            await script(gate)
    return commits


@pytest.mark.parametrize("probability, committed", [(0.95, True), (0.2, False)])
async def test_the_verdict_decides_whether_a_vad_stop_ends_the_turn(
    probability: float, committed: bool
) -> None:
    detector = FakeDetector(probability)

    async def script(gate: TurnGate) -> None:
        gate.speech_paused(SpeechPause(0, 800, b"abcd"))
        await trio.sleep(0.3)
        await gate.speech_stopped(SpeechStop(0, 1000, b"abcd"))
        await gate.audio_fed(1000)
        await trio.sleep(0.1)
        await gate.audio_fed(3999)  # just under the max delay of input audio

    commits = await gate_run(detector, script, within=1)
    assert detector.asked == [b"abcd"]  # asked once, at the pause
    assert bool(commits) is committed


async def test_a_model_error_ends_the_turn_as_vad_only_would() -> None:
    async def script(gate: TurnGate) -> None:
        await gate.speech_stopped(SpeechStop(0, 1000, b"ab"))
        await trio.sleep(0.2)

    commits = await gate_run(FakeDetector(None), script)
    assert [turn.audio for _, turn, _ in commits] == [b"ab"]


async def test_the_backstop_ends_a_held_turn_when_audio_stops_coming(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01

    async def script(gate: TurnGate) -> None:
        await gate.speech_stopped(SpeechStop(0, 1000, b"ab"))  # then no more audio at all

    started = trio.current_time()
    commits = await gate_run(FakeDetector(0.1), script)
    assert len(commits) == 1
    # max delay (3 s for "auto") + 1 s of slack, after the model's 50 ms.
    assert commits[0][0] - started == pytest.approx(4.05, abs=0.01)


async def speak_then_pause(gate: TurnGate) -> None:
    """A pause at 800 ms of input audio, the VAD's stop at 1000 ms, then silence."""
    gate.speech_paused(SpeechPause(0, 800, b"abcd"))
    await trio.sleep(0.3)
    await gate.speech_stopped(SpeechStop(0, 1000, b"abcd"))
    await gate.audio_fed(1000)
    await trio.sleep(0.3)
    await gate.audio_fed(3999)  # just under the max delay of input audio


async def test_words_that_end_mid_sentence_hold_a_turn_the_model_calls_complete() -> None:
    words = FakeWords("my phone number is five five five")
    commits = await gate_run(FakeDetector(0.95), speak_then_pause, within=1, words=words)
    assert words.asked == [b"abcd"]
    assert commits == []  # held: more speech or the max delay ends it


async def test_a_held_turn_is_committed_with_its_words_at_the_max_delay() -> None:
    async def script(gate: TurnGate) -> None:
        await speak_then_pause(gate)
        await gate.audio_fed(4000)

    words = FakeWords("my card ends in")
    commits = await gate_run(FakeDetector(0.95), script, within=1, words=words)
    assert [(turn.audio, text) for _, turn, text in commits] == [(b"abcd", "my card ends in")]


async def test_finished_words_commit_the_turn_with_its_transcript() -> None:
    words = FakeWords("please cancel my booking")
    commits = await gate_run(FakeDetector(0.95), speak_then_pause, within=1, words=words)
    # Once, with the words already made: the turn is not transcribed a second time.
    assert [(turn.audio, text) for _, turn, text in commits] == [
        (b"abcd", "please cancel my booking")
    ]


async def test_the_words_are_only_asked_when_the_model_calls_the_turn_complete() -> None:
    words = FakeWords("whatever")
    commits = await gate_run(FakeDetector(0.2), speak_then_pause, within=1, words=words)
    assert words.asked == [] and commits == []


async def test_a_recogniser_error_keeps_the_models_verdict() -> None:
    words = FakeWords(None)
    commits = await gate_run(FakeDetector(0.95), speak_then_pause, within=1, words=words)
    assert [(turn.audio, text) for _, turn, text in commits] == [(b"abcd", None)]


async def test_words_slower_than_the_max_delay_keep_the_models_verdict(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01

    async def script(gate: TurnGate) -> None:
        await gate.speech_stopped(SpeechStop(0, 1000, b"ab"))  # then no more audio

    started = trio.current_time()
    words = FakeWords("my phone number is", delay=60)  # a recogniser far behind
    commits = await gate_run(FakeDetector(0.95), script, words=words, within=100)
    assert [(turn.audio, text) for _, turn, text in commits] == [(b"ab", None)]
    # The model's 50 ms, then the max delay (3 s for "auto"), not the recogniser's 60 s.
    assert commits[0][0] - started == pytest.approx(3.05, abs=0.01)


async def test_leaving_while_the_words_are_made_cancels_cleanly() -> None:
    # The connection's nursery is cancelled (the user left) while the recogniser works:
    # the decision task ends with it, nothing is committed and nothing is raised.
    words = FakeWords("please cancel my booking", delay=5)
    commits = await gate_run(FakeDetector(0.95), speak_then_pause, within=1, words=words)
    assert words.asked == [b"abcd"] and commits == []


async def test_words_made_before_the_speaker_went_on_are_not_the_turns_transcript() -> None:
    async def script(gate: TurnGate) -> None:
        await gate.speech_stopped(SpeechStop(0, 1000, b"ab"))
        await trio.sleep(0.1)  # the model said complete; the words are being made
        assert gate.speech_started()  # the speaker goes on: the same turn
        await trio.sleep(0.3)  # the words for "ab" arrive, about less than the turn
        await gate.speech_stopped(SpeechStop(1200, 2000, b"cd"))
        await trio.sleep(0.5)

    words = FakeWords(["i want to fly", "i want to fly to denver"])
    commits = await gate_run(FakeDetector(0.95), script, within=2, words=words)
    assert words.asked == [b"ab", b"abcd"]
    # Committed once, with the words about the whole turn.
    assert [(turn.audio, text) for _, turn, text in commits] == [
        (b"abcd", "i want to fly to denver")
    ]


def test_the_vad_reports_early_pauses_only_with_the_model() -> None:
    assert vad_config_for(VadConfig(), semantic=False).pause_ms is None
    assert vad_config_for(VadConfig(), semantic=True).pause_ms == EARLY_PAUSE_MS
    # A VAD silence too short to ask earlier: the model is asked at the stop.
    assert vad_config_for(VadConfig(silence_duration_ms=250), semantic=True).pause_ms is None
