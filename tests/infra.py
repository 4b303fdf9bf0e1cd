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

Servers of the load-balancer tests (and benchmarks/scale_out.py), all on 127.0.0.1:

- `child()` starts a process with its output in a file and always stops it on the
  way out: SIGTERM, then SIGKILL after `stop_within` seconds (a test that already
  killed it is fine).
- `voiceagent_serve()` runs `voiceagent serve` in a directory of its own (so no `.env`
  of the checkout is read) and returns once `/healthz` says ready;
  `voiceagent_fleet()` starts several side by side; `realtime_emulator()` is their
  model.
- `haproxy()` and `nginx()` run Debian's HAProxy and nginx with `deploy/haproxy.cfg`
  and `deploy/nginx.conf` as shipped, only their addresses rewritten
  (`render_haproxy_config`, `render_nginx_config`).
Every wait is bounded; a child that does not come up fails the test with the tail of
its output.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

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


# -- the load-balancer tests -----------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
HAPROXY_CONFIG = REPO / "deploy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
ADMIN_TOKEN = "admin-token-for-infrastructure-tests"


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@asynccontextmanager
async def child(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stop_within: float = 15,
) -> AsyncIterator[trio.Process]:
    """`argv` as a child process, stdout and stderr in `log_path`; stopped on exit."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        process = await trio.lowlevel.open_process(
            list(argv), env=dict(env or os.environ), cwd=cwd, stdout=fd, stderr=fd
        )
    finally:
        os.close(fd)
    try:
        yield process
    finally:
        with trio.CancelScope(shield=True):
            await stop(process, within=stop_within)


async def stop(process: trio.Process, within: float = 15) -> int | None:
    """SIGTERM, wait up to `within` s, then SIGKILL; returns the exit status."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(within):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    return process.returncode


async def wait_until_answers(
    url: str,
    log_path: Path,
    *,
    ok: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200,
    within: float = 60,
    process: trio.Process | None = None,
) -> None:
    """GET `url` until `ok(response)`; fail with the child's output after `within` s."""
    async with httpx.AsyncClient(timeout=2) as client:
        with trio.move_on_after(within):
            while process is None or process.returncode is None:
                try:
                    if ok(await client.get(url)):
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {within} s:\n{tail(log_path)}")


@dataclass
class Instance:
    """One `voiceagent serve` process."""

    name: str
    port: int
    process: trio.Process
    log_path: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def session_ids(self) -> set[str]:
        """The rooms this instance holds now (its admin API)."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://{self.address}/admin/sessions", headers=headers)
        response.raise_for_status()
        return {session["session_id"] for session in response.json()["sessions"]}


@asynccontextmanager
async def voiceagent_serve(
    name: str, directory: Path, env: Mapping[str, str], *, within: float = 60
) -> AsyncIterator[Instance]:
    """`voiceagent serve` on a free port in `directory`, once /healthz says ready.

    `env` is added to a copy of this process's environment; the admin API is on
    (`ADMIN_TOKEN`), so tests can list an instance's rooms.
    """
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    log_path = directory / f"{name}.log"
    argv = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1"]
    environ = {**os.environ, "VOICEAGENT_ADMIN_TOKEN": ADMIN_TOKEN, **env}
    async with child([*argv, "--port", str(port)], log_path, env=environ, cwd=directory) as proc:
        await wait_until_answers(
            f"http://127.0.0.1:{port}/healthz",
            log_path,
            ok=lambda response: response.status_code == 200 and response.json()["ready"],
            within=within,
            process=proc,
        )
        yield Instance(name, port, proc, log_path)


def render_haproxy_config(frontend_port: int, stats_port: int, servers: Sequence[int]) -> str:
    """deploy/haproxy.cfg as shipped, with 127.0.0.1 addresses: the frontend's, the
    stats page's and one `server` line per port (named va1, va2, ...)."""
    text = HAPROXY_CONFIG.read_text()
    text = re.sub(r"(?m)^(\s*)bind :8080$", rf"\1bind 127.0.0.1:{frontend_port}", text)
    text = re.sub(r"(?m)^(\s*)bind 127\.0\.0\.1:8404$", rf"\1bind 127.0.0.1:{stats_port}", text)
    lines = [f"    server va{i} 127.0.0.1:{port}" for i, port in enumerate(servers, 1)]
    text, count = re.subn(r"(?m)(^\s*server va\d+ \S+\n)+", "\n".join(lines) + "\n", text)
    assert count == 1, "deploy/haproxy.cfg: the `server` lines were not found"
    return text


@dataclass
class Proxy:
    """A running HAProxy: its frontend and its stats page."""

    port: int
    stats_port: int
    process: trio.Process

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def server_states(self) -> dict[str, str]:
        """`{"va1": "UP", "va2": "DOWN", ...}` from the stats page (CSV)."""
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{self.stats_port}/stats;csv")
        rows = [line.split(",") for line in response.text.splitlines() if line]
        header = rows[0]
        name, status = header.index("svname"), header.index("status")
        return {
            row[name]: row[status].split(" ")[0]
            for row in rows[1:]
            if row[0] == "voiceagent" and row[name].startswith("va")
        }

    async def wait_for_states(self, wanted: Mapping[str, str], within: float = 15) -> None:
        with trio.fail_after(within):
            while True:
                states = await self.server_states()
                if all(states.get(server) == state for server, state in wanted.items()):
                    return
                await trio.sleep(0.1)


