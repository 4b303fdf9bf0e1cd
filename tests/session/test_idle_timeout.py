"""Rooms that send no audio or text are closed after WS_IDLE_TIMEOUT_S, normally."""

from __future__ import annotations

import trio

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel
from voiceagent.tts.scripted import ScriptedTTS

SILENCE_20MS = b"\x00\x00" * 480


async def test_a_silent_room_is_closed_with_idle_timeout_then_1000() -> None:
    settings = Settings(ws_idle_timeout_s=0.5)
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, connect(address) as client:
        await client.wait_for("session_started")
        opened = trio.current_time()
        assert await client.wait_closed(within=5) == 1000
        assert trio.current_time() - opened >= 0.4
        assert [e["code"] for e in client.of_type("error")] == ["idle_timeout"]
    assert len(services.registry) == 0


async def test_audio_keeps_a_room_open_and_silence_after_it_closes_it() -> None:
    settings = Settings(ws_idle_timeout_s=0.6)
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, connect(address) as client:
        await client.wait_for("session_started")
        for _ in range(75):  # 1.5 s of audio, in real time
            await client.send_audio(SILENCE_20MS)
            await trio.sleep(0.02)
        assert client.of_type("error") == []
        assert services.registry.get("test") is not None
        stopped = trio.current_time()
        assert await client.wait_closed(within=5) == 1000
        assert trio.current_time() - stopped >= 0.3
        assert [e["code"] for e in client.of_type("error")] == ["idle_timeout"]


async def test_zero_disables_the_idle_timeout() -> None:
    settings = Settings(ws_idle_timeout_s=0)
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, connect(address) as client:
        await client.wait_for("session_started")
        await client.drain(1.0)
        await client.send(type="text", text="still here")
        assert (await client.wait_for("text_done"))["text"] == "I heard you."
        assert client.of_type("error") == []
