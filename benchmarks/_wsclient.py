"""A minimal WebSocket client for load generation (benchmarks only, loopback only).

Why not trio-websocket in the load processes: it runs a background reader task per
connection and frames every message through wsproto, so a client costs about what the
server under test costs per frame, and with one core for the load the client would
saturate first. This client does one task per connection, no hand-offs, and builds
client frames with an all-zero masking key (RFC 6455 lets the client choose any key;
XOR with zero leaves the payload as is), so an audio frame is a constant bytes object
built once. It speaks just enough of RFC 6455 for the benchmarks: the upgrade
handshake, binary/text/ping/pong/close frames, and continuation frames on receive.

Every read also takes the kernel's receive time of the bytes (`SO_TIMESTAMPNS`):
`arrived_wall` after `receive()` is when the message reached this host's socket (wall
clock; for a message that came with later bytes in one read, the later ones' time), so
a benchmark can tell the server's delay from the load process's own waits for its core.

On cancellation nothing is cleaned up beyond the socket (`aclose()` is best effort);
protocol violations by the server raise `WsProtocolError`, a close frame raises
`WsClosed` with the server's code.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct

import trio

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_ZERO_MASK = b"\x00\x00\x00\x00"
_MAX_HEADER = 16_384
_MAX_MESSAGE = 4 * 1024 * 1024
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value
_CMSG_SPACE = socket.CMSG_SPACE(16)  # one struct timespec


class WsProtocolError(Exception):
    """The server broke the handshake or the framing rules."""


class WsClosed(Exception):
    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"closed with {code} {reason}".strip())
        self.code = code
        self.reason = reason


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One complete, masked (zero key) client frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65_536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return header + _ZERO_MASK + payload


class LeanWebSocket:
    """One client connection; `receive()` must only be called from one task at a time."""

    __slots__ = ("_buf", "_send_lock", "_stream", "arrived_wall")

    def __init__(self, stream: trio.SocketStream, leftover: bytes) -> None:
        self._stream = stream
        self._buf = bytearray(leftover)
        self.arrived_wall = 0.0  # kernel receive time of the last read (see the docstring)
        stream.socket.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        # Several tasks of a room may send (mic, turns, pongs); frames must not interleave.
        self._send_lock = trio.Lock()

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, headers: list[tuple[str, str]] | None = None
    ) -> LeanWebSocket:
        stream = await trio.open_tcp_stream(host, port)
        try:
            key = base64.b64encode(os.urandom(16))
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: {host}:{port}",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Key: {key.decode()}",
                "Sec-WebSocket-Version: 13",
            ]
            lines += [f"{name}: {value}" for name, value in headers or []]
            await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = bytearray()
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    raise WsProtocolError("connection closed during the handshake")
                data += chunk
                if len(data) > _MAX_HEADER:
                    raise WsProtocolError("handshake response too large")
            head, _, leftover = bytes(data).partition(b"\r\n\r\n")
            status, *header_lines = head.decode("latin-1").split("\r\n")
            if " 101 " not in status + " ":
                raise WsProtocolError(f"upgrade refused: {status!r}")
            expected = base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode()
            accept = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in header_lines)
            }.get("sec-websocket-accept")
            if accept != expected:
                raise WsProtocolError("bad Sec-WebSocket-Accept")
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return cls(stream, leftover)

    async def send_frame(self, frame: bytes) -> None:
        """Send a frame built with `client_frame` (reuse it: frames are constant).

        A frame that fits the socket's buffer (nearly all) is written at once and the
        task yields only after that, holding nothing: `send_all` under the lock yields
        while holding it, so a room's interrupt could wait for its microphone task to be
        scheduled again (a browser's `send()` never waits like that). A frame the buffer
        cannot take whole is finished under the lock, and later frames wait for it.
        """
        lock = self._send_lock
        if not lock.locked():
            try:
                sent = os.write(self._stream.socket.fileno(), frame)
            except BlockingIOError:
                sent = 0
            except OSError as exc:  # as `send_all` would report it
                raise trio.BrokenResourceError(exc) from exc
            if sent == len(frame):
                await trio.lowlevel.checkpoint()
                return
            frame = frame[sent:]
        async with lock:
            await self._stream.send_all(frame)

    async def send_text(self, text: str) -> None:
        await self.send_frame(client_frame(OP_TEXT, text.encode()))

    async def _fill(self) -> None:
        try:
            chunk, ancillary, _, _ = await self._stream.socket.recvmsg(65_536, _CMSG_SPACE)
        except OSError as exc:  # as `receive_some` would report it
            raise trio.BrokenResourceError(exc) from exc
        if not chunk:
            raise WsClosed(None, "connection lost")
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
                seconds, nanoseconds = struct.unpack_from("qq", data)
                self.arrived_wall = seconds + nanoseconds * 1e-9
        self._buf += chunk

    async def receive(self) -> tuple[int, bytes]:
        """The next data message as (OP_TEXT or OP_BINARY, payload); answers pings."""
        parts: list[bytes] = []
        message_op = None
        while True:
            buf = self._buf
            while len(buf) < 2:
                await self._fill()
            b0, b1 = buf[0], buf[1]
            if b1 & 0x80:
                raise WsProtocolError("server frames must not be masked")
            n = b1 & 0x7F
            offset = 2
            if n == 126:
                while len(buf) < 4:
                    await self._fill()
                (n,) = struct.unpack_from("!H", buf, 2)
                offset = 4
            elif n == 127:
                while len(buf) < 10:
                    await self._fill()
                (n,) = struct.unpack_from("!Q", buf, 2)
                offset = 10
            if n > _MAX_MESSAGE:
                raise WsProtocolError(f"frame of {n} bytes")
            while len(buf) < offset + n:
                await self._fill()
            payload = bytes(buf[offset : offset + n])
            del buf[: offset + n]
            opcode = b0 & 0x0F
            if opcode == OP_PING:
                await self.send_frame(client_frame(OP_PONG, payload))
                continue
            if opcode == OP_PONG:
                continue
            if opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise WsClosed(code, payload[2:].decode("utf-8", "replace"))
            if opcode != OP_CONT:
                message_op = opcode
            if message_op is None:
                raise WsProtocolError("continuation frame without a message")
            if b0 & 0x80 and not parts:
                return message_op, payload
            parts.append(payload)
            if b0 & 0x80:
                return message_op, b"".join(parts)

    async def aclose(self, code: int = 1000) -> None:
        """Send a close frame and drop the socket without waiting for the reply."""
        with trio.move_on_after(1):
            try:
                await self.send_frame(client_frame(OP_CLOSE, struct.pack("!H", code)))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        await trio.aclose_forcefully(self._stream)
