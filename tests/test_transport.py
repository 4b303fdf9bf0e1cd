"""The transport rules of transport.py and quart_websocket.py, on a real Hypercorn socket.

These are the contract tests of the patches on Hypercorn and Quart internals
(pyproject.toml pins both ranges): each fails if an upgrade turns a patch into a no-op.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import trio
import trio.testing

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from tests.transport_client import (
    FrameReader,
    masked_frame,
    raw_handshake,
    read_until_closed,
    unread_bytes,
)
from voiceagent.app import create_app
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.quart_websocket import reads_directly
from voiceagent.session.services import Services
from voiceagent.tts.scripted import ScriptedTTS

LONG_REPLY = " ".join(f"word{i}" for i in range(200))
TEXT = 0x1


async def test_permessage_deflate_offered_by_browsers_is_not_negotiated() -> None:
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address:
        offer = "permessage-deflate; client_max_window_bits"
        stream, head, _ = await raw_handshake(address, "/ws/deflate-check", offer)
        await stream.aclose()
        headers = head.lower()
        assert headers.startswith(b"http/1.1 101")
        assert b"sec-websocket-extensions" not in headers
        assert b"permessage-deflate" not in headers


async def test_sessions_read_through_the_direct_quart_hook() -> None:
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address, "hooked") as client:
        await client.wait_for("session_started")
        session = services.registry.get("hooked")
        assert session is not None
        assert reads_directly(session._socket)


async def test_an_open_room_keeps_no_http_state_after_the_upgrade() -> None:
    """Hypercorn's h11 state machine is dropped once the 101 is out (transport.py);
    the room still talks, and a refused handshake still gets its HTTP answer."""
    from hypercorn.protocol.h11 import H11WSConnection

    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address, "upgraded") as client:
        await client.wait_for("session_started")
        connections = [o for o in gc.get_objects() if isinstance(o, H11WSConnection)]
        assert connections, "Hypercorn no longer wraps upgraded connections this way"
        assert all(c.h11_connection is None for c in connections)
        await client.send(type="text", text="hello")
        assert (await client.wait_for("text_done"))["text"]
        async with httpx.AsyncClient() as http:
            refused = await http.get(
                f"http://{address}/ws/bad id",
                headers={
                    "Connection": "Upgrade",
                    "Upgrade": "websocket",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                    "Sec-WebSocket-Version": "13",
                },
            )
        assert refused.status_code == 400


async def test_connections_share_one_null_session() -> None:
    """Quart's per-connection null session is replaced by one shared, read-only one."""
    from quart import session as quart_session

    app = create_app(services=make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk))
    seen = []
    for path in ("/ws/one", "/ws/two"):
        async with app.test_request_context(path):
            seen.append(quart_session._get_current_object())
    assert seen[0] is seen[1]
    with pytest.raises(RuntimeError):
        seen[0]["user"] = "x"  # refuses writes: sharing it is safe


def flooding_services(write_timeout_s: float) -> Services:
    """A room that answers "flood me" with ~50 MB of unpaced audio; the session's own
    1013 rule (WS_SEND_TIMEOUT_S) is set out of reach, so only the write deadline acts."""
    settings = Settings(ws_write_timeout_s=write_timeout_s, ws_send_timeout_s=120.0)
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY))
    tts = ScriptedTTS(ms_per_char=2000)
    return make_services(model, tts, agent=front_desk, settings=settings)


async def deaf_peer(address: str, services: Services, session_id: str) -> tuple[float, float, int]:
    """Flood a peer that never reads; returns when the session is gone:
    (seconds since data first reached us, seconds since our receive buffer last grew,
    the close code seen once we read again).

    The server's write blocks at the earliest once data reached us and at the latest
    once our receive buffer stopped growing: the drop must come `timeout` after that.
    """
    stream, head, rest = await raw_handshake(address, f"/ws/{session_id}", rcvbuf=4096)
    assert head.startswith(b"HTTP/1.1 101")
    await stream.send_all(masked_frame(TEXT, orjson.dumps({"type": "text", "text": "flood me"})))
    first_data_at = last_growth_at = None
    seen = -1
    with trio.fail_after(30):
        while services.registry.get(session_id) is not None or first_data_at is None:
            unread = unread_bytes(stream)
            if unread != seen:
                last_growth_at, seen = trio.current_time(), unread
                first_data_at = first_data_at or last_growth_at
            await trio.sleep(0.01)
    gone_at = trio.current_time()
    assert first_data_at is not None and last_growth_at is not None
    code = await read_until_closed(stream, FrameReader(rest), within=30)
    return gone_at - first_data_at, gone_at - last_growth_at, code


