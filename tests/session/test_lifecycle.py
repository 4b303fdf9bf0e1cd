"""Session lifetime: replacement, slow clients, disconnects and provider faults."""

from __future__ import annotations

import types
from collections import Counter

import orjson
import trio
from trio_websocket import open_websocket_url

from tests.conftest import connect, cyclic_garbage, eventually, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.close_codes import CloseCode
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.session.services import ClientDisconnected
from voiceagent.session.session import Session
from voiceagent.tts.scripted import ScriptedTTS

LONG_REPLY = " ".join(f"word{i}" for i in range(200))


def all_tasks() -> list[str]:
    """Names of every live task in this Trio run (the task tree, walked from the root)."""
    names: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        names.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return names


def session_tasks() -> list[str]:
    """Names of live tasks that belong to session code."""
    return [name for name in all_tasks() if "voiceagent.session" in name or "Session." in name]


async def test_an_open_room_costs_the_server_three_tasks() -> None:
    """Hypercorn's connection and app tasks, and the session's writer: nothing else.

    The session reads in its handler task, which awaits the server's ASGI stream
    directly (no framework relay task between the socket and the session).
    """
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address:
        before = Counter(all_tasks())
        async with connect(address, "room-a") as a, connect(address, "room-b") as b:
            await a.wait_for("session_started")
            await b.wait_for("session_started")
            opened = Counter(all_tasks()) - before
            not_rooms = ("trio_websocket", "_serve_one_listener")  # the clients; the listener
            server_side = {name: n for name, n in opened.items()
                           if not any(part in name for part in not_rooms)}  # fmt: skip
            assert sum(server_side.values()) == 2 * 3, server_side
            assert not any("handle_messages" in name for name in server_side)
            # ... and the rooms work: frames reach the session, replies come back.
            await a.send(type="text", text="hello")
            assert (await a.wait_for("text_done"))["text"] == "I heard you."


async def test_second_connection_replaces_first_with_1012() -> None:
    """... and the replaced handler ends with the close handshake (the client answers
    our Close), not at the teardown bound (30 s here)."""
    settings = Settings(teardown_timeout_s=30.0)
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address:
        async with connect(address, "same-room") as first:
            await first.wait_for("session_started")
            async with connect(address, "same-room") as second:
                await second.wait_for("session_started")
                assert await first.wait_closed() == 1012
                assert first.of_type("error")[-1]["code"] == "replaced"
                await second.send(type="text", text="still there?")
                assert (await second.wait_for("text_done"))["text"] == "I heard you."
                assert len(services.registry) == 1
                await eventually(
                    lambda: all_tasks().count("hypercorn.trio.task_group._handle") == 1, within=5
                )


async def test_a_client_leaving_leaves_no_session_in_reference_cycles() -> None:
    """A disconnect is a normal end: no Cancelled exception group is raised through the
    session and the framework (no traceback cycles), and the session runtime itself
    holds no reference cycle, so a finished session is freed by reference counting.

    (tests/session/test_cyclic_garbage.py checks every closing path with the real
    provider clients against the emulators: no cycles at all.)
    """
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), delta_delay=0.01)
    services = make_services(model, ScriptedTTS(realtime_factor=1.0), agent=front_desk)
    async with running_app(services) as address:
        cyclic_garbage()  # start from a clean heap
        for index in range(3):
            async with connect(address, f"leaving-{index}") as client:
                await client.send(type="text", text="talk for a while")
                await client.wait_for("audio_start")
        await eventually(lambda: not (session_tasks() or len(services.registry)), within=5)
        garbage = cyclic_garbage()
        tracebacks = [
            f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
            for tb in garbage
            if isinstance(tb, types.TracebackType)
            and any(place in tb.tb_frame.f_code.co_filename for place in ("voiceagent", "quart"))
        ]
        assert tracebacks == []
        ours = [type(o) for o in garbage if type(o).__module__.startswith("voiceagent")]
        assert ours == []


async def test_disconnect_mid_response_finishes_every_session_task() -> None:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), delta_delay=0.01)
    tts = ScriptedTTS(realtime_factor=1.0)
    services = make_services(model, tts, agent=front_desk)
    async with running_app(services) as address:
        async with connect(address) as client:
            await client.send(type="text", text="talk for a while")
            await client.wait_for("audio_start")
            assert session_tasks(), "the session should be running tasks mid-response"
        # The client is gone. Within the teardown bound every session task is finished.
        await eventually(
            lambda: not (session_tasks() or len(services.registry) or services.registry.with_model),
            within=services.settings.teardown_timeout_s + 1,
        )
        assert tts.cancelled  # the TTS stream was cancelled, not left running


