"""Shared plumbing of the benchmark scripts: processes, /proc readings, reports.

Linux only (CPU time and RSS come from /proc, so no extra dependency). Every server
and load process started here is a child of the script and is stopped in `finally`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
# Server logs are for debugging a run, not results: they stay out of the repository.
LOGS = Path(tempfile.gettempdir()) / "voiceagent-bench-logs"
REPO = HERE.parent
# A benchmark script (and any process it starts from a script, such as the stamped
# Cartesia emulator) imports `voiceagent` from its own checkout, not from wherever the
# package is installed: an A/B between two checkouts must run each side's code.
if str(REPO) not in sys.path:
    sys.path.insert(1, str(REPO))
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
PACKAGES = (
    "trio", "trio-websocket", "wsproto", "hypercorn", "quart", "quart-trio",
    "prometheus-client", "orjson", "numpy",
)  # fmt: skip


def raise_nofile(want: int = 65_536) -> int:
    """Raise this process's open-file limit as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def pin(cpus: Sequence[int] | None) -> None:
    """Pin this process to `cpus` (ignored when None or when the CPUs do not exist)."""
    if cpus:
        available = os.sched_getaffinity(0)
        wanted = {c for c in cpus if c in available}
        if wanted:
            os.sched_setaffinity(0, wanted)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants (Hypercorn runs its workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                children.setdefault(int(_stat(int(entry.name))[1]), []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its live descendants."""
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = _stat(p)
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process tree's threads spent runnable but waiting for a CPU.

    This is the share of a benchmark lost to other load on the machine: on a quiet
    machine it stays near 0; when it approaches the window length the figures measure
    the neighbours, not the code.
    """
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its live descendants."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{p}/statm").read_text().split()[1]) * _PAGE
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 30) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def wait_app_ready(port: int, timeout: float = 120) -> None:
    """Wait until voiceagent's /healthz says `ready` (local engines loaded), so that
    engine loading is in no baseline and no measured window."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            url = f"http://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                if json.load(response).get("ready"):
                    return
        time.sleep(0.2)
    raise TimeoutError(f"the app on port {port} was not ready after {timeout} s")


@contextlib.contextmanager
def server_process(
    argv: list[str],
    *,
    name: str,
    cpus: Sequence[int] | None,
    env: dict[str, str] | None = None,
    stop_signal: int = signal.SIGTERM,
    cwd: Path = REPO,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process (pinned, with a raised fd limit); terminate it on exit.
    It runs in `cwd`, so `python -m` serves that checkout's code (default: this one).

    Each process gets an empty data directory of its own (the conversation store's
    SQLite file, recordings), removed afterwards, unless `env` names one: no run then
    depends on what an earlier one stored (it used to be the checkout's `data/`).
    """

    def setup() -> None:  # runs in the child before exec; both settings survive exec
        raise_nofile()
        pin(cpus)

    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "wb")
    data_dir = tempfile.TemporaryDirectory(prefix=f"voiceagent-bench-{name}-")
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, "VOICEAGENT_DATA_DIR": data_dir.name, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=setup,
    )
    try:
        yield proc
    finally:
        family = process_tree(proc.pid)[1:]
        proc.send_signal(stop_signal)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        # A wrapper (py-spy) or a supervisor (hypercorn) may leave workers behind.
        for pid in family:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        log.close()
        data_dir.cleanup()


def loud_windows(pcm: bytes, sample_rate: int, floor_dbfs: float) -> np.ndarray:
    """Indices of the 10 ms windows of PCM16 `pcm` whose RMS is above `floor_dbfs`
    (where speech starts and ends, as a property of the audio)."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    window = sample_rate // 100
    count = len(samples) // window
    rms = np.sqrt((samples[: count * window].reshape(count, window) ** 2).mean(axis=1))
    return np.nonzero(20 * np.log10(rms + 1e-12) > floor_dbfs)[0]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "loadavg_1_5_15": os.getloadavg(),
        "mem_total_gib": round(os.sysconf("SC_PHYS_PAGES") * _PAGE / 2**30, 1),
    }


def pct(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def write_results(name: str, data: dict[str, Any], markdown: str) -> dict[str, Path]:
    """Write results/<name>.json and results/<name>.md; returns their paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": machine(), **data}  # fmt: skip
    json_path = RESULTS / f"{name}.json"
    json_path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    md_path = RESULTS / f"{name}.md"
    md_path.write_text(markdown.rstrip() + "\n")
    return {"json": json_path, "md": md_path}


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_list(text: str) -> list[int]:
    """`--server-cpus 0,1`: CPU numbers to pin a process to."""
    return [int(c) for c in text.split(",") if c.strip()]


# -- interleaved A/Bs between two checkouts (ab.py, idle_ab.py) ---------------------------


def add_ab_arguments(parser: Any, *, runs: int, name: str, script: str) -> None:
    """The arguments every A/B script takes: the two checkouts, runs, name, `-- args`."""
    parser.add_argument("--a", type=Path, required=True, help="checkout A (the baseline)")
    parser.add_argument("--b", type=Path, required=True, help="checkout B (the change)")
    parser.add_argument("--runs", type=int, default=runs, help="runs per side, interleaved")
    parser.add_argument("--name", default=name, help="results/<name>.{json,md}")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help=f"-- {script} args")


def run_in_checkout(
    checkout: Path, script: str, bench_args: list[str], name: str, env: dict[str, str]
) -> dict[str, Any]:
    """Run `checkout`'s benchmarks/<script> (serving its own code) under the scratch
    result name `name`; its JSON, read back, and the scratch files removed."""
    command = [sys.executable, str(checkout / "benchmarks" / script), *bench_args,
               "--name", name, "--no-plots"]  # fmt: skip
    print("$", " ".join(command), flush=True)
    subprocess.run(
        command, cwd=checkout, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **env}
    )
    results = checkout / "benchmarks" / "results"
    data = json.loads((results / f"{name}.json").read_text())
    for suffix in (".json", ".md"):  # scratch output: not a result of its own
        (results / f"{name}{suffix}").unlink(missing_ok=True)
    return data