async def test_a_peer_that_never_reads_is_dropped_within_the_write_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No Close frame can reach a peer that does not read, so once it reads again it
    finds the stream ended without one: 1006 (docs/protocol.md). The server says why."""
    timeout = 1.5
    services = flooding_services(timeout)
    with caplog.at_level(logging.INFO):
        async with running_app(services) as address:
            since_first, since_full, code = await deaf_peer(address, services, "deaf")
    assert since_first >= timeout - 0.05
    assert since_full <= timeout + 1.0, since_full
    assert code == 1006
    slow = [r for r in caplog.records if r.getMessage() == "client_too_slow"]
    assert len(slow) == 1 and slow[0].code == 1013  # type: ignore[attr-defined]


async def test_two_apps_in_one_process_keep_their_own_write_timeouts() -> None:
    """The timeout travels with the app: building a second app changes nothing for
    the first (it used to be one process-wide value, the last app built won)."""
    short, long = flooding_services(1.0), flooding_services(4.0)
    results: dict[str, tuple[float, float, int]] = {}
    async with running_app(short) as short_address, running_app(long) as long_address:

        async def run(name: str, address: str, services: Services) -> None:
            results[name] = await deaf_peer(address, services, name)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "short", short_address, short)
            nursery.start_soon(run, "long", long_address, long)
    assert 1.0 - 0.05 <= results["short"][0] and results["short"][1] <= 1.0 + 1.0, results
    assert 4.0 - 0.05 <= results["long"][0] and results["long"][1] <= 4.0 + 1.0, results


def errors_counted(metrics_text: str, code: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(f'voiceagent_errors_total{{code="{code}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_padded_text_message_is_refused_unparsed_and_counted() -> None:
    """Under the transport limit but longer than any message the protocol allows: an
    `error` event, counted in /metrics, and the session goes on."""
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    padded = '{"type":"text","text":"hi","pad":[' + ",".join(["[[[[[[]]]]]]"] * 20_000) + "]}"
    assert services.limits.max_text_message_chars < len(padded) < (1 << 18)
    async with running_app(services) as address, httpx.AsyncClient() as http:
        before = errors_counted(
            (await http.get(f"http://{address}/metrics")).text, "frame_too_large"
        )
        async with connect(address, "padded") as client:
            await client.wait_for("session_started")
            await client.ws.send_message(padded)
            error = await client.wait_for("error")
            assert error["code"] == "frame_too_large"
            await client.send(type="text", text="still there?")
            await client.wait_for("response_done")
        after = errors_counted(
            (await http.get(f"http://{address}/metrics")).text, "frame_too_large"
        )
    assert after == before + 1


async def test_doubled_slashes_never_redirect_to_the_clients_host() -> None:
    """Werkzeug merged `//` with a 308 whose Location came from the Host header."""
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, httpx.AsyncClient() as http:
        for path in ("/static//app.js", "/ws//room"):
            response = await http.get(f"http://{address}{path}", headers={"Host": "evil.example"})
            assert response.status_code == 404, path
            assert "location" not in response.headers, path
        stream, head, _ = await raw_handshake(address, "/ws//room")
        await stream.aclose()
        assert head.startswith(b"HTTP/1.1 404") and b"location" not in head.lower(), head


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (masked_frame(TEXT, b"caf\xc3"), 1007),  # text that is not UTF-8
        (bytes([0x80 | 0x40 | TEXT, 0x80]) + b"\x00" * 4, 1002),  # RSV1 without extension
        (bytes([0x80 | TEXT, 2]) + b"hi", 1002),  # a client frame must be masked
    ],
    ids=["bad-utf8", "rsv1", "unmasked"],
)
async def test_frames_that_break_the_websocket_protocol_get_a_close_frame(
    frame: bytes, code: int
) -> None:
    """wsproto finds the fault; the client is told with a Close frame, not a dropped TCP
    connection (which it would see as 1006)."""
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address:
        stream, head, rest = await raw_handshake(address, "/ws/broken")
        assert head.startswith(b"HTTP/1.1 101"), head
        await stream.send_all(frame)
        assert await read_until_closed(stream, FrameReader(rest), within=10) == code


def metric_value(metrics_text: str, name: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_an_out_of_range_client_metrics_figure_is_refused_not_recorded() -> None:
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    count = "voiceagent_client_e2e_seconds_count"
    async with running_app(services) as address, httpx.AsyncClient() as http:
        before = metric_value((await http.get(f"http://{address}/metrics")).text, count)
        async with connect(address, "skew") as client:
            await client.send(type="client_metrics", response_id="resp_1", e2e_ms=1e8)
            assert (await client.wait_for("error"))["code"] == "invalid_message"
            await client.send(type="client_metrics", response_id="resp_1", e2e_ms=812)
            await client.send(type="text", text="sync")  # a reply: the figure was handled
            await client.wait_for("response_done")
        after = metric_value((await http.get(f"http://{address}/metrics")).text, count)
    assert after == before + 1


@asynccontextmanager
async def app_with_read_timeout(read_timeout: int | None) -> AsyncIterator[str]:
    """The app under Hypercorn's trio worker with `read_timeout` set (or not)."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from voiceagent.app import create_app

    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.websocket_ping_interval = None
    config.read_timeout = read_timeout
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                create_app(services=services),
                config,
                shutdown_trigger=shutdown.wait,
                task_status=task_status,
            )
        )
        try:
            yield binds[0].removeprefix("http://")
        finally:
            shutdown.set()
            nursery.cancel_scope.deadline = trio.current_time() + 5


