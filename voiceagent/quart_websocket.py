"""Quart-Trio's WebSocket connection, minus one hand-off per received frame.

Quart-Trio runs a relay task per connection: it awaits the server's ASGI `receive()`,
fires the `websocket_received` signal, and puts each message into a memory channel
that `websocket.receive()` reads. Every client frame (50 a second per room) therefore
wakes two tasks and crosses two channels before a session sees it. A session's reader
is always waiting in `websocket.receive()` anyway (it never blocks on anything else),
so here `websocket.receive()` awaits the ASGI `receive()` itself: one task and one
channel fewer per frame, and two tasks fewer per open room (the relay, and the task
that ran the handler beside it). Measured with 40 active rooms on one core, interleaved
runs: 19.1 -> 17.1 ms of server CPU per room-second (medians of three).

One behaviour differs: when the client leaves, the next `receive()` raises
`ClientDisconnected` where Quart-Trio cancelled the handler from outside. A session
then ends by returning, its own scopes cancelling its own tasks, so no Cancelled
exception group travels up through Quart's error handling (measured: each closed room
used to leave ~270 objects of cyclic garbage for the collector). A handler must keep
reading to see the client leave; a session always does (its reader while open, then
its closing handshake until the client's Close reply; tests/session/test_lifecycle.py
holds both). Not kept: the `websocket_received` signal, which nothing here listens to.
Installed with Quart's documented hook, `app.asgi_websocket_class`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, WebsocketScope
from quart.asgi import ASGIWebsocketConnection
from quart_trio.asgi import TrioASGIWebsocketConnection

from voiceagent.session.services import ClientDisconnected


class _DirectReceive:
    """Stands where Quart-Trio's channel was: `.receive()` reads the ASGI stream."""

    def __init__(self) -> None:
        self.asgi_receive: ASGIReceiveCallable | None = None
        self.gone = False

    async def receive(self) -> bytes | str:
        assert self.asgi_receive is not None, "receive() before the connection started"
        while not self.gone:
            event: Any = await self.asgi_receive()
            if event["type"] == "websocket.receive":
                data = event.get("bytes")  # not `bytes or text`: b"" is a binary frame
                return data if data is not None else event["text"]
            if event["type"] == "websocket.disconnect":
                self.gone = True
        raise ClientDisconnected


def _direct_reader(websocket: Any) -> Callable[[], Awaitable[bytes | str]] | None:
    receive = getattr(websocket, "_receive", None)
    return receive if isinstance(getattr(receive, "__self__", None), _DirectReceive) else None


def reads_directly(websocket: Any) -> bool:
    """Whether Quart's `websocket` object reads through `_DirectReceive` (tests use this)."""
    return _direct_reader(websocket) is not None


def receiver_of(websocket: Any) -> Callable[[], Awaitable[bytes | str]]:
    """What a reader that has accepted the socket awaits for the next message.

    On a direct connection, the direct reader itself: Quart's `receive()` only adds an
    `accept()` (a no-op by then) and a coroutine frame that every open room would hold
    while it waits. Any other socket: its own `receive`.
    """
    return _direct_reader(websocket) or websocket.receive


class DirectWebsocketConnection(TrioASGIWebsocketConnection):
    def __init__(self, app: Any, scope: WebsocketScope) -> None:
        super().__init__(app, scope)
        # The relay channel is never used: dropped, not just closed (~1.3 KB a room).
        self.send_channel.close()
        self.send_channel = None  # type: ignore[assignment]
        self.receive_channel = _DirectReceive()  # type: ignore[assignment]

    def __call__(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> Awaitable[None]:
        direct: _DirectReceive = self.receive_channel  # type: ignore[assignment]
        direct.asgi_receive = receive
        websocket = self._create_websocket_from_scope(send)
        # Quart's own handling (errors, HTTP rejection, close), in this very task; handed
        # back to be awaited rather than awaited here: no frame of ours held per room.
        return ASGIWebsocketConnection.handle_websocket(self, websocket, send)
