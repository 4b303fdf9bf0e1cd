"""Scale-out: K `voiceagent serve` instances behind HAProxy (deploy/haproxy.cfg) on this
machine. What the load balancer adds, and how it spreads rooms.

- Handshake latency, direct against through HAProxy: `--handshakes` sequential
  WebSocket handshakes each way, alternating (so both see the same machine), each for
  a new room id. Two figures per handshake: until the `101 Switching Protocols` answer,
  and until the room's `session_started` event. The rooms are closed at once.
- Spread: `--rooms` rooms opened through HAProxy (`--concurrency` at a time) and held
  open; each instance's /healthz says how many it holds (consistent hashing on the
  room path: the spread is even only on average). HAProxy's RSS before and after
  gives its memory per proxied room.
The instances are pinned to `--server-cpus`, HAProxy and this load process to
`--aux-cpus`. No model or voice connection is opened: a room connects its model on
its first audio or text, so the figures are the load balancer's and the handshake's.
Every wait is bounded (`--timeout` for the whole run).

The shared registry (Redis) is not part of this run: benchmarks/scale_out_redis.py
measures what it adds to a handshake and what an idle room costs it.

Writes results/scale_out.{json,md} and results/scale_out.png.
Example: python benchmarks/scale_out.py --instances 3 --rooms 600 --handshakes 300
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.infra: deploy/haproxy.cfg, rendered

from _common import (  # noqa: E402
    LOGS,
    RESULTS,
    cpu_list,
    free_port,
    md_table,
    pct,
    pin,
    raise_nofile,
    rss_bytes,
    server_process,
    wait_app_ready,
    wait_port,
    write_results,
)
from _wsclient import LeanWebSocket  # noqa: E402

from tests.infra import HAPROXY, render_haproxy_config  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=3, help="voiceagent serve processes (K)")
    p.add_argument("--rooms", type=int, default=600, help="rooms held open for the spread")
    p.add_argument("--concurrency", type=int, default=50, help="rooms opening at once")
    p.add_argument("--handshakes", type=int, default=300, help="sequential handshakes per path")
    p.add_argument("--server-cpus", type=cpu_list, default=cpu_list("0"))
    p.add_argument("--aux-cpus", type=cpu_list, default=cpu_list("1"))
    p.add_argument("--timeout", type=float, default=300, help="bound on the whole run (s)")
    p.add_argument("--name", default="scale_out", help="results/<name>.{json,md,png}")
    return p


def instance_env() -> dict[str, str]:
    return {
        # A cloud model that is never dialled (no room sends audio or text): nothing
        # local to load, no key spent.
        "VOICEAGENT_MODEL": "openai",
        "OPENAI_API_KEY": "benchmark",
        "OPENAI_REALTIME_URL": "ws://127.0.0.1:9/v1/realtime",
        "VOICEAGENT_TTS": "none",
        # Every room comes from 127.0.0.1 (through the proxy): no per-address cap.
        "VOICEAGENT_MAX_SESSIONS_PER_IP": "0",
        "VOICEAGENT_LOG_LEVEL": "WARNING",
    }


@contextlib.contextmanager
def fleet(
    args: argparse.Namespace, extra_env: dict[str, str] | None = None, tag: str = ""
) -> Iterator[tuple[list[int], int, int, int]]:
    """K instances and HAProxy; yields (instance ports, proxy port, stats port, proxy pid).

    `extra_env` is added to every instance's environment; `tag` names its logs."""
    ports = [free_port() for _ in range(args.instances)]
    name = f"{args.name}{tag}"
    with contextlib.ExitStack() as stack:
        for index, port in enumerate(ports, 1):
            argv = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1"]
            stack.enter_context(
                server_process(
                    [*argv, "--port", str(port)],
                    name=f"{name}-va{index}",
                    cpus=args.server_cpus,
                    env={**instance_env(), **(extra_env or {})},
                )
            )
        for port in ports:
            wait_app_ready(port)
        proxy_port, stats_port = free_port(), free_port()
        LOGS.mkdir(parents=True, exist_ok=True)
        config = LOGS / f"{name}-haproxy.cfg"
        config.write_text(render_haproxy_config(proxy_port, stats_port, ports))
        proxy = stack.enter_context(
            server_process(
                [HAPROXY, "-f", str(config), "-db"], name=f"{name}-haproxy", cpus=args.aux_cpus
            )
        )
        wait_port(proxy_port, proxy)
        wait_all_up(stats_port, len(ports))
        yield ports, proxy_port, stats_port, proxy.pid


