"""The offline pipeline behind a real socket: speak, hear the answer, barge in."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import Client, connect, make_services, running_app
from tests.speech.sounds import frames, silence, white_noise
from voiceagent.brain import OfflineBrain
from voiceagent.models.offline import OfflineModel, OfflineModelConfig
from voiceagent.tts.local import LocalVoiceTTS


async def speak_in_real_time(client: Client, pcm: bytes) -> None:
    """Send 20 ms frames on a real-time schedule, like a browser microphone."""
    deadline = trio.current_time()
    for frame in frames(pcm):
        await client.send_audio(frame)
        deadline += 0.02
        await trio.sleep_until(deadline)


def offline_services():  # type: ignore[no-untyped-def]
    model = OfflineModel(OfflineModelConfig(delta_interval_s=0.01), brain_factory=OfflineBrain)
    return make_services(model, LocalVoiceTTS())


async def test_a_spoken_question_gets_a_spoken_answer(spoken_turn: bytes) -> None:
    async with running_app(offline_services()) as address, connect(address) as client:
        started = await client.wait_for("session_started")
        assert started["model"] == "offline" and started["offline_brain"] is True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(speak_in_real_time, client, spoken_turn)
            await client.wait_for("input_speech_started", within=20)
            await client.wait_for("input_speech_stopped", within=20)
            transcript = await client.wait_for("user_transcript", within=20)
            assert "baggage" in transcript["text"].lower()
            done = await client.wait_for("text_done", within=30)
            await client.wait_for("audio_end", within=30)
        assert done["text"]
        reply_audio = b"".join(
            frame for owner, frame in client.audio if owner == done["response_id"]
        )
        assert len(reply_audio) > 24_000  # at least half a second of voice


async def test_speaking_over_the_answer_stops_its_audio(spoken_turn: bytes) -> None:
    async with running_app(offline_services()) as address, connect(address) as client:
        await client.wait_for("session_started")
        await speak_in_real_time(client, spoken_turn)
        first = await client.wait_for("audio_start", within=30)
        # The user talks again while the answer plays.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(speak_in_real_time, client, spoken_turn)
            interrupted = await client.wait_for(
                "audio_interrupted",
                within=20,
                where=lambda event: event["response_id"] == first["response_id"],
            )
            nursery.cancel_scope.cancel()
        cut = client.order.index(("event", "audio_interrupted"))
        await client.drain(1.0)
        stale = [
            owner
            for kind, owner in client.order[cut + 1 :]
            if kind == "audio" and owner == interrupted["response_id"]
        ]
        assert stale == []


@pytest.mark.parametrize("noise", ["silence", "white noise"])
async def test_silence_and_noise_start_no_turn(noise: str) -> None:
    pcm = silence(3.0) if noise == "silence" else white_noise(3.0)
    async with running_app(offline_services()) as address, connect(address) as client:
        await client.wait_for("session_started")
        for frame in frames(pcm):  # faster than real time: the VAD counts audio, not clocks
            await client.send_audio(frame)
        await client.drain(1.0)
        assert client.of_type("input_speech_started") == []
        assert client.of_type("response_start") == []
