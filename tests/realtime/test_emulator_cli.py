"""`python -m voiceagent.emulators realtime` as a user runs it, and its default brain."""

from __future__ import annotations

import subprocess
import sys

import pytest
import trio

from tests.realtime.test_client_turns import until_done
from voiceagent.conversation import AgentSetup, ToolSpec
from voiceagent.emulators.realtime import main
from voiceagent.events import FunctionCall, TextDelta
from voiceagent.models.realtime import RealtimeAPIModel, RealtimeConfig


def test_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as caught:
        main(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for option in ("--port", "--reject-status", "--drop-on-response", "--audio-rtf", "--canned"):
        assert option in out


def test_refuses_to_listen_beyond_loopback():
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2


async def test_cli_server_serves_a_text_turn():
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "voiceagent.emulators",
            "realtime",
            "--port",
            "0",
            "--api-key",
            "k",
            "--canned",
            "Canned reply.",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        with trio.fail_after(15):
            line = b""
            while b"\n" not in line:
                line += await process.stdout.receive_some(1024)
        base = line.split(b" on ", 1)[1].split()[0].decode()
        model = RealtimeAPIModel(
            RealtimeConfig(url=f"{base}/openai/v1/realtime?model=dep", api_key="k")
        )
        async with model.connect(AgentSetup("a", "x"), output="text") as conn:
            await conn.send_text("hi")
            events = await until_done(conn)
        assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == "Canned reply."
    finally:
        process.kill()
        await process.wait()


async def test_default_brain_drives_the_agent_tools(start_emulator):
    """With no brain configured the emulator uses the offline brain on the session's tools."""
    emu = await start_emulator()
    tool = ToolSpec(
        "get_flight_status",
        "Look up the status of a flight.",
        {
            "type": "object",
            "properties": {"flight_number": {"type": "string", "description": "The flight number"}},
            "required": ["flight_number"],
        },
    )
    async with emu.model().connect(AgentSetup("flights", "Help.", (tool,)), output="text") as conn:
        await conn.send_text("what is the status of flight UA 123")
        events = await until_done(conn)
    calls = [(e.name, e.arguments) for e in events if isinstance(e, FunctionCall)]
    assert calls == [("get_flight_status", '{"flight_number": "123"}')]
