"""Hypercorn details that matter for voice traffic, kept in one place.

Every rule here belongs to one app: `attach(app, settings)` stores a `Transport` on the
app, and the patched Hypercorn code finds it from the connection's own app (through
the `.app` chain of ASGI wrappers), so two apps in one process keep their own values.
A connection whose app has no `Transport` gets Hypercorn's own behaviour, except the
two fixes in `_handle_events` (which only ever add a Close frame or drop input).

Patches (installed once per process by `attach`, each idempotent):

- No permessage-deflate. Every browser offers it and Hypercorn always accepts it (its
  handshake hard-codes the extension; there is no setting). PCM audio does not
  compress, and per-connection zlib state costs memory and CPU: measured on this
  stack, it raised an idle-after-use connection from ~49 KB to ~146 KB, added ~210 KB
  per active connection and ~15% CPU. The server ignores the client's offer; the
  connection then runs without extensions, which every client must accept (RFC 6455
  §9.1). This one applies to every app in the process.

- A deadline on socket writes. Hypercorn writes each frame inside a *shielded* cancel
  scope (so a frame is never cut in half): a peer that stops reading pins the writing
  task forever: no cancellation, no close, no teardown. The shield stays; a write that
  cannot finish within the app's `WS_WRITE_TIMEOUT_S` drops the connection (the peer
  is gone or hopelessly slow), logs `client_too_slow` (code 1013) and the app sees a
  disconnect. This is the transport-level bound under the session's own 1013 rule
  (which needs the peer to read at least a little). No Close frame can reach a peer
  that does not read: that client sees 1006. Once the server is stopping, writes get
  `SHUTDOWN_WRITE_GRACE_S` at most: `Transport.stop_writes()` (called when a drain
  begins: drain.py) also cuts the writes already blocked, so such a peer cannot hold
  up a shutdown (measured: 7-8 s before, with the default 10 s timeout). Under plain
  `hypercorn`, which has no such hook, only writes that start after the stop get the
  grace.

- A message size limit from the protocol. Hypercorn buffers each message whole up to
  its `websocket_max_message_size` (16 MiB by default, set by whoever runs the
  server), then sends Close 1009 but keeps appending later data to the same buffer.
  Here the limit is also the app's `WS_MAX_MESSAGE_BYTES` (default: the protocol's
  largest message rounded up to a power of two, 256 KiB), under `voiceagent serve` and
  `hypercorn -k trio voiceagent:app` alike. An over-limit message is discarded as it
  arrives (never more than the limit plus one 64 KiB read is held), the client gets
  Close 1009 and `CLOSE_REPLY_GRACE_S` to answer it, then the connection is dropped.
  Measured under `hypercorn -k trio`: 8 clients each leaving 4 MiB of a 15.9 MB
  message unfinished added 32.8 MiB RSS before, 0.8 MiB now (24 clients x 15 MiB:
  1.1 MiB now; ~386 MB before).

- No cancel scope per socket read. Hypercorn wraps every read of every connection in
  `trio.fail_after(read_timeout or inf)`: without a `read_timeout` (the default, and
  `voiceagent serve`'s) that is a cancel scope entered and left per read, which never
  fires. Here a connection without a `read_timeout` reads without it; with one set,
  Hypercorn's loop runs unchanged. Measured: 13 % of the read path's samples at 20 ms
  client frames (py-spy, 50 rooms); the A/B is in
  `benchmarks/results/read_scope_ab.md`. Applies to every app in the process (the
  behaviour is the same, only the scope goes).

- A free write lock without a yield. Hypercorn takes its per-connection write lock
  with `async with`, and trio's `Lock.acquire()` yields to the scheduler even when the
  lock is free: every frame out (each audio chunk, each `audio_interrupted`) waited one
  more scheduler round before its bytes went out. Here a free lock is taken at once
  (a cancelled task still stops before writing, as `acquire()` would make it); a held
  one (Hypercorn's reader answering a ping) is waited for as before. Measured
  (`benchmarks/results/write_lock_ab.md`, 100 ms frames, 100 rooms, medians of five
  interleaved runs): interrupt -> `audio_interrupted` p99 8.1 -> 5.5 ms, server relay
  p99 5 -> 3 ms, server CPU per room-second x0.96.

- No HTTP state after the upgrade. Hypercorn keeps the connection's h11 state machine
  (with the handshake's parsed request) for as long as the WebSocket lives, though
  after the 101 response nothing is ever sent or parsed through it again: an idle room
  held ~1 KB of it. Once the 101 is out, the reference is dropped. Applies to every app
  in the process (nothing reads it any more).

- A Close frame for frames wsproto cannot parse. wsproto reports invalid UTF-8 (1007)
  and protocol violations (1002) as a `CloseConnection` event without sending
  anything, and Hypercorn then dropped the TCP connection; here the client gets a
  Close frame with that code first.

On cancellation a write stays shielded until it completes or meets its deadline (a
frame is never cut by a cancel; only the deadline cuts, and then the connection goes
with it). On error (a broken or closed stream) Hypercorn is told the connection
closed, as before. The over-limit grace task lives in the connection's own task group.

All of these touch Hypercorn internals, so the supported Hypercorn range is pinned in
pyproject.toml, and tests/test_transport.py and tests/test_serve_transport.py fail if
an upgrade turns a patch into a no-op.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.protocol import h11 as h11_protocol
from hypercorn.protocol import ws_stream
from hypercorn.protocol.events import StreamClosed
from hypercorn.trio import tcp_server
from hypercorn.trio.tcp_server import MAX_RECV
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Message, Ping

from voiceagent.close_codes import CloseCode
from voiceagent.logs import log_event

log = logging.getLogger("voiceagent.transport")

_PATCHED = "_voiceagent_patched"
_ATTRIBUTE = "voiceagent_transport"  # where `attach` stores the Transport on the app
SHUTDOWN_WRITE_GRACE_S = 1.0
CLOSE_REPLY_GRACE_S = 2.0


@dataclass(frozen=True, slots=True)
class TransportSettings:
    write_timeout_s: float = 10.0
    max_message_bytes: int = 1 << 18


class Transport:
    """One app's transport rules (fixed once attached) and its writes in flight."""

    def __init__(self, settings: TransportSettings) -> None:
        self.settings = settings
        self._writes: set[trio.CancelScope] = set()
        self._stopping = False

    def write_deadline(self) -> float:
        limit = SHUTDOWN_WRITE_GRACE_S if self._stopping else self.settings.write_timeout_s
        return trio.current_time() + limit

    def stop_writes(self) -> None:
        """The server is stopping: no socket write may take longer than the grace."""
        self._stopping = True
        deadline = trio.current_time() + SHUTDOWN_WRITE_GRACE_S
        for scope in self._writes:
            scope.deadline = min(scope.deadline, deadline)


