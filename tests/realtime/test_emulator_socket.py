"""The Realtime emulator's sockets: the handshake is bounded, the session is not."""

from __future__ import annotations

import pytest
import trio

from tests.realtime.conftest import ScriptedBrain
from tests.realtime.test_client_turns import PLAIN, text_of, until_done
from voiceagent.emulators import realtime


async def test_a_client_that_never_asks_for_an_upgrade_is_let_go(
    start_emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime, "HANDSHAKE_TIMEOUT_S", 0.2)
    emu = await start_emulator()
    stream = await trio.open_tcp_stream("127.0.0.1", emu.port)
    with trio.fail_after(2):
        assert await stream.receive_some(100) == b""  # closed, without an answer


async def test_a_session_outlives_the_handshake_timeout(
    start_emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime, "HANDSHAKE_TIMEOUT_S", 0.2)
    emu = await start_emulator(brain_factory=lambda: ScriptedBrain(call_tools=False))
    async with emu.model().connect(PLAIN, output="text") as conn:
        await conn.send_text("hi")
        assert text_of(await until_done(conn))
        await trio.sleep(0.4)
        await conn.send_text("still there?")
        assert text_of(await until_done(conn))
