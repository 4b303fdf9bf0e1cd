"""`RealtimeAPIModel`: Azure OpenAI / OpenAI Realtime over trio-websocket.

The socket edge of `protocol.RealtimeProtocol`. One `RealtimeConnection` per session:

- Sends are serialised by one lock (several session tasks may send).
- Server events are read by whoever iterates the connection (the session's model
  task). There is no extra reader task: trio-websocket already runs one, and a second
  hop through a channel would cost a task switch per event for nothing. Its bounded
  message queue gives the same back-pressure a channel would.
- Teardown is bounded: leaving the block sends a close frame and waits at most
  `close_timeout` seconds for the server's answer, then drops the TCP stream.

Errors: connecting raises `ModelConnectionError` with code ``model_unavailable``
(timeout, refused, bad handshake), ``rate_limited`` (HTTP 429) or ``model_auth``
(401/403). A dropped socket makes the iterator raise `ModelConnectionError` and every
later send raise `ModelClosed`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    ConnectionTimeout,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from voiceagent.events import ModelError, ModelEvent
from voiceagent.models.base import (
    AgentSetup,
    Heard,
    ModelClosed,
    ModelConnection,
    ModelConnectionError,
    OutputMode,
    RealtimeModel,
)
from voiceagent.models.realtime.config import Endpoint, RealtimeConfig, endpoint
from voiceagent.models.realtime.protocol import ProtocolError, RealtimeProtocol

log = logging.getLogger(__name__)

_STATUS_CODES = {429: "rate_limited", 401: "model_auth", 403: "model_auth"}


class RealtimeConnection(ModelConnection):
    """One live Realtime conversation; see the module docstring for the rules."""

    def __init__(self, ws: WebSocketConnection, protocol: RealtimeProtocol) -> None:
        self._ws = ws
        self.protocol = protocol
        self._send_lock = trio.Lock()
        self._closed = False
        self._failure: ModelConnectionError | None = None

    async def _send(self, *messages: str) -> None:
        if self._closed:
            raise ModelClosed()
        if self._failure is not None:
            raise ModelClosed(f"model connection failed: {self._failure}")
        async with self._send_lock:
            for message in messages:
                try:
                    await self._ws.send_message(message)
                except ConnectionClosed as exc:
                    self._failure = ModelConnectionError(f"realtime socket closed: {exc.reason}")
                    raise ModelClosed(f"model connection closed: {exc.reason}") from None

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

    async def cancel_response(self, heard: Heard) -> None:
        messages = self.protocol.cancel(heard)
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
                message = await self._ws.get_message()
            except ConnectionClosed as exc:
                reason = exc.reason
                mid_response = self.protocol.response_in_progress
                self._failure = ModelConnectionError(
                    f"realtime socket closed (code {reason.code}"
                    f"{', mid-response' if mid_response else ''})"
                )
                if self._closed or (reason.code == 1000 and not mid_response):
                    return
                raise self._failure from None
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

        On cancellation or error inside the block, the socket is closed within
        `close_timeout`; the exception propagates unchanged.
        """
        ep = self.endpoint
        headers = [(k.encode(), v.encode()) for k, v in ep.headers]
        manager = open_websocket_url(
            ep.url,
            extra_headers=headers,
            connect_timeout=self.config.connect_timeout,
            disconnect_timeout=self.config.close_timeout,
            max_message_size=self.config.max_message_bytes,
            message_queue_size=64,
        )
        try:
            ws = await manager.__aenter__()
        except ConnectionRejected as exc:
            code = _STATUS_CODES.get(exc.status_code, "model_unavailable")
            raise ModelConnectionError(
                f"realtime handshake rejected with HTTP {exc.status_code}", code=code
            ) from None
        except ConnectionTimeout:
            raise ModelConnectionError(
                f"realtime connect timed out after {self.config.connect_timeout:g} s"
            ) from None
        except (HandshakeError, OSError) as exc:
            cause = exc.__cause__ or exc
            raise ModelConnectionError(f"realtime connect failed: {cause!r}") from None
        connection = RealtimeConnection(ws, RealtimeProtocol(self.config, ep.flavor, output))
        try:
            await connection._send(connection.protocol.session_update(setup))
            yield connection
        except BaseException as exc:
            await connection._aclose(self.config.close_timeout)
            # Already closed: the manager's own close returns at once.
            if not await manager.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await connection._aclose(self.config.close_timeout)
            await manager.__aexit__(None, None, None)
