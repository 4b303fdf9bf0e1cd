"""Inbound audio: batching toward the provider, commits in order, nothing left behind."""

from __future__ import annotations

from tests.conftest import connect, eventually, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel
from voiceagent.tts.scripted import ScriptedTTS

FRAME_20MS = b"\x00\x00" * 480  # PCM16 mono at 24 kHz


def audio_sent_ms(model: ScriptedModel) -> list[int]:
    return [ms for kind, ms in model.log if kind == "audio_ms"]


async def test_frames_reach_the_provider_in_batches_of_the_configured_size() -> None:
    model = ScriptedModel()
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address) as client:
        for _ in range(20):  # 400 ms
            await client.send_audio(FRAME_20MS)
        await eventually(lambda: sum(audio_sent_ms(model)) == 400)
        assert audio_sent_ms(model) == [100] * 4


async def test_a_commit_follows_all_the_audio_before_it() -> None:
    """Push-to-talk: the provider must not commit before the last frames arrive."""
    model = ScriptedModel()
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address) as client:
        for _ in range(7):  # 140 ms: one whole batch and a partial one
            await client.send_audio(FRAME_20MS)
        await client.send(type="commit_audio")
        await client.wait_for("response_done")
        assert ("commit", 140) in model.log


async def test_a_partial_batch_is_sent_when_the_client_stops_streaming() -> None:
    model = ScriptedModel()
    settings = Settings(audio_batch_ms=200)
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, connect(address) as client:
        for _ in range(3):  # 60 ms, then the microphone goes quiet
            await client.send_audio(FRAME_20MS)
        await eventually(lambda: sum(audio_sent_ms(model)) == 60, within=2)
        assert client.of_type("error") == []