def wait_all_up(stats_port: int, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{stats_port}/stats;csv"
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.read().decode().count(",UP,") >= count:
                    return
        time.sleep(0.2)
    raise TimeoutError("HAProxy did not see every instance up")


def sessions_of(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return int(json.load(response)["sessions"])


async def handshake(port: int, room: str) -> tuple[float, float]:
    """Seconds until 101, and until `session_started`; the room is then closed."""
    began = time.perf_counter()
    ws = await LeanWebSocket.connect("127.0.0.1", port, f"/ws/{room}")
    upgraded = time.perf_counter()
    try:
        while True:
            _, payload = await ws.receive()
            if b'"session_started"' in payload:
                break
        started = time.perf_counter()
    finally:
        await ws.aclose()
    return upgraded - began, started - began


async def measure_handshakes(
    count: int, direct_ports: list[int], proxy_port: int
) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {
        path: {"upgrade": [], "session_started": []} for path in ("direct", "haproxy")
    }
    for index in range(count):
        for path in ("direct", "haproxy") if index % 2 else ("haproxy", "direct"):
            port = direct_ports[index % len(direct_ports)] if path == "direct" else proxy_port
            upgrade, started = await handshake(port, f"hs-{path}-{index}")
            samples[path]["upgrade"].append(upgrade)
            samples[path]["session_started"].append(started)
        await trio.sleep(0.005)  # one at a time: latency, not throughput
    return samples


async def hold_rooms(
    count: int,
    concurrency: int,
    proxy_port: int,
    opened: trio.Event,
    release: trio.Event,
    prefix: str = "spread",
) -> list[str]:
    """Open `count` rooms (`<prefix>-<n>`) through `proxy_port` and hold them idle until
    `release`; returns the failures."""
    failures: list[str] = []
    limiter = trio.CapacityLimiter(concurrency)
    remaining = [count]

    async def room(index: int) -> None:
        ws = None
        try:
            async with limiter:
                ws = await LeanWebSocket.connect("127.0.0.1", proxy_port, f"/ws/{prefix}-{index}")
                while b'"session_started"' not in (await ws.receive())[1]:
                    pass
        except Exception as exc:
            failures.append(repr(exc))
            ws = None
        remaining[0] -= 1
        if not remaining[0]:
            opened.set()
        if ws is not None:
            await release.wait()
            await ws.aclose()

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(room, index)
    return failures


def summary(values: list[float]) -> dict[str, float | None]:
    ms = [v * 1000 for v in values]
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "mean_ms": sum(ms) / len(ms)}


async def run(args: argparse.Namespace, ports: list[int], proxy_port: int, proxy_pid: int) -> dict:
    with trio.fail_after(args.timeout):
        samples = await measure_handshakes(args.handshakes, ports, proxy_port)
        await trio.sleep(1.0)  # the handshake rooms finish closing
        proxy_rss_before = rss_bytes(proxy_pid)
        opened, release = trio.Event(), trio.Event()
        spread: dict[str, Any] = {}

        async def observe() -> None:
            await opened.wait()
            await trio.sleep(1.0)
            spread["per_instance"] = [sessions_of(port) for port in ports]
            spread["proxy_rss_after"] = rss_bytes(proxy_pid)
            release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(observe)
            failures = await hold_rooms(args.rooms, args.concurrency, proxy_port, opened, release)
    held = spread["per_instance"]
    mean = sum(held) / len(held)
    return {
        "handshakes": {
            path: {stage: summary(values) for stage, values in stages.items()}
            for path, stages in samples.items()
        },
        "handshake_samples_ms": {
            path: {stage: [round(v * 1000, 3) for v in values] for stage, values in stages.items()}
            for path, stages in samples.items()
        },
        "spread": {
            "rooms": args.rooms,
            "failures": len(failures),
            "failure_examples": failures[:3],
            "per_instance": held,
            "max_over_mean": round(max(held) / mean, 3) if mean else None,
            "proxy_kb_per_room": round(
                (spread["proxy_rss_after"] - proxy_rss_before) / max(1, sum(held)) / 1e3, 2
            ),
        },
    }


def plot(result: dict, name: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    samples = result["handshake_samples_ms"]
    for path, style in (("direct", "-"), ("haproxy", "--")):
        for stage in ("upgrade", "session_started"):
            values = sorted(samples[path][stage])
            share = [(i + 1) / len(values) for i in range(len(values))]
            left.plot(values, share, style, label=f"{path}: {stage}")
    left.set_xscale("log")
    left.set_xlabel("handshake latency (ms)")
    left.set_ylabel("share of handshakes")
    left.legend(fontsize=8)
    held = result["spread"]["per_instance"]
    right.bar([f"va{i}" for i in range(1, len(held) + 1)], held)
    right.axhline(sum(held) / len(held), color="red", ls=":", label="mean")
    right.set_ylabel("rooms held")
    right.set_title(f"{sum(held)} rooms through HAProxy (consistent hash)")
    right.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)
    return [f"{name}.png"]


def markdown(result: dict, args: argparse.Namespace, command: str) -> str:
    hs = result["handshakes"]
    rows = []
    for stage in ("upgrade", "session_started"):
        direct, proxied = hs["direct"][stage], hs["haproxy"][stage]
        rows.append(
            [
                stage,
                direct["p50_ms"],
                proxied["p50_ms"],
                proxied["p50_ms"] - direct["p50_ms"],
                direct["p99_ms"],
                proxied["p99_ms"],
                proxied["p99_ms"] - direct["p99_ms"],
            ]
        )
    spread = result["spread"]
    held = spread["per_instance"]
    lines = [
        "# Scale-out behind HAProxy",
        "",
        f"`{command}`",
        "",
        f"{args.instances} `voiceagent serve` instances (CPUs {args.server_cpus}), HAProxy with",
        f"deploy/haproxy.cfg and the load (CPUs {args.aux_cpus}), all on 127.0.0.1.",
        "",
        f"Load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs;"
        " with other work on the machine the p99 figures carry its noise, the p50",
        "differences are the ones to read.",
        "",
        f"Handshakes: {args.handshakes} per path, one at a time, each a new room.",
        "",
        md_table(
            [
                "until",
                "direct p50 ms",
                "HAProxy p50 ms",
                "added p50 ms",
                "direct p99 ms",
                "HAProxy p99 ms",
                "added p99 ms",
            ],
            rows,
        ),
        "",
        f"Spread: {spread['rooms']} rooms opened through HAProxy, {spread['failures']} failed.",
        "",
        md_table(
            ["instance", "rooms"],
            [[f"va{i}", n] for i, n in enumerate(held, 1)]
            + [["max / mean", spread["max_over_mean"]]],
        ),
        "",
        f"HAProxy memory per proxied room: {spread['proxy_kb_per_room']} KB (RSS delta).",
        "",
        f"![{args.name}.png]({args.name}.png)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if args.instances < 1 or args.rooms < 1 or args.handshakes < 1:
        raise SystemExit("--instances, --rooms and --handshakes must be at least 1")
    raise_nofile()
    with fleet(args) as (ports, proxy_port, _, proxy_pid):
        pin(args.aux_cpus)
        result = run_sync(args, ports, proxy_port, proxy_pid)
    command = "python benchmarks/scale_out.py " + " ".join(argv)
    result["plots"] = plot(result, args.name)
    result["settings"] = {k: v for k, v in vars(args).items()}
    paths = write_results(args.name, result, markdown(result, args, command.strip()))
    print(paths["md"].read_text())
    return 0


def run_sync(args: argparse.Namespace, ports: list[int], proxy_port: int, proxy_pid: int) -> dict:
    return trio.run(run, args, ports, proxy_port, proxy_pid)


if __name__ == "__main__":
    raise SystemExit(main())
