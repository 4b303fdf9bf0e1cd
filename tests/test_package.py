"""The package as users meet it: a cheap import, `voiceagent:app`, `voiceagent serve`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.infra import RedisServer

HEAVY = ("quart", "hypercorn", "numpy", "piper", "pocketsphinx", "onnxruntime", "voiceagent.app")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_importing_voiceagent_loads_no_framework_and_no_model() -> None:
    code = (
        "import sys, voiceagent\n"
        f"heavy = {HEAVY!r}\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@contextmanager
def _output_file(path: Path) -> Iterator[int]:
    """A file descriptor a child process can write its output to (read `path` after)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        yield fd
    finally:
        os.close(fd)


async def _serve_and_probe(
    command: list[str],
    port: int,
    env: dict[str, str],
    *,
    process: trio.Process | None = None,
    stderr: Any = subprocess.DEVNULL,
) -> dict:
    """GET /healthz once the server answers; stops the server unless `process` is given."""
    own = process is None
    if process is None:
        process = await trio.lowlevel.open_process(
            command, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(60):
                while True:
                    try:
                        response = await client.get(f"http://127.0.0.1:{port}/healthz")
                        return response.json()
                    except httpx.TransportError:
                        await trio.sleep(0.2)
    finally:
        if own:
            await _stop(process)


async def _stop(process: trio.Process, within: float = 10) -> None:
    process.terminate()
    with trio.move_on_after(within):
        await process.wait()
    process.kill()


async def test_voiceagent_serve_runs_the_trio_worker() -> None:
    port = free_port()
    env = {**os.environ, "VOICEAGENT_TTS": "none"}
    health = await _serve_and_probe(
        [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1", "--port", str(port)],
        port,
        env,
    )
    assert health["status"] == "ok" and health["sessions"] == 0


async def test_hypercorn_serves_voiceagent_app_with_the_trio_worker(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "VOICEAGENT_TTS": "none"}
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "-k",
        "trio",
        "voiceagent:app",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    with _output_file(tmp_path / "stderr.log") as stderr:
        health = await _serve_and_probe(command, port, env, stderr=stderr)
    assert health["status"] == "ok" and health["model"] == "offline"
    # Hypercorn's CLI prints its lines with its own handler: each appears once.
    log = (tmp_path / "stderr.log").read_text()
    assert log.count(f"Running on http://127.0.0.1:{port}") == 1, log


def test_a_bad_setting_stops_voiceagent_serve_naming_the_variable() -> None:
    env = {**os.environ, "WS_OUTGOING_MAX": "many"}
    out = subprocess.run(
        [sys.executable, "-m", "voiceagent", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "WS_OUTGOING_MAX" in out.stderr


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"  # a zombie is gone, unreaped
    except FileNotFoundError:
        return False


def _listens_on(pid: int, port: int) -> bool:
    """Whether `pid` holds a socket listening on `port` (from /proc/net/tcp)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    listening = {f"socket:[{row[9]}]" for row in rows if row[3] == "0A" and
                 int(row[1].rsplit(":", 1)[1], 16) == port}  # fmt: skip
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in listening:
                return True
        except OSError:
            pass
    return False


async def _listening_children(pid: int, port: int, *, count: int) -> list[int]:
    """The children of `pid` listening on `port`, once `count` of them are (60 s at most)."""
    with trio.fail_after(60):
        while True:
            listening = [child for child in _children(pid) if _listens_on(child, port)]
            if len(listening) >= count:
                return listening
            await trio.sleep(0.2)


def _sockets_of(pid: int) -> int:
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


async def _serve_workers(
    port: int,
    workers: int,
    redis: RedisServer,
    *,
    tts: str = "none",
    stderr: Any = subprocess.DEVNULL,
) -> tuple[trio.Process, list[int]]:
    """`voiceagent serve --workers N` (sharing `redis`), once every worker listens; the
    worker pids."""
    env = {**os.environ, "VOICEAGENT_TTS": tts, "VOICEAGENT_REDIS_URL": redis.url}
    command = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers)]  # fmt: skip
    process = await trio.lowlevel.open_process(
        command, env=env, stdout=subprocess.DEVNULL, stderr=stderr
    )
    try:
        await _serve_and_probe([], port, env, process=process)
        # One worker answering the probe does not mean the others have bound yet.
        return process, await _listening_children(process.pid, port, count=workers)
    except BaseException:
        await _stop(process)
        raise


async def test_serve_workers_share_connections_evenly(redis_server: RedisServer) -> None:
    """Sessions arriving one by one spread over the workers (own SO_REUSEPORT sockets)."""
    from trio_websocket import open_websocket_url

    port, sessions = free_port(), 60
    process, workers = await _serve_workers(port, 2, redis_server)
    try:
        idle = {pid: _sockets_of(pid) for pid in workers}
        opened = trio.Event()
        release = trio.Event()

        async def session(index: int) -> None:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/spread{index}"):
                if index == sessions - 1:
                    opened.set()
                await release.wait()

        async with trio.open_nursery() as nursery:
            for index in range(sessions):
                nursery.start_soon(session, index)
                await trio.sleep(0.01)  # one by one, the way users arrive
            with trio.fail_after(30):
                await opened.wait()
            await trio.sleep(0.5)
            held = [_sockets_of(pid) - idle[pid] for pid in workers]
            release.set()
        # (give or take the health probe's own keep-alive socket)
        assert sum(held) >= sessions - 2, held
        assert min(held) >= 0.2 * sum(held), held
    finally:
        await _stop(process, within=15)
    # The parent stopped its workers on SIGTERM: none is left behind.
    assert not any(_alive(pid) for pid in workers)


async def test_serve_closes_sessions_with_1001_on_sigterm(redis_server: RedisServer) -> None:
    """A stop tells every live session why (then 1001) instead of dropping it mid-turn."""
    from trio_websocket import ConnectionClosed, open_websocket_url

    port = free_port()
    process, _ = await _serve_workers(port, 2, redis_server)
    try:
        async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/leaving") as ws:
            assert json.loads(await ws.get_message())["type"] == "session_started"
            process.terminate()
            events = []
            with trio.fail_after(10), pytest.raises(ConnectionClosed) as closed:
                while True:
                    events.append(json.loads(await ws.get_message()))
            assert closed.value.reason.code == 1001
            assert events[-1]["type"] == "error"
            assert events[-1]["code"] == "server_shutting_down"
        with trio.fail_after(10):
            assert await process.wait() == 0
    finally:
        await _stop(process)


async def test_a_stop_while_engines_warm_up_is_clean(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """SIGTERM right after start-up, while the local engines still load: every worker
    shuts down gracefully (no traceback, no worker left to the parent's kill timer)."""
    port = free_port()
    with _output_file(tmp_path / "stderr.log") as stderr:
        process, workers = await _serve_workers(port, 2, redis_server, tts="auto", stderr=stderr)
        try:
            async with httpx.AsyncClient() as client:
                health = (await client.get(f"http://127.0.0.1:{port}/healthz")).json()
            process.terminate()
            with trio.fail_after(8):  # under the parent's 10 s wait for a stuck worker
                assert await process.wait() == 0
        finally:
            await _stop(process)
    log = (tmp_path / "stderr.log").read_text()
    assert "Traceback" not in log, log
    assert not any(_alive(pid) for pid in workers)
    if health["ready"]:
        pytest.skip("the engines were loaded before the stop: nothing was warming up")
