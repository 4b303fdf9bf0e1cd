"""Substrate floor: how many real-time echo sessions one core serves, with bare servers.

Two bare echo servers are measured in the same run (see `_echo_servers.py`):
raw trio-websocket, and Quart-Trio on Hypercorn's trio worker (voiceagent's stack).
Each runs alone in its own process pinned to one core (`--server-cpus`); the load runs
in separate processes pinned to the other core (`--client-cpus`).

For each server:
1. RSS per idle connection: open `--idle` sessions that send nothing, read the
   server's RSS growth.
2. Sweep M = `--sessions`: M sessions each send a frame of `--frame-ms` (20 ms = 960
   bytes by default) in real time and wait for its echo. Per step: latency p50/p99
   (echo arrival minus the frame's scheduled send time), server CPU microseconds per
   echoed frame, server and client CPU use. A step fails with p99 >= `--p99-ms`, a
   failed connection, or lost real time; the sweep stops after
   `--stop-after-failures` failing steps in a row.
`sessions/core` is the largest M that passed; `cpu-bound sessions/core` is what the
CPU per frame allows at 100 % of one core (1 / (us per frame x frames/s)).

Writes results/echo_floor.{json,md} and results/echo_floor_*.png (with a `--frame-ms`
other than 20: results/echo_floor_<N>ms.*).
Example: python benchmarks/echo_floor.py --sessions 50,100,150,200 --duration 8
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RESULTS,
    cpu_list,
    free_port,
    md_table,
    raise_nofile,
    server_process,
    wait_port,
    write_results,
)
from _sweep import echo_step, measure_idle_rss, sweep_ok

SERVERS = {"raw": "raw trio-websocket", "quart": "Quart-Trio on hypercorn (trio worker)"}


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("give positive integers separated by commas")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="See the module docstring and benchmarks/README.md.",
    )
    parser.add_argument("--servers", default="raw,quart", help="comma list of raw,quart")
    parser.add_argument(
        "--sessions",
        type=int_list,
        default=int_list("50,100,150,200,250,300"),
        help="sweep of concurrent sessions M (default %(default)s)",
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per step")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--idle", type=int, default=1000, help="idle sessions for the RSS figure")
    parser.add_argument("--p99-ms", type=float, default=50.0, help="latency limit of a step")
    parser.add_argument("--frame-ms", type=int, default=20, help="client frame duration (ms)")
    parser.add_argument("--server-cpus", type=cpu_list, default=[0])
    parser.add_argument("--client-cpus", type=cpu_list, default=[1])
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument(
        "--stop-after-failures",
        type=int,
        default=2,
        help="stop the sweep after this many failing steps in a row",
    )
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="stop sweeping after this much time in total"
    )
    parser.add_argument("--no-plots", action="store_true")
    return parser  # fmt: skip


def run_server(kind: str, args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    port = free_port()
    argv = [sys.executable, str(Path(__file__).with_name("_echo_servers.py")), kind,
            "--port", str(port)]  # fmt: skip
    path = "/ws/"
    with server_process(argv, name=f"echo_floor_{kind}", cpus=args.server_cpus) as proc:
        wait_port(port, proc)
        idle = measure_idle_rss(proc.pid, port, args.idle, path=path,
                                procs=args.client_procs, cpus=args.client_cpus)  # fmt: skip
        print(f"[{kind}] idle: {idle['kb_per_session']:.1f} KB per connection", flush=True)
        steps = []
        failures = 0
        for m in args.sessions:
            if time.monotonic() > deadline:
                print(f"[{kind}] time budget spent, sweep stopped", flush=True)
                break
            step = echo_step(proc.pid, port, m, path=path, procs=args.client_procs,
                             cpus=args.client_cpus, warmup_s=args.warmup,
                             duration_s=args.duration, frame_ms=args.frame_ms)  # fmt: skip
            step["ok"] = sweep_ok(step, args.p99_ms)
            steps.append(step)
            print(
                f"[{kind}] M={m}: p50={step['p50_ms']:.2f} ms p99={step['p99_ms']:.2f} ms "
                f"cpu={step['server_cpu_util']:.0%} {step['server_cpu_us_per_frame']:.0f} us/frame"
                f" client cpu={step['client_cpu_util']:.0%} runqueue wait="
                f"{step['server_runqueue_wait']:.0%} ok={step['ok']}",
                flush=True,
            )
            failures = 0 if step["ok"] else failures + 1
            if failures >= args.stop_after_failures:
                break
    return summarize(kind, idle, steps, args)


def summarize(kind: str, idle: dict[str, Any], steps: list[dict[str, Any]],
              args: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    passed = [s for s in steps if s["ok"]]
    # CPU per frame from passing steps at >= 30 % load, where fixed costs are amortised.
    loaded = [s for s in passed if s["server_cpu_util"] >= 0.3] or passed
    us_per_frame = (
        sum(s["server_cpu_us_per_frame"] for s in loaded) / len(loaded) if loaded else None
    )
    cores = max(1, len(args.server_cpus))
    return {
        "server": kind,
        "label": SERVERS[kind],
        "idle": idle,
        "steps": steps,
        "sessions_per_core": (max(s["sessions"] for s in passed) / cores) if passed else 0,
        "saturated": bool(steps) and not steps[-1]["ok"],
        "max_runqueue_wait": max((s["server_runqueue_wait"] for s in steps), default=None),
        "cpu_us_per_frame": us_per_frame,
        "cpu_bound_sessions_per_core": 1e6 / (us_per_frame * 1000 / args.frame_ms)
        if us_per_frame
        else None,
        "kb_per_idle_connection": idle["kb_per_session"],
    }


def plot(servers: list[dict[str, Any]], frame_ms: int) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for s in servers:
        ms = [st["sessions"] for st in s["steps"]]
        ax1.plot(ms, [st["p99_ms"] for st in s["steps"]], "o-", label=f"{s['label']} p99")
        ax1.plot(ms, [st["p50_ms"] for st in s["steps"]], "x--", label=f"{s['label']} p50")
        ax2.plot(ms, [st["server_cpu_util"] * 100 for st in s["steps"]], "o-", label=s["label"])
    ax1.set_yscale("log")
    ax1.axhline(50, color="red", lw=0.8, ls=":")
    ax1.set_xlabel(f"concurrent sessions ({frame_ms} ms frames, one core)")
    ax1.set_ylabel("echo latency (ms)")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("concurrent sessions")
    ax2.set_ylabel("server CPU (% of one core)")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    suffix = "" if frame_ms == 20 else f"_{frame_ms}ms"
    name = f"echo_floor{suffix}_latency_cpu.png"
    fig.savefig(RESULTS / name, dpi=110)
    plt.close(fig)
    return [name]


def markdown(servers: list[dict[str, Any]], pngs: list[str], argv: list[str]) -> str:
    rows = [
        [s["label"], s["sessions_per_core"], "yes" if s["saturated"] else "no (raise --sessions)",
         s["cpu_us_per_frame"], s["cpu_bound_sessions_per_core"], s["kb_per_idle_connection"]]
        for s in servers
    ]  # fmt: skip
    out = [
        "# Echo floor",
        "",
        f"`python benchmarks/echo_floor.py {' '.join(argv)}`".replace(" `", "`"),
        "",
        md_table(
            [
                "server",
                "sessions/core (p99 < limit)",
                "saturated",
                "CPU us/echoed frame",
                "CPU-bound sessions/core",
                "KB per idle connection",
            ],
            rows,
        ),
        "",
    ]
    for s in servers:
        out += [
            f"## {s['label']}",
            "",
            md_table(
                [
                    "M",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "server CPU",
                    "us/frame",
                    "client CPU",
                    "server runqueue wait",
                    "load avg",
                    "ok",
                ],
                [
                    [
                        st["sessions"],
                        st["p50_ms"],
                        st["p99_ms"],
                        st["max_ms"],
                        f"{st['server_cpu_util']:.0%}",
                        st["server_cpu_us_per_frame"],
                        f"{st['client_cpu_util']:.0%}",
                        st["ok"],
                    ]
                    for st in s["steps"]
                ],
            ),
            "",
        ]
    out += [f"![{p}]({p})" for p in pngs]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    kinds = [k for k in args.servers.split(",") if k]
    unknown = set(kinds) - set(SERVERS)
    if unknown:
        raise SystemExit(f"unknown servers: {sorted(unknown)}")
    raise_nofile()
    deadline = time.monotonic() + args.max_seconds
    servers = [run_server(kind, args, deadline) for kind in kinds]
    pngs = [] if args.no_plots else plot(servers, args.frame_ms)
    floors = {s["server"]: s["sessions_per_core"] for s in servers}
    data = {"args": vars(args), "servers": servers, "floors": floors}
    # 20 ms frames keep the historical name; another framing gets its own files.
    name = "echo_floor" if args.frame_ms == 20 else f"echo_floor_{args.frame_ms}ms"
    paths = write_results(name, data, markdown(servers, pngs, argv))
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
