"""`ProviderSocket`: a WebSocket read by the task that wants its messages.

The server's links to its providers (the Realtime model, Cartesia) carry every event of
an answer and every chunk of its audio. A general-purpose client such as trio-websocket
runs a reader task per connection that hands each message through a channel to whoever
awaits it: one more scheduler pass per message, and one more task per room. Here the
consumer (the session's model task, the TTS reader) reads the socket itself and wsproto
parses in the same pass, so a message reaches its consumer in the pass that read it.

Rules:
- One task reads at a time; sends may come from several tasks and are serialised by a
  lock. `send()` takes several messages and writes them in one `send_all`, so a group
  of events (a tool result and the request to answer it) goes out together.
- Cancelling `receive()` loses nothing. Bytes leave the socket only in one
  `receive_some` (an await that takes nothing when cancelled, TLS included once its
  handshake is done), and are parsed without another await into the ready queue.
- Control frames are answered by the reader: a ping before it next waits on the socket
  (or with the next send, if that comes first), a close at once. A link nobody reads
  while idle (Cartesia between answers) must read it in the meantime
  (`tts/cartesia/client.py` does).
- Closing is bounded by the caller: `aclose()` sends a close frame and reads until the
  server's answer or the end of the stream, then drops the TCP stream.

The server's links dial out with `open_provider_socket`; the emulators, which serve the
providers' side, take an upgrade with `read_upgrade` and answer it (`Upgrade.accept()`
gives the same `ProviderSocket`, `Upgrade.reject()` an HTTP status).

Errors: `HandshakeRejected` (the server answered the upgrade with an HTTP status),
`HandshakeFailed` (anything else that ends a handshake early), `OSError` (no route, no
listener) and `SocketClosed` (the socket is closed, by either side; it carries the
close code and reason, 1006 when the stream ended without a close frame).
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, ProtocolError, RemoteProtocolError

from voiceagent.pcm import WS_READ_BYTES

_ABNORMAL = 1006  # RFC 6455: the stream ended without a close frame
_TOO_BIG = 1009
_REJECT_BODY_LIMIT = 4096  # enough of an error page to say why


@dataclass(frozen=True, slots=True)
class CloseReason:
    code: int
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.code} {self.reason}".rstrip()


class SocketClosed(Exception):
    """The socket is closed; `reason` says how."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(str(reason))
        self.reason = reason


class HandshakeRejected(Exception):
    """The server refused the upgrade with an HTTP status (429, 401, ...)."""

    def __init__(self, status_code: int, body: bytes) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code
        self.body = body


class HandshakeFailed(Exception):
    """The handshake ended early: the stream closed, or the answer was not HTTP."""


