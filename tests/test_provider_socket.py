"""The providers' client WebSocket over real sockets, against a scripted wsproto server.

Each test's server accepts one connection and plays a script: what a Realtime or
Cartesia server may do (fragment, ping, close, break the stream, refuse the upgrade).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

from voiceagent.provider_socket import (
    HandshakeFailed,
    HandshakeRejected,
    ProviderSocket,
    SocketClosed,
    open_provider_socket,
)


class Peer:
    """The server's end of one accepted connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.SERVER)
        self.request: Request | None = None
        self.events: list[object] = []

    async def read_request(self) -> Request:
        while self.request is None:
            self.ws.receive_data(await self.stream.receive_some(65536))
            for event in self.ws.events():
                if isinstance(event, Request):
                    self.request = event
        return self.request

    async def accept(self) -> None:
        await self.read_request()
        await self.stream.send_all(self.ws.send(AcceptConnection()))

    async def send(self, *events: object) -> None:
        await self.stream.send_all(b"".join(self.ws.send(e) for e in events))  # type: ignore[arg-type]

    async def next_event(self) -> object:
        """The next event from the client (pongs and closes included)."""
        while not self.events:
            data = await self.stream.receive_some(65536)
            self.ws.receive_data(data or None)
            self.events.extend(self.ws.events())
        return self.events.pop(0)


Script = Callable[[Peer], Awaitable[None]]


async def serve_once(nursery: trio.Nursery, script: Script) -> str:
    """Listen on a free port; play `script` on the first connection; return the URL."""
    listeners = await nursery.start(
        partial(trio.serve_tcp, host="127.0.0.1"), lambda s: script(Peer(s)), 0
    )
    port = listeners[0].socket.getsockname()[1]
    return f"ws://127.0.0.1:{port}/v1/realtime?deployment=x"


async def connect(url: str, max_message_bytes: int = 1 << 20) -> ProviderSocket:
    with trio.fail_after(5):
        return await open_provider_socket(
            url, headers=[("api-key", "k")], max_message_bytes=max_message_bytes
        )


async def test_messages_both_ways_in_order_with_headers_and_target(nursery: trio.Nursery) -> None:
    seen: list[object] = []

    async def script(peer: Peer) -> None:
        request = await peer.read_request()
        seen.append(request)
        await peer.accept()
        for _ in range(3):
            event = await peer.next_event()
            assert isinstance(event, Message)
            seen.append(event.data)
        await peer.send(Message(data="text"), Message(data=b"\x00\x01"))

    ws = await connect(await serve_once(nursery, script))
    await ws.send("one", "two")  # a group: one write
    await ws.send(b"three")
    assert await ws.receive() == "text"
    assert await ws.receive() == b"\x00\x01"
    request = seen[0]
    assert isinstance(request, Request)
    assert request.target == "/v1/realtime?deployment=x"
    assert (b"api-key", b"k") in [(k.lower(), v) for k, v in request.extra_headers]
    assert seen[1:] == ["one", "two", b"three"]


async def test_a_fragmented_message_arrives_whole(nursery: trio.Nursery) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.send(TextMessage(data="hel", message_finished=False))
        await trio.sleep(0.05)
        await peer.send(TextMessage(data="lo", message_finished=True))
        await peer.send(BytesMessage(data=b"a", message_finished=False))
        await peer.send(BytesMessage(data=b"b", message_finished=True))

    ws = await connect(await serve_once(nursery, script))
    assert await ws.receive() == "hello"
    assert await ws.receive() == b"ab"


async def test_a_ping_is_answered_by_a_reader_that_waits(nursery: trio.Nursery) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.send(Ping(payload=b"are you there"))
        assert await peer.next_event() == Pong(payload=b"are you there")
        await peer.send(Message(data="after the pong"))

    ws = await connect(await serve_once(nursery, script))
    with trio.fail_after(2):
        assert await ws.receive() == "after the pong"


async def test_a_pong_goes_before_the_next_send(nursery: trio.Nursery) -> None:
    got: list[object] = []
    both = trio.Event()

    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.send(Ping(payload=b"p"), Message(data="with the ping"))
        got.append(await peer.next_event())
        got.append(await peer.next_event())
        both.set()

    ws = await connect(await serve_once(nursery, script))
    assert await ws.receive() == "with the ping"  # returns at once: the pong waits
    await ws.send("reply")
    with trio.fail_after(2):
        await both.wait()
    assert got == [Pong(payload=b"p"), TextMessage(data="reply")]