@asynccontextmanager
async def haproxy(directory: Path, servers: Sequence[int]) -> AsyncIterator[Proxy]:
    """HAProxy in front of `servers` (ports on 127.0.0.1), once every server is UP."""
    os.makedirs(directory, exist_ok=True)
    port, stats_port = free_port(), free_port()
    config = directory / "haproxy.cfg"
    config.write_text(render_haproxy_config(port, stats_port, servers))
    log_path = directory / "haproxy.log"
    async with child([HAPROXY, "-f", str(config), "-db"], log_path, cwd=directory) as process:
        await wait_until_answers(
            f"http://127.0.0.1:{stats_port}/stats;csv", log_path, process=process, within=15
        )
        proxy = Proxy(port, stats_port, process)
        await proxy.wait_for_states({f"va{i}": "UP" for i in range(1, len(servers) + 1)})
        yield proxy


def haproxy_available() -> bool:
    try:
        return subprocess.run([HAPROXY, "-v"], capture_output=True, check=False).returncode == 0
    except OSError:
        return False


@asynccontextmanager
async def emulator_process(
    directory: Path, kind: str, *args: str, within: float = 30
) -> AsyncIterator[tuple[int, trio.Process]]:
    """`python -m voiceagent.emulators KIND` (`realtime` or `cartesia`) on a free port
    (`args` added), once it accepts connections; yields its port and process."""
    os.makedirs(directory, exist_ok=True)
    port = free_port()
    log_path = directory / f"{kind}-emulator-{port}.log"
    argv = [sys.executable, "-m", "voiceagent.emulators", kind, "--port", str(port), *args]
    async with child(argv, log_path, cwd=directory) as process:
        listening = False
        with trio.move_on_after(within):
            while process.returncode is None and not listening:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", port)
                except OSError:
                    await trio.sleep(0.1)
                    continue
                await stream.aclose()
                listening = True
        if not listening:
            raise AssertionError(f"the {kind} emulator did not start:\n{tail(log_path)}")
        yield port, process


def realtime_emulator(
    directory: Path, *args: str, within: float = 30
) -> AbstractAsyncContextManager[tuple[int, trio.Process]]:
    """The Realtime emulator (see `emulator_process`)."""
    return emulator_process(directory, "realtime", *args, within=within)


def emulated_openai_env(realtime_port: int) -> dict[str, str]:
    """Settings that point `voiceagent serve` at the realtime emulator, model audio only."""
    return {
        "VOICEAGENT_MODEL": "openai",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_REALTIME_URL": f"ws://127.0.0.1:{realtime_port}/v1/realtime",
        "VOICEAGENT_TTS": "none",
    }


@asynccontextmanager
async def voiceagent_fleet(
    directory: Path, size: int, env: Mapping[str, str]
) -> AsyncIterator[list[Instance]]:
    """`size` instances started side by side (start-up is mostly imports: in parallel
    it takes about as long as one); all stopped on exit."""
    instances: dict[int, Instance] = {}
    up = trio.Event()

    async def hold(index: int) -> None:
        async with voiceagent_serve(f"va{index + 1}", directory / f"va{index + 1}", env) as one:
            instances[index] = one
            if len(instances) == size:
                up.set()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        for index in range(size):
            nursery.start_soon(hold, index)
        await up.wait()
        try:
            yield [instances[index] for index in range(size)]
        finally:
            nursery.cancel_scope.cancel()


NGINX_CONFIG = REPO / "deploy" / "nginx.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def nginx_available() -> bool:
    return os.access(NGINX, os.X_OK)


def render_nginx_config(port: int, servers: Sequence[int]) -> str:
    """deploy/nginx.conf as shipped, listening on 127.0.0.1:`port`, one `server` line
    per instance port."""
    text = NGINX_CONFIG.read_text()
    text, listens = re.subn(r"(?m)^(\s*)listen 8080;$", rf"\1listen 127.0.0.1:{port};", text)
    ports = iter(servers)
    lines = re.compile(r"(?m)^(\s*)server 10\.0\.0\.\d+:8001 (.*)$")
    text, count = lines.subn(lambda m: f"{m[1]}server 127.0.0.1:{next(ports)} {m[2]}", text)
    assert listens == 1 and count == len(servers), "deploy/nginx.conf: addresses not found"
    return text


@asynccontextmanager
async def nginx(directory: Path, servers: Sequence[int]) -> AsyncIterator[str]:
    """nginx in front of `servers` (exactly as many as deploy/nginx.conf lists), in the
    foreground with its files in `directory`; yields its `host:port`."""
    os.makedirs(directory / "logs", exist_ok=True)
    port = free_port()
    (directory / "voiceagent.conf").write_text(render_nginx_config(port, servers))
    main = (
        f"pid {directory}/nginx.pid;\nerror_log {directory}/logs/error.log;\n"
        "daemon off;\nevents {}\n"
        f"http {{\n  access_log off;\n  include {directory}/voiceagent.conf;\n}}\n"
    )
    (directory / "nginx.conf").write_text(main)
    log_path = directory / "nginx.log"
    argv = [NGINX, "-c", str(directory / "nginx.conf"), "-p", str(directory)]
    async with child(argv, log_path, cwd=directory) as process:
        address = f"127.0.0.1:{port}"
        await wait_until_answers(f"http://{address}/healthz", log_path, process=process)
        yield address
