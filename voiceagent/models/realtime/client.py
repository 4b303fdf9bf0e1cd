"""`RealtimeAPIModel`: Azure OpenAI / OpenAI Realtime over a `ProviderSocket`.

The socket edge of `protocol.RealtimeProtocol`. One `RealtimeConnection` per session:

- Sends are serialised by the socket; a group of events goes out in one write.
- Server events are read by whoever iterates the connection (the session's model
  task), straight from the socket: no reader task, no channel, no extra scheduler pass
  per event (`voiceagent/provider_socket.py`). The socket's receive buffer is the
  back-pressure: a session that stops reading stops the server's sends.
- Teardown is bounded: leaving the block sends a close frame and waits at most
  `close_timeout` seconds for the server's answer, then drops the TCP stream.

Errors: connecting raises `ModelConnectionError` with code ``model_unavailable``
(timeout, refused, bad handshake), ``rate_limited`` (HTTP 429) or ``model_auth``
(401/403). A dropped socket makes the iterator raise `ModelConnectionError` with code
``model_dropped`` and every later send raise `ModelClosed`. An error's message is what
the client sees: it never holds the URL, a host, a port or a key; the technical cause
goes, redacted, into its `detail` for the log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import trio

from voiceagent.conversation import AgentSetup, ConversationItem, Heard
from voiceagent.events import ModelError, ModelEvent
from voiceagent.models.base import (
    ModelClosed,
    ModelConnection,
    ModelConnectionError,
    OutputMode,
    RealtimeModel,
)
from voiceagent.models.realtime.config import Endpoint, RealtimeConfig, endpoint
from voiceagent.models.realtime.protocol import ProtocolError, RealtimeProtocol
from voiceagent.provider_socket import (
    HandshakeFailed,
    HandshakeRejected,
    ProviderSocket,
    SocketClosed,
    open_provider_socket,
)
from voiceagent.redact import redact_exception, redact_text, redact_url

log = logging.getLogger(__name__)

_STATUS_CODES = {429: "rate_limited", 401: "model_auth", 403: "model_auth"}


class RealtimeConnection(ModelConnection):
    """One live Realtime conversation; see the module docstring for the rules."""

    def __init__(self, ws: ProviderSocket, protocol: RealtimeProtocol) -> None:
        self._ws = ws
        self.protocol = protocol
        self._closed = False
        self._failure: ModelConnectionError | None = None

    async def _send(self, *messages: str) -> None:
        if self._closed:
            raise ModelClosed()
        if self._failure is not None:
            raise ModelClosed(f"model connection failed: {self._failure}")
        try:
            await self._ws.send(*messages)
        except SocketClosed as exc:
            code = exc.reason.code
            self._failure = ModelConnectionError(
                f"realtime socket closed (code {code})",
                code="model_dropped",
                detail=redact_text(str(exc.reason)),
            )
            raise ModelClosed(f"model connection closed (code {code})") from None

    async def send_audio(self, pcm: bytes) -> None:
        if pcm:
            await self._send(self.protocol.append_audio(pcm))

    async def commit_audio(self) -> None:
        await self._send(*self.protocol.commit_audio())

    async def send_text(self, text: str) -> None:
        await self._send(*self.protocol.user_text(text))

    async def send_tool_result(self, call_id: str, output: str, *, respond: bool = True) -> None:
        await self._send(*self.protocol.tool_result(call_id, output, respond=respond))

    async def update_agent(self, setup: AgentSetup) -> None:
        await self._send(self.protocol.agent_update(setup))

    async def add_history(self, items: Sequence[ConversationItem]) -> None:
        messages = self.protocol.history(items)
        if messages:
            await self._send(*messages)

    async def cancel_response(self, heard: Heard) -> None:
        messages = self.protocol.cancel(heard)
        if messages:
            await self._send(*messages)

    def hold_spoken_turns(self) -> bool:
        # Decided by the config at connect (session.update went out with it).
        self.holds_spoken_turns = self.protocol.holds_turns
        return self.holds_spoken_turns

    async def answer_input(self, item_id: str, respond: bool) -> None:
        messages = self.protocol.answer(item_id, respond)
        if messages:
            await self._send(*messages)

    def __aiter__(self) -> AsyncIterator[ModelEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ModelEvent]:
        """Read, parse and yield events until the server closes.

        A clean close (code 1000) while no response is in progress ends iteration;
        any other close raises `ModelConnectionError`. A message we cannot parse is
        reported as a `ModelError` (code ``model_protocol``) and skipped.
        """
        while True:
            try:
                message = await self._ws.receive()
            except SocketClosed as exc:
                reason = exc.reason
                mid_response = self.protocol.response_in_progress
                self._failure = ModelConnectionError(
                    f"realtime socket closed (code {reason.code}"
                    f"{', mid-response' if mid_response else ''})",
                    code="model_dropped",
                    detail=redact_text(str(reason)),
                )
                if self._closed or (reason.code == 1000 and not mid_response):
                    return
                # A copy: the stored one must not carry a traceback through this frame
                # (which holds the connection, which holds it: a reference cycle).
                failure = self._failure
                raise ModelConnectionError(
                    str(failure), code=failure.code, detail=failure.detail
                ) from None
            try:
                events, replies = self.protocol.receive(message)
            except ProtocolError as exc:
                log.warning("realtime: %s", exc)
                yield ModelError(code="model_protocol", message=str(exc))
                continue
            if replies:
                await self._send(*replies)
            for event in events:
                yield event

    async def _aclose(self, limit_s: float) -> None:
        """Close within `limit_s` seconds even if the server never answers the close."""
        self._closed = True
        with trio.move_on_after(limit_s) as scope:
            scope.shield = True
            await self._ws.aclose()


class RealtimeAPIModel(RealtimeModel):
    """Azure OpenAI (GA or preview) or OpenAI Realtime; the URL decides which."""

    def __init__(self, config: RealtimeConfig) -> None:
        self.config = config.validate()
        self.endpoint: Endpoint = endpoint(config)
        self.name = self.endpoint.provider

    @asynccontextmanager
    async def connect(
        self, setup: AgentSetup, *, output: OutputMode
    ) -> AsyncIterator[RealtimeConnection]:
        """Open the socket, send ``session.update``, yield the connection.

        On cancellation or error inside the block the socket is closed within
        `close_timeout` (a few tens of ms when cancelled) and the exception propagates.
        """
        ws = await self._open()
        connection = RealtimeConnection(
            ws, RealtimeProtocol(self.config, self.endpoint.flavor, output)
        )
        limit_s = self.config.close_timeout
        try:
            await connection._send(connection.protocol.session_update(setup))
            yield connection
        except trio.Cancelled:
            # The session is going away: say goodbye, but do not wait long for it.
            limit_s = min(limit_s, 0.05)
            raise
        finally:
            await connection._aclose(limit_s)

    async def _open(self) -> ProviderSocket:
        """Connect within `connect_timeout`; failures become `ModelConnectionError` codes."""
        ep = self.endpoint
        try:
            with trio.fail_after(self.config.connect_timeout):
                return await open_provider_socket(
                    ep.url,
                    headers=list(ep.headers),
                    max_message_bytes=self.config.max_message_bytes,
                )
        except trio.TooSlowError:
            raise ModelConnectionError(
                f"realtime connect timed out after {self.config.connect_timeout:g} s",
                detail=redact_url(ep.url),
            ) from None
        except (HandshakeRejected, HandshakeFailed, OSError, ValueError) as exc:
            raise _connect_error(exc, ep.url) from None


def _connect_error(exc: BaseException, url: str) -> ModelConnectionError:
    """The client-safe error for a failed connect; the URL and cause go to `detail`."""
    where = redact_url(url)
    if isinstance(exc, HandshakeRejected):
        code = _STATUS_CODES.get(exc.status_code, "model_unavailable")
        body = redact_text(exc.body[:200].decode(errors="replace"))
        return ModelConnectionError(
            f"realtime handshake rejected with HTTP {exc.status_code}",
            code=code,
            detail=f"{where}: HTTP {exc.status_code} {body}".rstrip(),
        )
    return ModelConnectionError(
        "the realtime model cannot be reached", detail=f"{where}: {redact_exception(exc)}"
    )