async def test_messages_before_a_close_are_read_then_the_close_with_its_code(
    nursery: trio.Nursery,
) -> None:
    reply: list[object] = []
    replied = trio.Event()

    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.send(Message(data="last words"), CloseConnection(code=4001, reason="bye"))
        reply.append(await peer.next_event())
        replied.set()

    ws = await connect(await serve_once(nursery, script))
    assert await ws.receive() == "last words"
    with pytest.raises(SocketClosed) as caught:
        await ws.receive()
    assert (caught.value.reason.code, caught.value.reason.reason) == (4001, "bye")
    with pytest.raises(SocketClosed):
        await ws.send("too late")
    with trio.fail_after(2):
        await replied.wait()
    assert isinstance(reply[0], CloseConnection) and reply[0].code == 4001  # echoed


async def test_a_stream_that_ends_without_a_close_is_1006(nursery: trio.Nursery) -> None:
    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.send(Message(data="x"))
        await peer.stream.aclose()

    ws = await connect(await serve_once(nursery, script))
    assert await ws.receive() == "x"
    with pytest.raises(SocketClosed) as caught:
        await ws.receive()
    assert caught.value.reason.code == 1006


async def test_a_message_over_the_limit_closes_with_1009(nursery: trio.Nursery) -> None:
    reply: list[object] = []
    replied = trio.Event()

    async def script(peer: Peer) -> None:
        await peer.accept()
        await peer.send(Message(data="x" * 2000))
        reply.append(await peer.next_event())
        replied.set()

    ws = await connect(await serve_once(nursery, script), max_message_bytes=1000)
    with pytest.raises(SocketClosed) as caught:
        await ws.receive()
    assert caught.value.reason.code == 1009
    with trio.fail_after(2):
        await replied.wait()
    assert isinstance(reply[0], CloseConnection) and reply[0].code == 1009


async def test_a_cancelled_receive_loses_nothing_even_mid_frame(nursery: trio.Nursery) -> None:
    half_sent = trio.Event()
    go_on = trio.Event()

    async def script(peer: Peer) -> None:
        await peer.accept()
        frame = peer.ws.send(Message(data="a whole message"))
        await peer.stream.send_all(frame[:5])
        half_sent.set()
        await go_on.wait()
        await peer.stream.send_all(frame[5:])

    ws = await connect(await serve_once(nursery, script))
    await half_sent.wait()
    with trio.move_on_after(0.1) as scope:
        await ws.receive()  # reads the first half, then waits: cancelled there
    assert scope.cancelled_caught
    go_on.set()
    with trio.fail_after(2):
        assert await ws.receive() == "a whole message"


async def test_aclose_waits_for_the_servers_close_and_is_bounded_by_the_caller(
    nursery: trio.Nursery,
) -> None:
    answered: list[object] = []

    async def polite(peer: Peer) -> None:
        await peer.accept()
        event = await peer.next_event()
        answered.append(event)
        assert isinstance(event, CloseConnection)
        await peer.send(event.response())

    ws = await connect(await serve_once(nursery, polite))
    with trio.fail_after(2):
        await ws.aclose()
    assert answered == [CloseConnection(code=1000, reason="")]

    async def silent(peer: Peer) -> None:
        await peer.accept()
        await trio.sleep_forever()

    ws = await connect(await serve_once(nursery, silent))
    started = trio.current_time()
    with trio.move_on_after(0.2):
        await ws.aclose()
    assert trio.current_time() - started < 1.0
    with pytest.raises(SocketClosed):
        await ws.send("after close")


@pytest.mark.parametrize(("status", "body"), [(429, b"slow down"), (401, b"")])
async def test_a_refused_upgrade_carries_its_status_and_body(
    nursery: trio.Nursery, status: int, body: bytes
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        headers = [(b"content-length", str(len(body)).encode())]
        await peer.send(RejectConnection(status_code=status, headers=headers, has_body=bool(body)))
        if body:
            await peer.send(RejectData(data=body))

    with pytest.raises(HandshakeRejected) as caught:
        await connect(await serve_once(nursery, script))
    assert (caught.value.status_code, caught.value.body) == (status, body)


@pytest.mark.parametrize("answer", [b"", b"SSH-2.0-OpenSSH_9.2\r\n\r\n"])
async def test_a_server_that_is_not_a_websocket_one_fails_the_handshake(
    nursery: trio.Nursery, answer: bytes
) -> None:
    async def script(peer: Peer) -> None:
        await peer.read_request()
        if answer:
            await peer.stream.send_all(answer)
        await peer.stream.aclose()

    with pytest.raises(HandshakeFailed):
        await connect(await serve_once(nursery, script))


async def test_nothing_listening_and_bad_urls_fail_clearly() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port}/")
    for url in ("http://example.com/", "ws:///no-host"):
        with pytest.raises(ValueError, match="ws://"):
            await connect(url)