async def test_socket_reads_enter_no_cancel_scope_without_a_read_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hypercorn wraps each read in `fail_after(read_timeout or inf)`; with no
    read_timeout (the default) the patched loop reads without it, frame after frame."""
    from hypercorn.trio import tcp_server

    scopes = 0
    real_fail_after = tcp_server.trio.fail_after

    def counting_fail_after(seconds: float) -> Any:
        nonlocal scopes
        if sys._getframe(1).f_code.co_name == "_read_data":  # Hypercorn's read loop only
            scopes += 1
        return real_fail_after(seconds)

    monkeypatch.setattr(tcp_server.trio, "fail_after", counting_fail_after)
    async with app_with_read_timeout(None) as address, connect(address, "reads") as client:
        await client.wait_for("session_started")
        for _ in range(20):
            await client.send_audio(bytes(960))
        await client.send(type="text", text="hello")
        await client.wait_for("response_done")
    assert scopes == 0


async def test_a_read_timeout_still_drops_a_silent_connection() -> None:
    """With Hypercorn's `read_timeout` set, its own read loop (and timeout) applies."""
    async with app_with_read_timeout(1) as address:
        stream, head, rest = await raw_handshake(address, "/ws/silent")
        assert head.startswith(b"HTTP/1.1 101")
        started = trio.current_time()
        code = await read_until_closed(stream, FrameReader(rest), within=10)
        assert 0.9 <= trio.current_time() - started < 5
        assert code in (1000, 1006)


def _yields_taking_the_write_lock(counter: list[int]) -> Any:
    """A stand-in for `trio.lowlevel.cancel_shielded_checkpoint` that counts the calls
    made by a lock's `acquire()` on behalf of Hypercorn's `protocol_send`."""
    real = trio.lowlevel.cancel_shielded_checkpoint

    async def counting() -> None:
        frame = sys._getframe(1)
        if frame.f_code.co_name == "acquire":
            callers = [frame.f_back, getattr(frame.f_back, "f_back", None)]
            if any(f is not None and f.f_code.co_name == "protocol_send" for f in callers):
                counter[0] += 1
        await real()

    return counting


