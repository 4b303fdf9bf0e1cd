"""A WebSocket client that can send any frame, valid or not (RFC 6455 section 5.2).

The handshake and the server's frames go through wsproto; what the client sends is
built here, byte by byte, so tests can send what no well-behaved library would:
invalid UTF-8, reserved opcodes and bits, fragments out of order, data after Close.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import orjson
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    RejectConnection,
    Request,
    TextMessage,
)

TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """One masked client frame."""
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)
    size = len(payload)
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 1 << 16:
        header = bytes([first, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([first, 0x80 | 127]) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    keyed = np.frombuffer((mask * (size // 4 + 1))[:size], dtype=np.uint8)
    body = np.bitwise_xor(np.frombuffer(payload, dtype=np.uint8), keyed).tobytes()
    return header + mask + body


def close_code_in(data: bytes) -> int | None:
    """The status code of a client Close frame built by `frame`, else None.

    A server answers a valid Close with the same code (RFC 6455 section 5.5.1), so
    tests must know which codes the client itself sent.
    """
    if len(data) < 6 or data[0] & 0xF != CLOSE:
        return None
    size = data[1] & 0x7F
    offset = {126: 4, 127: 10}.get(size, 2)
    mask, body = data[offset : offset + 4], data[offset + 4 :]
    if size == 0 and len(data) == 6:
        # A Close without a status is answered without one, which the reading side
        # reports as 1005 (RFC 6455 section 7.1.5).
        return 1005
    if len(body) < 2:
        return None
    return (body[0] ^ mask[0]) << 8 | (body[1] ^ mask[1])


@dataclass
class RawClient:
    stream: trio.SocketStream
    protocol: WSConnection
    events: list[dict[str, object]] = field(default_factory=list)
    close_code: int | None = None
    eof: bool = False

    async def send_raw(self, data: bytes) -> bool:
        """False once the server has gone (the rest of a sequence is then moot)."""
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.eof = True
            return False
        return True

    async def read_until(self, done: object, within: float) -> None:
        """Read the server's frames until `done(event)` holds, it closes, or time is up."""
        with trio.move_on_after(within):
            while not self.eof:
                try:
                    data = await self.stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""
                if not data:
                    self.eof = True
                    return
                self.protocol.receive_data(data)
                for ws_event in self.protocol.events():
                    if isinstance(ws_event, TextMessage):
                        event = orjson.loads(ws_event.data)
                        self.events.append(event)
                        if done(event):  # type: ignore[operator]
                            return
                    elif isinstance(ws_event, CloseConnection):
                        self.close_code = ws_event.code
                        return


async def open_raw(address: str, path: str) -> RawClient:
    host, port = address.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    protocol = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(protocol.send(Request(host=address, target=path)))
    with trio.fail_after(10):
        while True:
            data = await stream.receive_some(65536)
            if not data:
                raise ConnectionError("the server closed during the handshake")
            protocol.receive_data(data)
            for ws_event in protocol.events():
                if isinstance(ws_event, AcceptConnection):
                    return RawClient(stream, protocol)
                if isinstance(ws_event, RejectConnection):
                    raise ConnectionError(f"handshake refused: {ws_event.status_code}")
