"""The server wired to Azure OpenAI Realtime + Cartesia, both emulated on 127.0.0.1.

This is the deployment shape with keys: the settings point the real clients at the
emulators, so every byte crosses real sockets through the real protocol code.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from tests.conftest import Client, connect, eventually, running_app
from voiceagent.config import Settings
from voiceagent.emulators.cartesia import CartesiaEmulatorConfig, serve_cartesia
from voiceagent.emulators.cartesia_config import EmulatorLog
from voiceagent.emulators.realtime import EmulatorConfig, Faults, serve_realtime
from voiceagent.emulators.realtime_parts import CannedTranscriber
from voiceagent.models.scripted import tone
from voiceagent.providers import build_services
from voiceagent.session.services import Services
from voiceagent.tts.fallback import FallbackTTS
from voiceagent.tts.scripted import ScriptedTTS


@asynccontextmanager
async def cloud_stack(
    *,
    tts: str = "cartesia",
    faults: Faults | None = None,
    cartesia_rtf: float = 0.25,
    cartesia_refuses: bool = False,
    cartesia_handshake_delay_ms: float = 0.0,
    cartesia_log: EmulatorLog | None = None,
) -> AsyncIterator[tuple[str, Services]]:
    realtime = EmulatorConfig(
        transcriber=CannedTranscriber("What is the baggage allowance?"),
        faults=faults or Faults(),
        audio_rtf=0.25,
    )
    cartesia = CartesiaEmulatorConfig(
        realtime_factor=cartesia_rtf,
        first_chunk_latency_ms=20,
        reject_handshakes=-1 if cartesia_refuses else 0,
        handshake_delay_ms=cartesia_handshake_delay_ms,
        delayed_handshakes=1,  # the next socket (after a cancel) is answered at once
    )
    async with trio.open_nursery() as nursery:
        rt_port = await nursery.start(serve_realtime, "127.0.0.1", 0, realtime)
        ca_port = await nursery.start(
            functools.partial(serve_cartesia, log_to=cartesia_log), "127.0.0.1", 0, cartesia
        )
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_API_KEY": "test-key",
                "AZURE_OPENAI_REALTIME_URL": (
                    f"ws://127.0.0.1:{rt_port}/openai/v1/realtime?model=voice-demo"
                ),
                "CARTESIA_API_KEY": "test-key",
                "CARTESIA_WEBSOCKET_URL": f"ws://127.0.0.1:{ca_port}/tts/websocket",
                "VOICEAGENT_TTS": tts,
                "VOICEAGENT_TTS_FALLBACK": "false",
            }
        )
        services = build_services(settings)
        if cartesia_refuses:
            # The local voice stands in for Cartesia (a scripted one keeps this fast).
            services.tts = FallbackTTS(services.tts, ScriptedTTS())  # type: ignore[arg-type]
        async with running_app(services) as address:
            yield address, services
        nursery.cancel_scope.cancel()


async def answer(client: Client, text: str) -> dict:
    await client.send(type="text", text=text)
    return await client.wait_for("audio_end", within=20)


async def test_typed_airline_turn_streams_cartesia_audio() -> None:
    async with cloud_stack() as (address, _), connect(address) as client:
        started = await client.wait_for("session_started")
        assert (started["model"], started["tts"], started["offline_brain"]) == (
            "azure",
            "cartesia",
            False,
        )
        end = await answer(client, "What is the baggage allowance?")
        assert client.of_type("handoff")[0]["to"] == "FAQ Agent"
        assert client.of_type("tool_end")[0]["name"] == "faq_lookup_tool"
        frames = [f for owner, f in client.audio if owner == end["response_id"]]
        assert frames and sum(map(len, frames)) // 48 == end["audio_ms"]
        metrics = await client.wait_for("metrics")
        assert metrics["tts_ms"] is not None and metrics["input_tokens"]


async def test_interrupt_mid_cartesia_audio_sends_no_stale_bytes() -> None:
    async with cloud_stack(cartesia_rtf=1.0) as (address, _), connect(address) as client:
        await client.send(type="text", text="What is the baggage allowance?")
        start = await client.wait_for("audio_start", within=20)
        with trio.fail_after(10):
            while len([o for o, _ in client.audio if o == start["response_id"]]) < 2:
                await client.receive()
        await client.send(type="interrupt")
        await client.wait_for("audio_interrupted")
        await client.drain(1.0)
        cut = client.order.index(("event", "audio_interrupted"))
        stale = [
            o for kind, o in client.order[cut:] if kind == "audio" and o == start["response_id"]
        ]
        assert stale == []
        # The session goes on: the next question is answered and heard in full.
        end = await answer(client, "Is there wifi?")
        assert end["response_id"] != start["response_id"]


async def test_spoken_turn_through_server_vad() -> None:
    async with cloud_stack() as (address, _), connect(address) as client:
        await client.wait_for("session_started")
        speech = tone(600, amplitude=9000)
        silence = b"\x00\x00" * 24000  # one second
        for chunk in (speech, silence):
            for offset in range(0, len(chunk), 960):
                await client.send_audio(chunk[offset : offset + 960])
                await trio.sleep(0.002)
        await client.wait_for("input_speech_started", within=10)
        transcript = await client.wait_for("user_transcript", within=10)
        assert transcript["text"] == "What is the baggage allowance?"
        await client.wait_for("audio_end", within=20)
        assert client.of_type("tool_end")[0]["name"] == "faq_lookup_tool"


async def test_model_audio_is_forwarded_when_no_tts_is_configured() -> None:
    async with cloud_stack(tts="none") as (address, _), connect(address) as client:
        started = await client.wait_for("session_started")
        assert started["tts"] == "none"
        end = await answer(client, "What is the baggage allowance?")
        frames = [f for owner, f in client.audio if owner == end["response_id"]]
        assert frames and all(len(f) <= Settings().ws_tts_chunk_bytes for f in frames)


async def test_provider_drop_mid_response_is_reported_and_recovered() -> None:
    faults = Faults(drop_on_response=1, after_deltas=1)
    async with cloud_stack(faults=faults) as (address, _), connect(address) as client:
        await client.send(type="text", text="Hello there")
        error = await client.wait_for("error", within=10)
        assert error["code"].startswith("model")
        # Reconnects lazily on the next input, and works.
        end = await answer(client, "What is the baggage allowance?")
        assert end["audio_ms"] > 0


async def test_cartesia_refusal_falls_back_to_local_voice_with_a_typed_error() -> None:
    async with cloud_stack(cartesia_refuses=True) as (address, _), connect(address) as client:
        end = await answer(client, "What is the baggage allowance?")
        error = client.of_type("error")[0]
        assert error["code"] == "rate_limited" and "local voice" in error["message"]
        assert end["audio_ms"] > 0  # the answer was still spoken


# -- cancelled while the voice's socket is still being opened -------------------------

SLOW_HANDSHAKE_MS = 30_000  # far longer than any wait below: the handshake never ends


async def until_the_voice_is_connecting(cartesia: EmulatorLog) -> None:
    """Until the emulator holds the room's first Cartesia handshake unanswered."""
    await eventually(lambda: len(cartesia.handshakes) == 1 and cartesia.accepted == 0)


