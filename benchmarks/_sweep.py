"""Steps shared by the scripts: an echo sweep and an idle-connection RSS reading."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from _common import cpu_seconds, pct, rss_bytes, runqueue_wait_seconds
from _loadgen import Fleet, merge


def measure_idle_rss(
    server_pid: int,
    port: int,
    n: int,
    *,
    path: str,
    procs: int,
    cpus: list[int] | None,
    settle_s: float = 2.0,
    id_prefix: str = "idle",
) -> dict[str, Any]:
    """Open `n` idle sessions, read the server's RSS growth, close them."""
    rss_before = rss_bytes(server_pid)
    spec = {"mode": "idle", "host": "127.0.0.1", "port": port, "path": path,
            "connect_concurrency": 128}  # fmt: skip
    started = time.monotonic()
    with Fleet(spec, n, procs=procs, cpus=cpus, id_prefix=id_prefix) as fleet:
        ready = fleet.wait_ready(timeout=max(120.0, n / 50))
        connect_s = time.monotonic() - started
        time.sleep(settle_s)
        rss_after = rss_bytes(server_pid)
        results = merge(fleet.stop())
    ok = ready["ok"]
    return {
        "sessions": n,
        "connected": ok,
        "failed": ready["failed"],
        "connect_s": round(connect_s, 2),
        "rss_before_mb": rss_before / 1e6,
        "rss_after_mb": rss_after / 1e6,
        "kb_per_session": (rss_after - rss_before) / ok / 1e3 if ok else None,
        "errors": {**ready["errors"], **results["errors"]},
    }


def echo_step(
    server_pid: int,
    port: int,
    m: int,
    *,
    path: str,
    procs: int,
    cpus: list[int] | None,
    warmup_s: float,
    duration_s: float,
    frame_ms: int = 20,
) -> dict[str, Any]:
    """`m` sessions echoing `frame_ms` frames (20 ms = 960 bytes) in real time; latency,
    CPU per frame, client load."""
    period = frame_ms / 1000
    spec = {"mode": "echo", "host": "127.0.0.1", "port": port, "path": path,
            "frame_bytes": frame_ms * 48, "period_s": period}  # fmt: skip
    with Fleet(spec, m, procs=procs, cpus=cpus, id_prefix=f"echo{m}_") as fleet:
        ready = fleet.wait_ready()
        t0 = time.time() + warmup_s
        t1 = t0 + duration_s
        fleet.send_window(t0, t1)
        time.sleep(max(0.0, t0 - time.time()))
        server0 = cpu_seconds(server_pid)
        wait0 = runqueue_wait_seconds(server_pid)
        clients0 = sum(cpu_seconds(pid) for pid in fleet.pids)
        time.sleep(max(0.0, t1 - time.time()))
        server1 = cpu_seconds(server_pid)
        wait1 = runqueue_wait_seconds(server_pid)
        clients1 = sum(cpu_seconds(pid) for pid in fleet.pids)
        rss = rss_bytes(server_pid)
        merged = merge(fleet.collect())
    lat_ms = merged.get("latencies_s", np.empty(0)) * 1000
    frames = len(lat_ms)
    expected = m * duration_s / period
    server_cpu = server1 - server0
    return {
        "sessions": m,
        "frame_ms": frame_ms,
        "connected": ready["ok"],
        "failed": ready["failed"],
        "frames_in_window": frames,
        "frames_expected": round(expected),
        "p50_ms": pct(lat_ms, 50),
        "p99_ms": pct(lat_ms, 99),
        "max_ms": float(lat_ms.max()) if frames else None,
        "server_cpu_util": server_cpu / duration_s,
        "server_runqueue_wait": (wait1 - wait0) / duration_s,
        "server_cpu_us_per_frame": server_cpu / frames * 1e6 if frames else None,
        "client_cpu_util": (clients1 - clients0) / duration_s,
        "server_rss_mb": rss / 1e6,
        "late_resyncs": merged.get("late_resyncs", 0),
        "loadavg_1m": os.getloadavg()[0],
        "errors": merged["errors"],
    }


def sweep_ok(step: dict[str, Any], p99_limit_ms: float) -> bool:
    """A step passes when every session connected, echoed in real time within the limit."""
    return (
        step["failed"] == 0
        and step["p99_ms"] is not None
        and step["p99_ms"] < p99_limit_ms
        and step["frames_in_window"] >= 0.97 * step["frames_expected"]
    )