def attach(app: Any, settings: TransportSettings) -> Transport:
    """Give `app` its transport rules (and install the patches, once per process)."""
    refuse_permessage_deflate()
    _read_without_idle_scope()
    _bound_socket_writes()
    _limit_messages()
    _forget_http_after_upgrade()
    transport = Transport(settings)
    setattr(app, _ATTRIBUTE, transport)
    return transport


def transport_of(app: Any) -> Transport | None:
    """The `Transport` of `app` or of the app it wraps (ASGI wrappers keep `.app`)."""
    for _ in range(8):
        if app is None:
            return None
        transport = getattr(app, _ATTRIBUTE, None)
        if isinstance(transport, Transport):
            return transport
        app = getattr(app, "app", None)
    return None


def refuse_permessage_deflate() -> None:
    """Make Hypercorn negotiate no WebSocket extensions (idempotent; every app)."""
    handshake = ws_stream.Handshake
    if getattr(handshake, _PATCHED, False):
        return
    original_init = handshake.__init__

    @functools.wraps(original_init)
    def init_without_extensions(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self.extensions = None  # as if the client had offered none

    handshake.__init__ = init_without_extensions  # type: ignore[method-assign]
    setattr(handshake, _PATCHED, True)


_READ_PATCHED = "_voiceagent_read_patched"


def _read_without_idle_scope() -> None:
    server = tcp_server.TCPServer
    if getattr(server, _READ_PATCHED, False):
        return
    original_read = server._read_data

    @functools.wraps(original_read)
    async def read_data(self: Any) -> None:
        if self.config.read_timeout:  # a timeout to enforce: Hypercorn's own loop
            await original_read(self)
            return
        # Hypercorn 0.18's `_read_data` with `fail_after(inf)` left out.
        while True:
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())

    server._read_data = read_data  # type: ignore[method-assign]
    setattr(server, _READ_PATCHED, True)


