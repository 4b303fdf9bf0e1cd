"""Real infrastructure for tests: a `redis-server` on 127.0.0.1, started and stopped here.

`redis_server` (a fixture, available to every test through tests/conftest.py) starts
Debian's `/usr/bin/redis-server` on a free port in the test's temporary directory,
without persistence (`--save "" --appendonly no`), and stops it at the end. The test
is skipped, saying why, only when `redis-server` is not installed (`.ci/run` installs
it).

`RedisServer` also injects faults: `stop()` / `start()` (down, then back on the same
port), `pause()` / `resume()` (SIGSTOP / SIGCONT: a server that accepts but does not
answer), and `call()` speaks RESP directly, with no client library, so a test sees
Redis as it is rather than through the code under test.

`free_port()` and `wait_for_port()` serve other local daemons too (a proxy, the
app in a subprocess).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.02)


class RedisServer:
    def __init__(self, directory: Path, port: int | None = None) -> None:
        if REDIS_SERVER is None:
            raise RuntimeError("redis-server is not installed")
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert REDIS_SERVER is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.call("PING") == "PONG":
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server did not start:\n{log}")
            time.sleep(0.02)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)  # a paused server cannot handle SIGTERM
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def call(self, *args: str | int) -> object:
        """One command over a fresh connection (RESP2), its decoded reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            parts = [str(arg).encode() for arg in args]
            request = b"*%d\r\n" % len(parts)
            for part in parts:
                request += b"$%d\r\n%s\r\n" % (len(part), part)
            conn.sendall(request)
            return _read_reply(conn.makefile("rb"))

    def command_calls(self) -> dict[str, int]:
        """`INFO commandstats` as {command: calls} (commands run by scripts included)."""
        text = str(self.call("INFO", "commandstats"))
        calls: dict[str, int] = {}
        for line in text.splitlines():
            if line.startswith("cmdstat_"):
                name, _, fields = line[len("cmdstat_") :].partition(":")
                for field in fields.split(","):
                    key, _, value = field.partition("=")
                    if key == "calls":
                        calls[name] = int(value)
        return calls


def _read_reply(stream: object) -> object:
    line = stream.readline()  # type: ignore[attr-defined]
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)  # type: ignore[attr-defined]
        return data[:-2].decode()
    if kind == b"*":
        size = int(rest)
        return None if size < 0 else [_read_reply(stream) for _ in range(size)]
    raise ValueError(f"unexpected reply {line!r}")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server on 127.0.0.1 for this test (skipped if not installed)."""
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
