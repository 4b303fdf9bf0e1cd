"""Transport rules as users run the server: `voiceagent serve` and `hypercorn -k trio`
child processes on 127.0.0.1, driven by raw sockets (tests/transport_client.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import trio

from tests.test_package import _output_file, _stop, free_port
from tests.transport_client import masked_frame, raw_handshake, unread_bytes

TEXT = 0x1
SERVE = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1", "--port"]
HYPERCORN = [sys.executable, "-m", "hypercorn", "-k", "trio", "voiceagent:app", "--bind"]


@asynccontextmanager
async def server(
    command: list[str], log_path: Path, **env: str
) -> AsyncIterator[tuple[trio.Process, str]]:
    """`command` + a free port, once /healthz says ready; yields (process, host:port)."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = [*command, str(port) if command is SERVE else address]
    environ = {**os.environ, "VOICEAGENT_TTS": "none", "VOICEAGENT_MODEL": "offline", **env}
    with _output_file(log_path) as stderr:
        process = await trio.lowlevel.open_process(
            argv, env=environ, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(60):
                while True:
                    try:
                        response = await client.get(f"http://{address}/healthz")
                        if response.json()["ready"]:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.2)
        yield process, address
    finally:
        await _stop(process)


async def flood_without_reading(address: str, session_id: str) -> trio.SocketStream:
    """A client that asks for lots of traffic (4000-character texts: growing history
    snapshots) and never reads; returns once the server's writes to it are blocked."""
    stream, head, _ = await raw_handshake(address, f"/ws/{session_id}", rcvbuf=4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    for index in range(40):
        text = f"question {index} " + "x" * 3980
        message = masked_frame(TEXT, orjson.dumps({"type": "text", "text": text}))
        try:
            await stream.send_all(message)
        except trio.BrokenResourceError:
            return stream  # already dropped (a short write timeout)
        await trio.sleep(0.05)
    seen, stable_since = -1, trio.current_time()
    with trio.fail_after(30):
        while trio.current_time() - stable_since < 1.0:
            unread = unread_bytes(stream)
            if unread != seen:
                seen, stable_since = unread, trio.current_time()
            await trio.sleep(0.05)
    return stream


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The kv lines of a child's log, as dicts of their simple fields."""
    lines = []
    for line in path.read_text().splitlines():
        fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
        lines.append(fields)
    return lines


async def test_serve_stops_promptly_with_a_client_that_never_reads(tmp_path: Path) -> None:
    """SIGTERM with a client that stopped reading: out within a bound, not after the
    30 s write timeout; the client is logged as too slow (code 1013), no traceback."""
    log_path = tmp_path / "serve.log"
    slow_writes = {"WS_WRITE_TIMEOUT_S": "30", "WS_SEND_TIMEOUT_S": "60"}
    async with server(SERVE, log_path, **slow_writes) as (process, address):
        stream = await flood_without_reading(address, "deaf")
        process.terminate()
        started = trio.current_time()
        with trio.fail_after(15):
            assert await process.wait() == 0
        stopped_after = trio.current_time() - started
        await stream.aclose()
    assert stopped_after < 5.0, stopped_after
    text = log_path.read_text()
    assert "Traceback" not in text, text
    slow = [line for line in log_lines(log_path) if line.get("msg") == "client_too_slow"]
    assert slow and slow[0]["code"] == "1013" and slow[0]["session"] == "deaf", text


async def test_plain_hypercorn_applies_the_write_timeout(tmp_path: Path) -> None:
    """`hypercorn -k trio voiceagent:app` serves the app through a lazy wrapper: the
    transport rules must still be found through it."""
    log_path = tmp_path / "server.log"
    async with server(HYPERCORN, log_path, WS_WRITE_TIMEOUT_S="1", WS_SEND_TIMEOUT_S="60") as (
        _,
        address,
    ):
        stream = await flood_without_reading(address, "deaf")
        with trio.fail_after(10):
            while "msg=client_too_slow" not in log_path.read_text():  # noqa: ASYNC110
                await trio.sleep(0.1)  # a child's log file: nothing to wait on but time
        await stream.aclose()
