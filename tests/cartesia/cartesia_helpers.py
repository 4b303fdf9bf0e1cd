"""Helpers for the Cartesia tests: emulator startup, sinks, text feeding, schema checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, get_args

import trio
from cartesia.types.websocket_client_event import WebsocketClientEvent
from cartesia.types.websocket_response import WebsocketResponse
from pydantic import BaseModel, Field, TypeAdapter

from voiceagent.emulators.cartesia import CartesiaEmulatorConfig, EmulatorLog, serve_cartesia
from voiceagent.tts.base import TTSConnection, WordTiming
from voiceagent.tts.cartesia import CartesiaConfig

CLIENT_EVENT = TypeAdapter(WebsocketClientEvent)
SERVER_EVENT = TypeAdapter(Annotated[get_args(WebsocketResponse)[0], Field(discriminator="type")])

# Fast pacing so a test voices a sentence in tens of milliseconds.
FAST = {"realtime_factor": 0.02, "first_chunk_latency_ms": 5.0, "chunk_ms": 50}


@dataclass
class Emulator:
    url: str
    log: EmulatorLog


async def start_emulator(nursery: trio.Nursery, **overrides: Any) -> Emulator:
    config = CartesiaEmulatorConfig(**{**FAST, **overrides})
    log = EmulatorLog()
    port = await nursery.start(partial(serve_cartesia, "127.0.0.1", 0, config, log_to=log))
    return Emulator(f"ws://127.0.0.1:{port}/tts/websocket", log)


def client_config(url: str, **overrides: Any) -> CartesiaConfig:
    base: dict[str, Any] = {
        "api_key": "test-key",
        "voice_id": "a0e99841-438c-4a64-b679-ae501e7d6091",
        "url": url,
        "api_version": "2025-04-16",
        "first_audio_timeout_s": 2.0,
        "connect_timeout_s": 2.0,
    }
    return CartesiaConfig(**{**base, **overrides})


@dataclass
class RecordingSink:
    """Collects what a TTS delivers; `stop_after` cancels `scope` after N audio calls."""

    chunks: list[bytes] = field(default_factory=list)
    timings: list[WordTiming] = field(default_factory=list)
    stop_after: int | None = None
    scope: trio.CancelScope | None = None

    async def audio(self, pcm: bytes) -> None:
        self.chunks.append(pcm)
        if self.stop_after is not None and len(self.chunks) >= self.stop_after:
            assert self.scope is not None
            self.scope.cancel()
        await trio.lowlevel.checkpoint()

    def words(self, timings: Sequence[WordTiming]) -> None:
        self.timings.extend(timings)

    @property
    def audio_bytes(self) -> int:
        return sum(len(c) for c in self.chunks)


async def speak(
    conn: TTSConnection,
    deltas: Sequence[str],
    sink: Any,
    *,
    response_id: str,
    gap_s: float = 0.0,
) -> None:
    """Feed `deltas` (with `gap_s` between them) to `conn.synthesize` and wait for it."""
    send, receive = trio.open_memory_channel[str](len(deltas) + 1)

    async def feed() -> None:
        async with send:
            for delta in deltas:
                await send.send(delta)
                if gap_s:
                    await trio.sleep(gap_s)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            await conn.synthesize(receive, sink, response_id=response_id)
    except BaseExceptionGroup as group:  # surface synthesize's own error to the test
        _, others = group.split(trio.Cancelled)
        if others is None or len(others.exceptions) != 1:
            raise
        raise others.exceptions[0] from None


def words_of(text: str) -> list[str]:
    return [w + " " for w in text.split()]


def unknown_fields(model: BaseModel, path: str = "") -> list[str]:
    """Fields the official model did not declare (the SDK models accept extras)."""
    found = [f"{path}{name}" for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found += unknown_fields(value, f"{path}{name}.")
    return found


def check_client_event(message: dict[str, Any]) -> None:
    event = CLIENT_EVENT.validate_python(message)
    assert unknown_fields(event) == [], message
    # The union is not discriminated: make sure a cancel was not read as something else.
    assert ("cancel" in message) == (type(event).__name__ == "CancelContextRequest")


def check_server_event(message: dict[str, Any]) -> None:
    event = SERVER_EVENT.validate_python(message)
    assert unknown_fields(event) == [], message
