"""What all sessions of one app share: settings, providers, the agent graph, limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import trio

from voiceagent.config import Settings
from voiceagent.metrics import PriceTable
from voiceagent.models.base import OutputMode, RealtimeModel
from voiceagent.protocol import Limits
from voiceagent.tts.base import TTS

if TYPE_CHECKING:
    from voiceagent.graph import Agent
    from voiceagent.recordings import RecordingWriter
    from voiceagent.session.registry import Registry
    from voiceagent.store.writer import Store


class ClientDisconnected(Exception):
    """The client has gone: raised by `ClientSocket.receive()` instead of a message.

    It carries no close code: Hypercorn reports 1006 to the app whenever the client
    closes first, a clean Close included, so the code would say nothing. A connection
    the transport dropped is logged there (`client_too_slow`, transport.py).
    """


class ClientSocket(Protocol):
    """The browser side of a session (Quart's websocket, read through
    `voiceagent.quart_websocket`).

    `receive()` raises `ClientDisconnected` once the client has left, so a session
    ends as a normal return rather than by a cancellation from outside: no Cancelled
    exception groups travel through the framework (each left ~270 objects of cyclic
    garbage per closed room for the collector to find).
    """

    async def receive(self) -> str | bytes: ...

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int, reason: str = "") -> None: ...


@dataclass(slots=True)
class Services:
    settings: Settings
    agent: Agent
    registry: Registry
    model: RealtimeModel | None = None
    #: why there is no model (shown to clients as a `no_provider` error)
    model_problem: str = "no speech model is configured"
    tts: TTS | None = None
    tool_limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(8))
    prices: PriceTable = field(default_factory=PriceTable)
    #: the conversation store (voiceagent/store/), or None: nothing is stored
    store: Store | None = None
    #: the recordings' writer (VOICEAGENT_RECORD=1), or None: nothing is recorded
    recordings: RecordingWriter | None = None

    @property
    def output_mode(self) -> OutputMode:
        """Text when a TTS voices replies (or the model cannot speak), else the model's audio."""
        model = self.model
        if self.tts is not None or model is None or not model.audio_output:
            return "text"
        return "audio"

    @property
    def limits(self) -> Limits:
        settings = self.settings
        return Limits(
            max_audio_frame_bytes=settings.ws_max_audio_frame_bytes,
            max_text_chars=settings.ws_max_text_chars,
            min_audio_frame_ms=settings.ws_min_audio_frame_ms,
            max_audio_frame_ms=settings.ws_max_audio_frame_ms,
            preferred_audio_frame_ms=settings.ws_preferred_audio_frame_ms,
        )