class ProviderSocket:
    """One open client WebSocket; see the module docstring for the rules."""

    def __init__(
        self, stream: trio.abc.Stream, ws: WSConnection, *, max_message_bytes: int, read_bytes: int
    ) -> None:
        self._stream = stream
        self._ws = ws
        self._max_message_bytes = max_message_bytes
        self._read_bytes = read_bytes
        self._ready: deque[str | bytes] = deque()
        self._parts: list[str | bytes] = []  # the message being assembled from frames
        self._parts_size = 0
        self._control = b""  # pongs and a close reply, written by the next reader
        self._send_lock = trio.Lock()
        self.closed: CloseReason | None = None
        self._absorb()  # frames that came with the handshake's answer

    async def send(self, *messages: str | bytes) -> None:
        """Send the messages in order, in one write; `SocketClosed` once closed."""
        async with self._send_lock:
            if self.closed is not None:
                raise SocketClosed(self.closed)
            try:
                data = b"".join(self._ws.send(Message(data=m)) for m in messages)
            except LocalProtocolError:  # closing: the server's close is on its way
                raise SocketClosed(self.closed or CloseReason(_ABNORMAL)) from None
            if self._control:  # a pong the reader has not written yet goes first
                data, self._control = self._control + data, b""
            await self._write(data)

    async def receive(self) -> str | bytes:
        """The next message. Messages that arrived before a close are still returned."""
        while not self._ready:
            if self._control:
                await self._flush_control()
            if self.closed is not None:
                raise SocketClosed(self.closed)
            try:
                data = await self._stream.receive_some(self._read_bytes)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            self._ws.receive_data(data or None)
            self._absorb()
        return self._ready.popleft()

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Start the close handshake from any task; the reader sees it end (`SocketClosed`
        once the peer answers or the stream ends)."""
        async with self._send_lock:
            if self._ws.state is ConnectionState.OPEN:
                await self._write(self._ws.send(CloseConnection(code=code, reason=reason)))

    async def aclose(self) -> None:
        """Send a close frame, read until the server's answer or EOF, drop the stream.

        The caller bounds it (a server may never answer); the stream is closed however
        it ends.
        """
        try:
            if self._control:  # the answer to the peer's close, if it has not gone yet
                await self._flush_control()
            if self._ws.state is ConnectionState.OPEN:
                async with self._send_lock:
                    await self._write(self._ws.send(CloseConnection(code=1000)))
            while self._ws.state is ConnectionState.LOCAL_CLOSING:
                data = await self._stream.receive_some(self._read_bytes)
                self._ws.receive_data(data or None)
                self._ready.clear()  # nobody reads any more
                self._absorb()
        except (trio.BrokenResourceError, trio.ClosedResourceError, SocketClosed):
            pass
        except trio.BusyResourceError:
            pass  # another task still reads: it sees the stream close below
        finally:
            if self.closed is None:
                self.closed = CloseReason(1000)
            await trio.aclose_forcefully(self._stream)

    def _absorb(self) -> None:
        """Move parsed frames into the ready queue; queue the control frames to write."""
        for event in self._ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                self._parts.append(event.data)
                self._parts_size += len(event.data)
                if self._parts_size > self._max_message_bytes:
                    self._fail(_TOO_BIG, f"message over {self._max_message_bytes} bytes")
                    return
                if event.message_finished:
                    self._ready.append(_joined(self._parts))
                    self._parts, self._parts_size = [], 0
            elif isinstance(event, Ping):
                self._control += self._ws.send(event.response())
            elif isinstance(event, CloseConnection):
                self._closed_by_peer(event)
                return

    def _closed_by_peer(self, event: CloseConnection) -> None:
        state = self._ws.state
        if state is ConnectionState.REMOTE_CLOSING:
            self._control += self._ws.send(event.response())
        elif state is ConnectionState.OPEN:  # wsproto could not parse a frame: say so
            self._fail(event.code, event.reason or "")
            return
        if self.closed is None:
            self.closed = CloseReason(event.code, event.reason or "")

    def _fail(self, code: int, reason: str) -> None:
        """Close from our side over a frame we refuse; the reader sends the close."""
        self._control += self._ws.send(CloseConnection(code=code, reason=reason))
        self.closed = CloseReason(code, reason)
        self._parts, self._parts_size = [], 0

    async def _flush_control(self) -> None:
        async with self._send_lock:
            data, self._control = self._control, b""
            try:
                await self._write(data)
            except SocketClosed:
                pass  # the reader sees the close next

    async def _write(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            if self.closed is None:
                self.closed = CloseReason(_ABNORMAL, "the stream broke")
            raise SocketClosed(self.closed) from None


def _joined(parts: list[str | bytes]) -> str | bytes:
    if len(parts) == 1:
        return parts[0]
    if isinstance(parts[0], str):
        return "".join(p for p in parts if isinstance(p, str))
    return b"".join(p for p in parts if isinstance(p, bytes))


async def open_provider_socket(
    url: str,
    *,
    headers: list[tuple[str, str]],
    max_message_bytes: int,
    read_bytes: int = WS_READ_BYTES,
    ssl_context: ssl.SSLContext | None = None,
) -> ProviderSocket:
    """Connect to a ``ws://`` or ``wss://`` URL and complete the upgrade.

    The caller bounds the time (`trio.fail_after`). Raises `HandshakeRejected`,
    `HandshakeFailed`, `OSError`, or `ValueError` for a URL that is not a WebSocket one.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError("a WebSocket URL starts with ws:// or wss:// and names a host")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port:
        host = f"{host}:{parts.port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    stream: trio.abc.Stream
    if secure:
        context = ssl_context or ssl.create_default_context()
        stream = await trio.open_ssl_over_tcp_stream(parts.hostname, port, ssl_context=context)
    else:
        stream = await trio.open_tcp_stream(parts.hostname, port)
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        request = Request(host=host, target=target, extra_headers=[
            (k.encode(), v.encode()) for k, v in headers
        ])  # fmt: skip
        await stream.send_all(ws.send(request))
        await _read_answer(stream, ws, read_bytes)
    except trio.BrokenResourceError as exc:
        await trio.aclose_forcefully(stream)
        raise HandshakeFailed(f"the stream broke during the handshake: {exc}") from None
    except BaseException:
        await trio.aclose_forcefully(stream)
        raise
    return ProviderSocket(stream, ws, max_message_bytes=max_message_bytes, read_bytes=read_bytes)