async def test_a_free_write_lock_costs_no_trip_through_the_scheduler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hypercorn takes its write lock with `async with`, which yields to the scheduler
    even when the lock is free: one more wait per frame, on the way out of every audio
    chunk and every `audio_interrupted`. Here a free lock is taken at once."""
    yields = [0]
    monkeypatch.setattr(
        trio.lowlevel, "cancel_shielded_checkpoint", _yields_taking_the_write_lock(yields)
    )
    services = make_services(
        ScriptedModel(default=ScriptedReply("one two three four five")),
        ScriptedTTS(ms_per_char=20),
        agent=front_desk,
    )
    async with running_app(services) as address, connect(address, "lock") as client:
        await client.wait_for("session_started")
        await client.send(type="text", text="hello")
        await client.wait_for("response_done")
    assert len(client.events) + len(client.audio) >= 10, "too few frames to tell"
    assert yields[0] == 0


async def test_pongs_written_while_audio_streams_stay_whole_frames() -> None:
    """Hypercorn's reader answers pings on the same socket the session's writer streams
    audio on; whichever writes second waits for the lock, so no frame is cut by another."""
    services = make_services(
        ScriptedModel(default=ScriptedReply(LONG_REPLY)),
        ScriptedTTS(ms_per_char=400),  # unpaced: megabytes of audio, as fast as it goes
        agent=front_desk,
    )
    async with running_app(services) as address:
        stream, head, rest = await raw_handshake(address, "/ws/pings", rcvbuf=65536)
        assert head.startswith(b"HTTP/1.1 101")
        frames = FrameReader(rest)
        await stream.send_all(masked_frame(TEXT, orjson.dumps({"type": "text", "text": "hi"})))
        pings = [f"ping {i}".encode() for i in range(200)]
        with trio.fail_after(30):
            while frames.messages < 5:
                frames.feed(await stream.receive_some(1 << 16))
            await stream.send_all(b"".join(masked_frame(0x9, p) for p in pings))
            while len(frames.pongs) < len(pings):
                frames.feed(await stream.receive_some(1 << 16))
        await stream.aclose()
    assert frames.pongs == pings
    assert frames.close_code is None


class _RecordingStream:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    async def send_all(self, data: bytes) -> None:
        self.written.append(bytes(data))
        await trio.lowlevel.checkpoint()


class _FakeConnection:
    """What the patched `TCPServer.protocol_send` reads of its connection."""

    def __init__(self) -> None:
        from voiceagent.transport import TransportSettings, attach

        class App:
            pass

        self.app = App()
        attach(self.app, TransportSettings())  # installs the patches, once per process
        self.context = type("Context", (), {"terminated": trio.Event()})()
        self.send_lock = trio.Lock()
        self.stream = _RecordingStream()


async def test_a_cancelled_write_sends_nothing_and_leaves_the_lock_free() -> None:
    """The free-lock path skips `acquire()`, so it checks for cancellation itself: a
    cancelled writer raises before its frame goes out, as it did under `async with`."""
    from hypercorn.events import RawData
    from hypercorn.trio.tcp_server import TCPServer

    connection = _FakeConnection()
    with trio.CancelScope() as scope:
        scope.cancel()
        await TCPServer.protocol_send(connection, RawData(b"frame"))  # type: ignore[arg-type]
    assert scope.cancelled_caught
    assert connection.stream.written == []
    assert not connection.send_lock.locked()
    await TCPServer.protocol_send(connection, RawData(b"next"))  # type: ignore[arg-type]
    assert connection.stream.written == [b"next"]


async def test_a_writer_cancelled_while_the_lock_is_held_sends_nothing() -> None:
    from hypercorn.events import RawData
    from hypercorn.trio.tcp_server import TCPServer

    connection = _FakeConnection()
    holder_may_go = trio.Event()

    async def hold_the_lock() -> None:
        async with connection.send_lock:
            await holder_may_go.wait()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(hold_the_lock)
        await trio.testing.wait_all_tasks_blocked()
        with trio.move_on_after(0.05) as scope:
            await TCPServer.protocol_send(connection, RawData(b"frame"))  # type: ignore[arg-type]
        holder_may_go.set()
    assert scope.cancelled_caught
    assert connection.stream.written == []
    assert not connection.send_lock.locked()
