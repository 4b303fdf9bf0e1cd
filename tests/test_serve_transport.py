"""Transport rules as users run the server: `voiceagent serve` and `hypercorn -k trio`
child processes on 127.0.0.1, driven by raw sockets (tests/transport_client.py)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.test_package import _listening_children, _output_file, _stop, free_port
from tests.transport_client import FrameReader, masked_frame, raw_handshake, unread_bytes

TEXT = 0x1
SERVE = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1", "--port"]
HYPERCORN = [sys.executable, "-m", "hypercorn", "-k", "trio", "voiceagent:app", "--bind"]


@asynccontextmanager
async def server(
    command: list[str], log_path: Path, *, nofile: int | None = None, **env: str
) -> AsyncIterator[tuple[trio.Process, str]]:
    """`command` + a free port, once /healthz says ready; yields (process, host:port).
    `nofile`: the child's soft open-file limit (`ulimit -n`)."""

    def lower_nofile() -> None:
        if nofile is not None:
            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    port = free_port()
    address = f"127.0.0.1:{port}"
    argv = [*command, str(port) if command is SERVE else address]
    environ = {**os.environ, "VOICEAGENT_TTS": "none", "VOICEAGENT_MODEL": "offline", **env}
    with _output_file(log_path) as stderr:
        process = await trio.lowlevel.open_process(
            argv, env=environ, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=lower_nofile
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


BINARY = 0x2
UNFINISHED = 15_900_000  # announced size of the message these clients never finish


async def send_part_of_a_huge_message(stream: trio.SocketStream, part: int) -> None:
    """Announce a 15.9 MB binary message, send `part` bytes of it, stop there."""
    chunk = b"\x00" * (1 << 16)
    try:
        await stream.send_all(masked_frame(BINARY, b"", length=UNFINISHED))
        for _ in range(part // len(chunk)):
            await stream.send_all(chunk)
    except trio.BrokenResourceError:
        pass  # the server cut us off first: what the test wants


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("command", [SERVE, HYPERCORN], ids=["voiceagent-serve", "hypercorn"])
async def test_an_over_limit_message_is_cut_with_1009(command: list[str], tmp_path: Path) -> None:
    """The transport limit comes from the protocol (256 KiB by default), under both
    ways of serving; Hypercorn's own default is 16 MiB. (And both refuse deflate.)"""
    async with server(command, tmp_path / "server.log") as (_, address):
        offer = "permessage-deflate; client_max_window_bits"
        stream, head, rest = await raw_handshake(address, "/ws/huge", offer)
        assert head.startswith(b"HTTP/1.1 101"), head
        assert b"sec-websocket-extensions" not in head.lower(), head  # deflate refused
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_part_of_a_huge_message, stream, 1 << 20)
            frames = FrameReader(rest)
            with trio.fail_after(10):
                while frames.close_code is None:
                    frames.feed(await stream.receive_some(1 << 16) or None)
        await stream.aclose()
    assert frames.close_code == 1009
    assert "msg=message_too_large" in (tmp_path / "server.log").read_text()


async def test_unfinished_huge_messages_do_not_grow_memory_under_plain_hypercorn(
    tmp_path: Path,
) -> None:
    """Eight clients each leave 4 MiB of a 15.9 MB message unfinished. Hypercorn alone
    buffers all of it (measured before the limit: +32.8 MiB RSS; after: +0.8 MiB; 24
    clients leaving 15 MiB each: +1.1 MiB); each now holds at most the limit plus one
    read, then is cut off."""
    async with server(HYPERCORN, tmp_path / "server.log") as (process, address):
        port = int(address.rsplit(":", 1)[1])
        (worker,) = await _listening_children(process.pid, port, count=1)
        before = rss_bytes(worker)
        streams = []
        for index in range(8):
            stream, head, _ = await raw_handshake(address, f"/ws/unfinished{index}")
            assert head.startswith(b"HTTP/1.1 101"), head
            streams.append(stream)
        async with trio.open_nursery() as nursery:
            for stream in streams:
                nursery.start_soon(send_part_of_a_huge_message, stream, 4 << 20)
        await trio.sleep(0.5)
        grown = rss_bytes(worker) - before
        for stream in streams:
            await stream.aclose()
    assert grown < 12 << 20, f"RSS grew by {grown / 2**20:.1f} MiB"


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} in /metrics")


async def test_serve_caps_connections_under_its_open_file_limit(tmp_path: Path) -> None:
    """ulimit -n 128: a cap of 64 WebSockets; the 65th gets HTTP 503 at the handshake,
    /healthz still answers and says so. Descriptors exhausted anyway (idle TCP
    connections): Trio's accept retries (every 0.1 s) log one line per 5 s, no
    traceback, and are counted."""
    log_path = tmp_path / "serve.log"
    async with (
        server(SERVE, log_path, nofile=128) as (_, address),
        httpx.AsyncClient() as http,
    ):
        health = (await http.get(f"http://{address}/healthz")).json()
        assert health["fd_limit"] == 128 and health["max_connections"] == 64
        release = trio.Event()
        opened = 0

        async def room(index: int) -> None:
            nonlocal opened
            async with open_websocket_url(f"ws://{address}/ws/cap{index}") as ws:
                await ws.get_message()  # session_started: the room exists
                opened += 1
                await release.wait()

        async with trio.open_nursery() as nursery:
            for index in range(64):
                nursery.start_soon(room, index)
            with trio.fail_after(30):
                while opened < 64:  # noqa: ASYNC110 (a count, not one event)
                    await trio.sleep(0.05)
            stream, head, _ = await raw_handshake(address, "/ws/one-too-many")
            await stream.aclose()
            assert head.startswith(b"HTTP/1.1 503"), head
            assert b"retry-after: 5" in head.lower(), head
            health = (await http.get(f"http://{address}/healthz")).json()
            assert health["connections"] == 64 and health["sessions"] == 64
            # Run the process out of descriptors with idle TCP connections.
            host, port = address.rsplit(":", 1)
            idle = [await trio.open_tcp_stream(host, int(port)) for _ in range(80)]
            await trio.sleep(1.5)  # ~15 failed accepts
            for stream in idle:
                await stream.aclose()
            release.set()
        with trio.fail_after(20):
            while True:
                try:
                    text = (await http.get(f"http://{address}/metrics")).text
                    break
                except httpx.TransportError:
                    await trio.sleep(0.2)
        assert metric(text, "voiceagent_connections_refused_total") >= 1
        assert metric(text, "voiceagent_accept_errors_total") >= 5
    log = log_path.read_text()
    accept_lines = [line for line in log.splitlines() if "accept returned" in line]
    assert 1 <= len(accept_lines) <= 2, log
    assert "Traceback" not in log, log