async def _read_answer(stream: trio.abc.Stream, ws: WSConnection, read_bytes: int) -> None:
    """Read the upgrade's answer; return on 101, raise on anything else."""
    status = 0
    body = b""
    while True:
        data = await stream.receive_some(read_bytes)
        try:
            ws.receive_data(data or None)
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return
                if isinstance(event, RejectConnection):
                    status = event.status_code
                    if not event.has_body:
                        raise HandshakeRejected(status, b"")
                elif isinstance(event, RejectData):
                    body += event.data
                    if event.body_finished or len(body) >= _REJECT_BODY_LIMIT:
                        raise HandshakeRejected(status, body[:_REJECT_BODY_LIMIT])
        except (ProtocolError, ValueError) as exc:
            raise HandshakeFailed(f"not a WebSocket answer: {exc}") from None
        if not data:
            if status:
                raise HandshakeRejected(status, body)
            raise HandshakeFailed("the server closed the stream during the handshake")


class Upgrade:
    """A client's upgrade request, read by `read_upgrade`: the serving side of a provider
    (the emulators). Answer it once, with `accept()` or `reject()`."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        ws: WSConnection,
        request: Request,
        *,
        max_message_bytes: int,
        read_bytes: int,
    ) -> None:
        self._stream = stream
        self._ws = ws
        self.path = request.target
        self.headers: list[tuple[bytes, bytes]] = [
            (bytes(k).lower(), bytes(v)) for k, v in request.extra_headers
        ]
        self._limits = {"max_message_bytes": max_message_bytes, "read_bytes": read_bytes}

    def header(self, name: str) -> str | None:
        """The value of header `name` (case-insensitive), or None."""
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key == wanted:
                return value.decode("latin-1")
        return None

    async def accept(self) -> ProviderSocket:
        await self._stream.send_all(self._ws.send(AcceptConnection()))
        return ProviderSocket(self._stream, self._ws, **self._limits)

    async def reject(
        self, status: int, *, headers: Sequence[tuple[bytes, bytes]] = (), body: bytes = b""
    ) -> None:
        """Answer with an HTTP status (and a body), then close the stream."""
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        data = self._ws.send(RejectConnection(status_code=status, headers=headers, has_body=True))
        data += self._ws.send(RejectData(data=body))
        try:
            await self._stream.send_all(data)
        finally:
            await trio.aclose_forcefully(self._stream)


async def read_upgrade(
    stream: trio.abc.Stream, *, max_message_bytes: int, read_bytes: int = WS_READ_BYTES
) -> Upgrade:
    """Read a client's upgrade request from an accepted stream (the caller bounds the time).

    Raises `HandshakeFailed` when the stream ends first or the request is not a
    WebSocket upgrade (the client then gets the HTTP error wsproto answers with).
    """
    ws = WSConnection(ConnectionType.SERVER)
    while True:
        data = await stream.receive_some(read_bytes)
        if not data:
            raise HandshakeFailed("the client closed the stream during the handshake")
        try:
            ws.receive_data(data)
            for event in ws.events():
                if isinstance(event, Request):
                    return Upgrade(
                        stream,
                        ws,
                        event,
                        max_message_bytes=max_message_bytes,
                        read_bytes=read_bytes,
                    )
        except RemoteProtocolError as exc:
            if exc.event_hint is not None:
                with trio.move_on_after(1):
                    await stream.send_all(ws.send(exc.event_hint))
            raise HandshakeFailed(f"not a WebSocket upgrade: {exc}") from None