async def test_interrupt_while_the_voice_connects_ends_the_answer_at_once() -> None:
    cartesia = EmulatorLog()
    stack = cloud_stack(cartesia_handshake_delay_ms=SLOW_HANDSHAKE_MS, cartesia_log=cartesia)
    async with stack as (address, _), connect(address) as client:
        await client.send(type="text", text="What is the baggage allowance?")
        await until_the_voice_is_connecting(cartesia)
        await client.send(type="interrupt")
        # Answered by the server, not after the handshake (which never ends).
        interrupted = await client.wait_for("audio_interrupted", within=5)
        assert interrupted["response_id"]
        # The room goes on, on a socket answered at once: the next answer is heard.
        end = await answer(client, "Is there wifi?")
        assert end["response_id"] != interrupted["response_id"] and end["audio_ms"] > 0
        assert cartesia.accepted == 1  # the held handshake was abandoned, not completed


async def test_leaving_while_the_voice_connects_closes_the_room() -> None:
    cartesia = EmulatorLog()
    stack = cloud_stack(cartesia_handshake_delay_ms=SLOW_HANDSHAKE_MS, cartesia_log=cartesia)
    async with stack as (address, services):
        async with connect(address) as client:
            await client.send(type="text", text="What is the baggage allowance?")
            await until_the_voice_is_connecting(cartesia)
        # The room's tasks (the handshake's among them) end without waiting for it.
        await eventually(lambda: not len(services.registry), within=5)
        async with connect(address) as client:  # and the server serves the next room
            assert (await answer(client, "Is there wifi?"))["audio_ms"] > 0
