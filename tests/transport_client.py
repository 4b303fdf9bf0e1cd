"""A raw WebSocket client for transport tests: bytes on a socket, frames by wsproto.

trio-websocket reads for its caller and answers Close frames by itself; these tests
need a peer that stops reading, sends frames no library would, or looks at the exact
bytes of a handshake.
"""

from __future__ import annotations

import base64
import fcntl
import os
import socket
import struct
import termios

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Pong, RejectConnection, Request
from wsproto.utilities import generate_accept_token


async def raw_handshake(
    address: str, path: str, extensions: str | None = None, *, rcvbuf: int | None = None
) -> tuple[trio.SocketStream, bytes, bytes]:
    """Open a socket, send an upgrade request; return (stream, response head, the rest)."""
    host, port = address.rsplit(":", 1)
    sock = trio.socket.socket()
    if rcvbuf is not None:  # before connect: the window is negotiated at the handshake
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.connect((host, int(port)))
    stream = trio.SocketStream(sock)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {address}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in response:
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            response += chunk
    head, _, rest = response.partition(b"\r\n\r\n")
    return stream, head, rest


def masked_frame(
    opcode: int, payload: bytes, *, fin: bool = True, length: int | None = None
) -> bytes:
    """One client frame (masked with a zero key); `length` may announce more than sent."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + b"\x00\x00\x00\x00" + payload


def unread_bytes(stream: trio.SocketStream) -> int:
    """Bytes waiting in the socket's receive queue (FIONREAD)."""
    buf = fcntl.ioctl(stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", buf)[0]


class FrameReader:
    """Server frames, parsed from whatever bytes the test has read."""

    def __init__(self, handshake_rest: bytes = b"") -> None:
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.ws.send(Request(host="test", target="/"))  # puts wsproto in the right state
        # Accept the server's 101 without checking its key: the test read it already.
        self.ws.receive_data(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
            + _accept_token(self.ws)
            + b"\r\n\r\n"
            + handshake_rest
        )
        self.close_code: int | None = None
        self.messages = 0
        self.pongs: list[bytes] = []  # the payloads of the server's Pong frames, in order
        self._drain()

    def feed(self, data: bytes | None) -> None:
        self.ws.receive_data(data)
        self._drain()

    def _drain(self) -> None:
        for event in self.ws.events():
            if isinstance(event, AcceptConnection | RejectConnection):
                continue
            if isinstance(event, CloseConnection):
                if self.close_code is None:
                    self.close_code = event.code
            elif isinstance(event, Pong):
                self.pongs.append(bytes(event.payload))
            else:
                self.messages += 1


def _accept_token(ws: WSConnection) -> bytes:
    return generate_accept_token(ws.handshake._nonce)  # type: ignore[attr-defined]


async def read_until_closed(stream: trio.SocketStream, frames: FrameReader, within: float) -> int:
    """Read to EOF; the close code the client sees (1006: no Close frame before EOF)."""
    with trio.fail_after(within):
        while True:
            try:
                data = await stream.receive_some(1 << 16)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                frames.feed(None)
                break
            frames.feed(data)
            if frames.close_code is not None:
                break
    await stream.aclose()
    assert frames.close_code is not None
    return frames.close_code
