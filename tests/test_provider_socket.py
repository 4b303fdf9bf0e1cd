"""The providers' WebSocket over real sockets, both sides.

The client side (the server's provider links) against a scripted wsproto server: each
test's server accepts one connection and plays what a Realtime or Cartesia server may do
(fragment, ping, close, break the stream, refuse the upgrade). The serving side (the
emulators) against trio-websocket's client, a standard one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url
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
    Upgrade,
    open_provider_socket,
    read_upgrade,
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


class LastWordsThenClose:
    """A peer script: one message and a Close in one write, then the client's answer."""

    def __init__(self, text: str, code: int, reason: str) -> None:
        self.text, self.code, self.reason = text, code, reason
        self.reply: list[object] = []  # what the client sent back
        self.replied = trio.Event()

    async def __call__(self, peer: Peer) -> None:
        await peer.accept()
        await peer.send(Message(data=self.text), CloseConnection(self.code, self.reason))
        self.reply.append(await peer.next_event())
        self.replied.set()


async def test_messages_before_a_close_are_read_then_the_close_with_its_code(
    nursery: trio.Nursery,
) -> None:
    script = LastWordsThenClose("last words", 4001, "bye")
    reply, replied = script.reply, script.replied
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


async def test_aclose_answers_a_close_that_came_with_the_last_message(
    nursery: trio.Nursery,
) -> None:
    script = LastWordsThenClose("done", 1000, "finished")
    reply, answered = script.reply, script.replied
    ws = await connect(await serve_once(nursery, script))
    assert await ws.receive() == "done"  # the close was read with it, not answered yet
    with trio.fail_after(2):
        await ws.aclose()
        await answered.wait()
    assert isinstance(reply[0], CloseConnection) and reply[0].code == 1000


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


# ------------------------------------------------------------- the serving side (emulators)


async def serve_upgrades(
    nursery: trio.Nursery, answer: Callable[[Upgrade], Awaitable[None]]
) -> tuple[str, list[BaseException]]:
    """Serve `answer` on each upgrade; failures of `read_upgrade` are collected."""
    failures: list[BaseException] = []

    async def handler(stream: trio.SocketStream) -> None:
        try:
            upgrade = await read_upgrade(stream, max_message_bytes=1 << 16)
        except HandshakeFailed as exc:
            failures.append(exc)
            return
        await answer(upgrade)

    listeners = await nursery.start(partial(trio.serve_tcp, host="127.0.0.1"), handler, 0)
    return f"ws://127.0.0.1:{listeners[0].socket.getsockname()[1]}/tts/websocket?x=1", failures


async def test_an_accepted_upgrade_shows_path_and_headers_and_talks(nursery: trio.Nursery) -> None:
    seen: list[tuple[str, str | None]] = []

    async def answer(upgrade: Upgrade) -> None:
        seen.append((upgrade.path, upgrade.header("API-KEY")))
        ws = await upgrade.accept()
        await ws.send(f"echo {await ws.receive()}")
        with pytest.raises(SocketClosed):
            await ws.receive()  # the client's close
        await ws.aclose()

    url, _ = await serve_upgrades(nursery, answer)
    async with open_websocket_url(url, extra_headers=[(b"api-key", b"k1")]) as client:
        await client.send_message("hi")
        assert await client.get_message() == "echo hi"
    assert seen == [("/tts/websocket?x=1", "k1")]


async def test_a_rejected_upgrade_reaches_a_standard_client_with_status_and_body(
    nursery: trio.Nursery,
) -> None:
    async def answer(upgrade: Upgrade) -> None:
        await upgrade.reject(429, headers=[(b"content-type", b"text/plain")], body=b"busy")

    url, _ = await serve_upgrades(nursery, answer)
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(url):
            pass
    assert (caught.value.status_code, caught.value.body) == (429, b"busy")


async def test_a_plain_http_request_is_refused_and_reported(nursery: trio.Nursery) -> None:
    async def answer(upgrade: Upgrade) -> None:
        raise AssertionError("not an upgrade: never answered")

    url, failures = await serve_upgrades(nursery, answer)
    port = int(url.split(":")[2].split("/")[0])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(2):
        reply = await stream.receive_some(1024)
    assert reply.startswith(b"HTTP/1.1 4")
    await trio.testing.wait_all_tasks_blocked()  # the handler has finished
    assert len(failures) == 1 and isinstance(failures[0], HandshakeFailed)


async def test_a_close_started_by_another_task_ends_the_readers_wait(
    nursery: trio.Nursery,
) -> None:
    # The Cartesia emulator's idle watch closes a socket its reader is waiting on.
    ended: list[int] = []

    async def answer(upgrade: Upgrade) -> None:
        ws = await upgrade.accept()

        async def idle_watch() -> None:
            await trio.sleep(0.05)
            await ws.send_close(1000, "idle timeout")

        async with trio.open_nursery() as inner:
            inner.start_soon(idle_watch)
            with pytest.raises(SocketClosed) as caught:
                await ws.receive()
            ended.append(caught.value.reason.code)
        await ws.aclose()

    url, _ = await serve_upgrades(nursery, answer)
    async with open_websocket_url(url) as client:
        with pytest.raises(ConnectionClosed) as caught:
            with trio.fail_after(2):
                await client.get_message()
    assert caught.value.reason.code == 1000
    assert caught.value.reason.reason == "idle timeout"
    assert ended == [1000]
