"""Hypercorn details that matter for voice traffic, kept in one place.

`refuse_permessage_deflate()`: every browser offers permessage-deflate and Hypercorn
always accepts it (its WebSocket handshake hard-codes the extension; there is no
setting). PCM audio does not compress, and per-connection zlib state costs memory and
CPU: measured on this stack, it raised an idle-after-use connection from ~49 KB to
~146 KB, added ~210 KB per active connection and ~15% CPU. So the server's side of the
handshake is made to ignore the client's extension offer; the connection then runs
without extensions, which every client must accept (RFC 6455 §9.1).

`bound_socket_writes(timeout)`: Hypercorn writes each frame to the TCP stream inside a
*shielded* cancel scope (so a frame is never cut in half), which means a peer that
stops reading pins the writing task forever: no cancellation, no close, no teardown.
We keep the shield and add a deadline to it: a write that cannot finish within
`timeout` seconds closes the connection (the peer is gone or hopelessly slow) and the
app sees a normal disconnect. This is the transport-level bound under the session's
own 1013 rule (which needs the peer to read at least a little).

Both patches touch Hypercorn internals, so the supported Hypercorn range is pinned in
pyproject.toml and tests/test_transport.py checks both behaviours over real sockets.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.events import Closed, RawData
from hypercorn.protocol import ws_stream
from hypercorn.trio import tcp_server

_PATCHED = "_voiceagent_no_deflate"


def refuse_permessage_deflate() -> None:
    """Make Hypercorn negotiate no WebSocket extensions (idempotent)."""
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


_write_timeout = 10.0


def bound_socket_writes(timeout: float) -> None:
    """Give every Hypercorn socket write a deadline of `timeout` seconds (idempotent)."""
    global _write_timeout
    _write_timeout = timeout
    server = tcp_server.TCPServer
    if getattr(server, _PATCHED, False):
        return
    original_send = server.protocol_send

    @functools.wraps(original_send)
    async def protocol_send(self: Any, event: Any) -> None:
        if not isinstance(event, RawData):
            await original_send(self, event)
            return
        async with self.send_lock:
            try:
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + _write_timeout
                    await self.stream.send_all(event.data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await self.protocol.handle(Closed())
                return
        if scope.cancelled_caught:
            # Part of a frame may be on the wire: the stream is unusable, drop it.
            await self._close()
            await self.protocol.handle(Closed())

    server.protocol_send = protocol_send  # type: ignore[method-assign]
    setattr(server, _PATCHED, True)


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