async def test_slow_client_is_closed_1013_with_bounded_queue() -> None:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY * 3))
    settings = Settings(
        ws_outgoing_max=16, ws_send_timeout_s=0.5, ws_tts_chunk_bytes=480, ws_write_timeout_s=1.5
    )
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address:
        async with open_websocket_url(f"ws://{address}/ws/slow", message_queue_size=0) as ws:
            await ws.send_message('{"type":"text","text":"flood me"}')
            # Never read: the server must give up on us rather than buffer forever.
            with trio.fail_after(15):
                while len(services.registry):
                    session = services.registry.get("slow")
                    if session is not None:
                        assert session._outbox.depth() <= 16
                    await trio.sleep(0.05)
            closing = await _close_code(ws)
        assert closing in (1013, 1006)


async def _close_code(ws) -> int | None:  # type: ignore[no-untyped-def]
    from trio_websocket import ConnectionClosed

    with trio.fail_after(10):
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as exc:
            return exc.reason.code


async def test_slow_but_alive_client_sees_1013_close_frame() -> None:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY * 3))
    settings = Settings(ws_outgoing_max=16, ws_send_timeout_s=0.3, ws_tts_chunk_bytes=480)
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="flood me")
        await trio.sleep(2.0)  # stop reading long enough to be judged too slow
        assert await client.wait_closed() == 1013
        # Droppable traffic was dropped (and counted) before the close.
        assert len(client.of_type("text_delta")) < len(LONG_REPLY.split()) * 3


async def test_model_connect_failure_is_reported_and_retried_on_next_input() -> None:
    model = ScriptedModel(default=ScriptedReply("Back online."), fail_connects=1)
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="first try")
        error = await client.wait_for("error")
        assert error["code"] == "model_unavailable"
        await client.send(type="text", text="second try")
        assert (await client.wait_for("text_done"))["text"] == "Back online."
        assert model.connects == 2


async def test_provider_drop_mid_response_ends_response_and_session_recovers() -> None:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), drop_after_deltas=5)
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="go")
        error = await client.wait_for("error")
        assert error["code"] == "model_dropped"
        done = await client.wait_for("response_done")
        assert done["status"] == "failed"
        model.drop_after_deltas = None
        model.default = ScriptedReply("Recovered.")
        await client.send(type="text", text="again")
        assert (await client.wait_for("text_done"))["text"] == "Recovered."
        assert model.connects == 2


async def test_full_audio_channel_drops_newest_and_reader_stays_responsive() -> None:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), delta_delay=0.01, audio_delay=0.2)
    # Audio far faster than real time, on purpose: the rate limit would refuse it first.
    settings = Settings(ws_incoming_audio_max=4, max_audio_rate=0)
    services = make_services(
        model, ScriptedTTS(realtime_factor=0.5), agent=front_desk, settings=settings
    )
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="talk")
        await client.wait_for("audio_start")
        session = services.registry.get("test")
        assert session is not None
        for _ in range(300):  # far more than the channel holds, as fast as we can
            await client.send_audio(b"\x00\x00" * 480)
        await client.send(type="interrupt")
        await client.wait_for("audio_interrupted", within=5)
        assert session._tally.drops_audio_in > 0


async def test_idle_model_connection_is_closed_and_reopened_on_next_input() -> None:
    model = ScriptedModel(default=ScriptedReply("Yes."))
    settings = Settings(model_idle_timeout_s=1.0)
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, connect(address) as client:
        assert services.registry.with_model == 0  # lazy: nothing opened on connect
        await client.send(type="text", text="one")
        await client.wait_for("audio_end")
        assert services.registry.with_model == 1
        with trio.fail_after(5):
            while services.registry.with_model:
                await client.drain(0.1)
        assert client.of_type("error") == []  # an idle close is not an error
        await client.send(type="text", text="two")
        assert (await client.wait_for("text_done"))["text"] == "Yes."
        assert model.connects == 2


class _QuietSocket:
    """A client that sends nothing until the server closes, then leaves."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closed: tuple[int, str] | None = None
        self._gone = trio.Event()

    async def receive(self) -> str | bytes:
        await self._gone.wait()
        raise ClientDisconnected

    async def send(self, data: str | bytes) -> None:
        self.sent.append(data)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = (code, reason)
        self._gone.set()


async def test_a_room_closed_before_its_work_starts_never_reads_and_closes_with_the_code() -> None:
    """close() can come before the work nursery exists (a takeover or a drain during the
    resume lookup): the work must not start, and the socket closes with that code."""
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    socket = _QuietSocket()
    session = Session("early", socket, services)
    session.close(CloseCode.GOING_AWAY, "server shutting down")
    with trio.fail_after(5):
        await session.run()
    assert socket.closed == (CloseCode.GOING_AWAY, "server shutting down")
    events = [orjson.loads(m) for m in socket.sent if isinstance(m, str)]
    assert [e["code"] for e in events if e["type"] == "error"] == ["server_shutting_down"]
    assert not any(e["type"].startswith(("response", "audio")) for e in events)
    assert len(services.registry) == 0
