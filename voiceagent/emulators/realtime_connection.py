"""One emulated Realtime session over an accepted WebSocket: the thin Trio shell.

The protocol is decided by `realtime_server.RealtimeServer` (sans-I/O); responses are
produced by `realtime_generator.ResponseGenerator`. This module only moves things:

- One task reads client messages from the socket itself (no reader task in between:
  `voiceagent/provider_socket.py`) and feeds them to the server in order, then performs
  the outputs in order: events are numbered (``event_id``), traced and sent (the socket
  serialises sends); `StartResponse` starts a response task; `CancelResponse` cancels
  that task and waits until it has ended before the next output; `Transcribe` starts a
  transcription task; `SetIdleTimer` (re)starts or stops the idle timer task.
- A response task first waits (at most `TRANSCRIPT_WAIT_S`) for pending transcriptions,
  so the brain hears the last user turn, then runs the generator under the response's
  cancel scope and sends the tail the server gives it (shielded, at most 5 s).
- Every task lives in the connection's nursery. When the client closes, the nursery is
  cancelled; when a send finds the socket closed it raises `Gone` and the session ends
  quietly. A transcriber that raises is logged and reported as a failed transcription;
  the session goes on.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

from voiceagent.emulators.realtime_config import EmulatorConfig
from voiceagent.emulators.realtime_generator import ResponseGenerator
from voiceagent.emulators.realtime_parts import (
    CannedTranscriber,
    RecognizerTranscriber,
    Transcriber,
    default_brain,
    recognizer_transcriber,
)
from voiceagent.emulators.realtime_responses import ResponseState
from voiceagent.emulators.realtime_server import (
    CancelResponse,
    Output,
    RealtimeServer,
    SetIdleTimer,
    StartResponse,
    Transcribe,
)
from voiceagent.emulators.realtime_session import SessionState
from voiceagent.pcm import SAMPLE_RATE
from voiceagent.provider_socket import ProviderSocket, SocketClosed

log = logging.getLogger(__name__)

TRANSCRIPT_WAIT_S = 10.0
SESSION_LIFETIME_S = 30 * 60  # what the service reports as expires_at


class Gone(Exception):
    """The client socket is closed; the connection's tasks wind down."""


class Shared:
    """State shared by all connections of one server (handshake counting)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.handshakes = 0
        self.sessions = itertools.count(1)
        self.brain_factory = config.brain_factory or default_brain
        transcriber = config.transcriber
        # The recogniser this server made itself (`use_recognizer`): it warms it up and
        # stops it (a transcriber given in the config is the caller's to manage).
        self.recognizer: RecognizerTranscriber | None = None
        if transcriber is None and config.use_recognizer:
            self.recognizer = transcriber = recognizer_transcriber()
        self.transcriber: Transcriber = transcriber or CannedTranscriber()


@dataclass(slots=True)
class _Running:
    """The Trio side of one response: its cancel scope and its end."""

    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    ended: trio.Event = field(default_factory=trio.Event)


class RealtimeEmulatorConnection:
    """One emulated Realtime session over an accepted WebSocket."""

    def __init__(
        self,
        ws: ProviderSocket,
        stream: trio.abc.Stream,
        flavor: str,
        model: str,
        shared: Shared,
    ) -> None:
        self.ws = ws
        self.stream = stream
        self.shared = shared
        self.config = shared.config
        session = SessionState(
            id=f"sess_{next(shared.sessions)}{secrets.token_hex(4)}",
            model=model,
            beta_model=self.config.beta_model,
            expires_at=int(time.time()) + SESSION_LIFETIME_S,
        )
        self.server = RealtimeServer(flavor, session, self.config.max_items)
        self.generator = ResponseGenerator(
            self.server, self.config, shared.brain_factory(), self.emit, self._drop
        )
        self.transcripts: dict[str, trio.Event] = {}
        self._running: dict[str, _Running] = {}
        self._events = itertools.count(1)
        self._idle_timer: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    async def emit(self, event: dict[str, Any]) -> None:
        """Send one server event (adds ``event_id``); raises `Gone` when closed."""
        text = orjson.dumps({"event_id": f"event_{next(self._events)}", **event}).decode()
        if self.config.trace is not None:
            self.config.trace("out", text)
        try:
            await self.ws.send(text)  # the socket serialises sends
        except SocketClosed:
            raise Gone() from None

    async def _drop(self) -> None:
        """An abrupt drop: no close frame, just the TCP stream going away."""
        await self.stream.aclose()
        raise Gone()

    async def run(self) -> None:
        """Serve until the client closes; cancelling this cancels every task of the session."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.emit(self.server.session_event())
                while True:
                    try:
                        message = await self.ws.receive()  # no reader task between
                    except SocketClosed:
                        break
                    await self.handle(message)
                nursery.cancel_scope.cancel()
        except* Gone:
            pass  # the client went away while we were answering

    async def handle(self, message: str | bytes) -> None:
        """Feed one client message to the server and perform what it says."""
        if self.config.trace is not None:
            self.config.trace("in", message if isinstance(message, str) else repr(message))
        await self._perform(self.server.receive(message))

    async def _perform(self, outputs: list[Output]) -> None:
        assert self._nursery is not None
        for out in outputs:
            if isinstance(out, dict):
                await self.emit(out)
            elif isinstance(out, StartResponse):
                running = self._running[out.response.id] = _Running()
                self._nursery.start_soon(self._run_response, out.response, running)
            elif isinstance(out, CancelResponse):
                running = self._running.get(out.response.id)
                if running is not None:
                    running.scope.cancel()
                    await running.ended.wait()
            elif isinstance(out, Transcribe):
                self.transcripts[out.item_id] = trio.Event()
                self._nursery.start_soon(self._transcribe, out)
            elif isinstance(out, SetIdleTimer):
                self._set_idle_timer(out.delay_s)

    async def _run_response(self, response: ResponseState, running: _Running) -> None:
        try:
            with running.scope:
                await self._wait_for_transcripts()
                await self.generator.run(response)
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._perform(self.server.finish_response(response))
        except Gone:
            pass
        finally:
            self.server.response_ended(response)
            del self._running[response.id]
            running.ended.set()

    async def _wait_for_transcripts(self) -> None:
        pending = [e for e in self.transcripts.values() if not e.is_set()]
        with trio.move_on_after(TRANSCRIPT_WAIT_S):
            for event in pending:
                await event.wait()

    async def _transcribe(self, job: Transcribe) -> None:
        """Transcribe a committed utterance; a failing transcriber is reported, not fatal."""
        try:
            text = await self.shared.transcriber(job.pcm, SAMPLE_RATE)
        except Exception as exc:
            log.warning("emulator transcriber failed: %r", exc)
            outputs = self.server.transcription_failed(job.item_id, str(exc))
        else:
            outputs = self.server.transcribed(job.item_id, text)
        self.transcripts.pop(job.item_id).set()
        try:
            await self._perform(outputs)
        except Gone:
            pass

    def _set_idle_timer(self, delay_s: float | None) -> None:
        """(Re)start the server_vad idle timer, or stop it with None."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if delay_s is not None and self._nursery is not None:
            self._idle_timer = trio.CancelScope()
            self._nursery.start_soon(self._idle_wait, self._idle_timer, delay_s)

    async def _idle_wait(self, scope: trio.CancelScope, delay_s: float) -> None:
        with scope:
            await trio.sleep(delay_s)
            self._idle_timer = None
            try:
                await self._perform(self.server.idle_timeout())
            except Gone:
                pass
