"""Faults: every failure is a typed error, promptly, and teardown is bounded."""

from __future__ import annotations

import base64
import hashlib
from functools import partial

import pytest
import trio

from tests.realtime.conftest import ScriptedBrain
from tests.realtime.test_client_turns import PLAIN, until_done
from tests.task_tree import tasks_below
from voiceagent.emulators.realtime import Faults
from voiceagent.events import ModelError, ResponseDone, TextDelta
from voiceagent.models.base import ModelClosed, ModelConnectionError
from voiceagent.models.realtime import RealtimeAPIModel, RealtimeConfig


async def _silent_listener(nursery: trio.Nursery, answer_handshake: bool) -> int:
    """A TCP server that accepts and then never answers (or answers only the handshake)."""

    async def handler(stream: trio.SocketStream) -> None:
        if answer_handshake:
            request = b""
            while b"\r\n\r\n" not in request:
                request += await stream.receive_some(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in request.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key")
            )
            accept = base64.b64encode(
                hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            )
            await stream.send_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
        await trio.sleep_forever()  # never a byte more, never a close frame

    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


async def test_connect_timeout_is_model_unavailable(nursery):
    port = await _silent_listener(nursery, answer_handshake=False)
    model = RealtimeAPIModel(
        RealtimeConfig(
            url=f"ws://127.0.0.1:{port}/openai/v1/realtime?model=d",
            api_key="k",
            connect_timeout=0.3,
        )
    )
    with trio.fail_after(5), pytest.raises(ModelConnectionError) as caught:
        async with model.connect(PLAIN, output="text"):
            pass
    assert caught.value.code == "model_unavailable"


async def test_refused_port_is_model_unavailable():
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connection refused
        model = RealtimeAPIModel(
            RealtimeConfig(url=f"ws://127.0.0.1:{port}/v1/realtime?model=m", api_key="k")
        )
        with pytest.raises(ModelConnectionError) as caught:
            async with model.connect(PLAIN, output="text"):
                pass
    assert caught.value.code == "model_unavailable"


async def test_handshake_429_is_rate_limited(start_emulator):
    emu = await start_emulator(faults=Faults(reject_status=429, reject_first=1))
    with pytest.raises(ModelConnectionError) as caught:
        async with emu.model().connect(PLAIN, output="text"):
            pass
    assert caught.value.code == "rate_limited"
    # Only the first handshake was refused: the next connect works.
    async with emu.model().connect(PLAIN, output="text") as conn:
        await conn.send_text("hi")
        assert isinstance((await until_done(conn))[-1], ResponseDone)


@pytest.mark.parametrize("key", ["wrong-key", ""])
async def test_bad_key_is_model_auth(start_emulator, key):
    emu = await start_emulator()
    with pytest.raises(ModelConnectionError) as caught:
        async with emu.model(api_key=key).connect(PLAIN, output="text"):
            pass
    assert caught.value.code == "model_auth"


async def test_server_error_event_becomes_model_error_and_the_session_goes_on(start_emulator):
    emu = await start_emulator(brain_factory=ScriptedBrain, faults=Faults(error_on_response=1))
    async with emu.model().connect(PLAIN, output="text") as conn:
        await conn.send_text("hi")
        events = await until_done(conn)
        errors = [e for e in events if isinstance(e, ModelError)]
        assert [(e.code, e.fatal) for e in errors] == [("server_error", False)]
        assert events[-1].status == "failed"
        await conn.send_text("again")
        assert (await until_done(conn))[-1].status == "completed"


async def test_invalid_event_error_is_reported_with_its_code(start_emulator):
    emu = await start_emulator(brain_factory=ScriptedBrain)
    async with emu.model().connect(PLAIN, output="text") as conn:
        await conn.commit_audio()  # nothing buffered: the service refuses the commit
        with trio.fail_after(5):
            async for event in conn:
                if isinstance(event, ModelError):
                    break
    assert event.code == "input_audio_buffer_commit_empty"


@pytest.mark.parametrize("output", ["text", "audio"])
async def test_drop_mid_response_raises_promptly_and_sends_then_fail(start_emulator, output):
    emu = await start_emulator(
        brain_factory=lambda: ScriptedBrain("a b c d e f g h", call_tools=False),
        faults=Faults(drop_on_response=1, after_deltas=2),
        tokens_per_s=200,
    )
    seen = []
    async with emu.model().connect(PLAIN, output=output) as conn:
        await conn.send_text("hi")
        with trio.fail_after(5), pytest.raises(ModelConnectionError) as caught:
            async for event in conn:
                seen.append(event)
        assert "mid-response" in str(caught.value)
        with pytest.raises(ModelClosed):
            await conn.send_text("anyone there?")
    assert any(isinstance(e, TextDelta) for e in seen) or output == "audio"
    assert not any(isinstance(e, ResponseDone) for e in seen)


async def test_teardown_is_bounded_when_the_server_never_answers_the_close(nursery):
    port = await _silent_listener(nursery, answer_handshake=True)
    model = RealtimeAPIModel(
        RealtimeConfig(
            url=f"ws://127.0.0.1:{port}/openai/v1/realtime?model=d", api_key="k", close_timeout=0.2
        )
    )
    with trio.fail_after(5):  # a hang guard, not a timing assertion
        async with model.connect(PLAIN, output="text") as conn:
            await conn.send_text("hello?")


async def test_teardown_is_bounded_when_the_server_stalls_mid_response(start_emulator):
    emu = await start_emulator(
        brain_factory=lambda: ScriptedBrain("a b c d e f", call_tools=False),
        faults=Faults(stall_on_response=1, after_deltas=1),
    )
    with trio.fail_after(5):
        async with emu.model().connect(PLAIN, output="text") as conn:
            await conn.send_text("hi")
            async for event in conn:
                if isinstance(event, TextDelta):
                    break


async def test_cancelling_the_owner_closes_the_connection(start_emulator):
    emu = await start_emulator(brain_factory=ScriptedBrain)
    with trio.move_on_after(0.2):
        async with emu.model().connect(PLAIN, output="text") as conn:
            await conn.send_text("hi")
            await trio.sleep_forever()
    with pytest.raises(ModelClosed):
        await conn.send_text("after close")


async def test_a_refused_connect_error_shows_no_address_and_logs_it_redacted() -> None:
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        model = RealtimeAPIModel(
            RealtimeConfig(url=f"ws://127.0.0.1:{port}/v1/realtime?model=m", api_key="k")
        )
        with pytest.raises(ModelConnectionError) as caught:
            async with model.connect(PLAIN, output="text"):
                pass
    assert f"127.0.0.1:{port}" not in str(caught.value)
    assert (caught.value.detail or "").startswith(f"ws://127.0.0.1:{port}/v1/realtime?model=***")


async def test_a_connection_runs_no_task_of_its_own(start_emulator):
    # Events reach the model task straight from the socket: a reader task per room would
    # cost a scheduler pass per event (voiceagent/provider_socket.py).
    emu = await start_emulator(brain_factory=ScriptedBrain)
    me = trio.lowlevel.current_task()
    fixtures = list(me.child_nurseries)  # the emulator's, if the test's task holds it
    async with emu.model().connect(PLAIN, output="text") as conn:
        await conn.send_text("hi")
        events = await until_done(conn)
        assert tasks_below(me, fixtures) == 0
    assert any(isinstance(e, TextDelta) for e in events)