def _bound_socket_writes() -> None:
    server = tcp_server.TCPServer
    if getattr(server, _PATCHED, False):
        return
    original_send = server.protocol_send

    @functools.wraps(original_send)
    async def protocol_send(self: Any, event: Any) -> None:
        transport = self.__dict__.get(_ATTRIBUTE, False)
        if transport is False:  # looked up once per connection
            transport = self.__dict__[_ATTRIBUTE] = transport_of(self.app)
        if transport is None or not isinstance(event, RawData):
            await original_send(self, event)
            return
        if self.context.terminated.is_set():
            transport._stopping = True  # plain `hypercorn` stopping: no `stop_writes()` call
        lock = self.send_lock
        await trio.lowlevel.checkpoint_if_cancelled()  # as `acquire()` would
        try:
            lock.acquire_nowait()  # free (nearly always): no trip through the scheduler
        except trio.WouldBlock:
            await lock.acquire()
        try:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = transport.write_deadline()
                transport._writes.add(scope)
                try:
                    await self.stream.send_all(event.data)
                finally:
                    transport._writes.discard(scope)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self.protocol.handle(Closed())
            return
        finally:
            lock.release()
        if scope.cancelled_caught:
            log_event(
                log,
                "client_too_slow",
                level=logging.WARNING,
                code=int(CloseCode.TRY_AGAIN),
                error="a socket write did not finish in time: connection dropped",
                stopping=transport._stopping,
            )
            # Part of a frame may be on the wire: the stream is unusable, drop it.
            await self._close()
            await self.protocol.handle(Closed())

    server.protocol_send = protocol_send  # type: ignore[method-assign]
    setattr(server, _PATCHED, True)


def _limit_messages() -> None:
    stream = ws_stream.WSStream
    if getattr(stream, _PATCHED, False):
        return
    original_init = stream.__init__

    @functools.wraps(original_init)
    def init(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, app, *args, **kwargs)
        transport = transport_of(app)
        if transport is not None:
            self.buffer.max_length = min(
                self.buffer.max_length, transport.settings.max_message_bytes
            )

    stream.__init__ = init  # type: ignore[method-assign]
    stream._handle_events = _handle_events  # type: ignore[method-assign]
    setattr(stream, _PATCHED, True)


def _forget_http_after_upgrade() -> None:
    connection = h11_protocol.H11WSConnection
    if getattr(connection, _PATCHED, False):
        return
    original_send = connection.send

    @functools.wraps(original_send)
    def send(self: Any, event: Any) -> bytes:
        data = original_send(self, event)
        if getattr(event, "status_code", None) == 101:
            # Switched: every later byte is a WebSocket frame that bypasses h11.
            self.h11_connection = None
        return data

    connection.send = send  # type: ignore[method-assign]
    setattr(connection, _PATCHED, True)


async def _handle_events(self: Any) -> None:
    """Hypercorn 0.18's `WSStream._handle_events`, with the two fixes above."""
    for event in self.connection.events():
        if isinstance(event, Message):
            if self.__dict__.get("_voiceagent_too_big"):
                continue  # after our 1009: discard everything until the client's Close
            try:
                self.buffer.extend(event)
            except ws_stream.FrameTooLargeError:
                size, limit = self.buffer.length, self.buffer.max_length
                self.buffer.clear()
                self._voiceagent_too_big = True
                log_event(log, "message_too_large", level=logging.WARNING, size=size, limit=limit)
                await self._send_wsproto_event(
                    CloseConnection(code=int(CloseCode.TOO_BIG), reason="message too big")
                )
                self.task_group.spawn(_drop_after_grace, self)
                continue
            if event.message_finished:
                await self.app_put(self.buffer.to_message())
                self.buffer.clear()
        elif isinstance(event, Ping):
            await self._send_wsproto_event(event.response())
        elif isinstance(event, CloseConnection):
            if self.connection.state == ConnectionState.REMOTE_CLOSING:
                await self._send_wsproto_event(event.response())
            elif self.connection.state == ConnectionState.OPEN:
                # A frame wsproto could not parse (1007 bad UTF-8, 1002 protocol error).
                log_event(log, "client_protocol_error", code=event.code, error=event.reason)
                reason = (event.reason or "").encode()[:120].decode(errors="ignore")
                await self._send_wsproto_event(CloseConnection(code=event.code, reason=reason))
            await self.send(StreamClosed(stream_id=self.stream_id))


async def _drop_after_grace(stream: Any) -> None:
    """A client that does not answer our 1009 within the grace is cut off."""
    await trio.sleep(CLOSE_REPLY_GRACE_S)
    if not stream.closed:
        await stream.send(StreamClosed(stream_id=stream.stream_id))


def hypercorn_config(host: str, port: int, *, max_message_bytes: int) -> Config:
    """A Hypercorn config for serving voiceagent (the trio worker is required)."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.worker_class = "trio"
    config.websocket_max_message_size = max_message_bytes
    config.accesslog = None
    # Hypercorn's own lines go through the app's log handler (one format, no duplicates).
    config.errorlog = logging.getLogger("hypercorn.error")
    # Voice sessions are long; keep-alive pings are the client's business.
    config.websocket_ping_interval = None
    return config
