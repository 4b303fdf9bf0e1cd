"""Handshake cost: opening a room with room-token verification vs without.

Two servers run side by side (`hypercorn -k trio voiceagent:app`, both pinned to
`--server-cpus`): `open` with no authentication, `tokens` with `VOICEAGENT_AUTH_SECRET`
(HS256). The load (this process, pinned to `--client-cpus`) opens rooms at a fixed
concurrency: WebSocket handshake, wait for `session_started`, close. Rounds alternate
between the servers (open, tokens, open, tokens, ...) so that both see the same machine;
each round is bounded in connections and time. Per server: connections per second,
handshake latency (connect -> session_started, median and p99) and server CPU per
connection (from /proc). The figure to read is the ratio tokens/open within this run.

Writes results/handshake.{json,md} and results/handshake.png.
Example: python benchmarks/handshake.py --rounds 6 --connections 400 --concurrency 8
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    RESULTS,
    cpu_list,
    cpu_seconds,
    free_port,
    md_table,
    pct,
    pin,
    server_process,
    wait_app_ready,
    write_results,
)

SECRET = "benchmark-secret-of-at-least-32-characters"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6, help="rounds per server, alternating")
    p.add_argument("--connections", type=int, default=400, help="rooms opened per round")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--round-timeout", type=float, default=60.0, help="seconds, per round")
    p.add_argument("--server-cpus", type=cpu_list, default=[0])
    p.add_argument("--client-cpus", type=cpu_list, default=[1])
    p.add_argument("--no-plots", action="store_true")
    return p


async def one_round(
    port: int, token: str | None, connections: int, concurrency: int, budget_s: float
) -> list[float]:
    """Open `connections` rooms, `concurrency` at a time, for at most `budget_s` seconds;
    returns each completed handshake's seconds."""
    latencies: list[float] = []
    ids = iter(range(connections))
    protocols = ["voiceagent.v1"] + ([f"access_token.{token}"] if token else [])

    async def worker() -> None:
        for n in ids:
            started = time.perf_counter()
            url = f"ws://127.0.0.1:{port}/ws/bench-{n}"
            async with open_websocket_url(url, subprotocols=protocols) as ws:
                while '"session_started"' not in str(await ws.get_message()):
                    pass
                latencies.append(time.perf_counter() - started)

    with trio.move_on_after(budget_s):
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
    return latencies


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from voiceagent.access.tokens import mint_token

    token = mint_token(SECRET, sub="bench", room="bench-*", ttl_s=3600)
    common = {
        "VOICEAGENT_MODEL": "offline",
        "VOICEAGENT_TTS": "offline",
        "VOICEAGENT_LOG_LEVEL": "WARNING",
        "VOICEAGENT_MAX_SESSIONS_PER_USER": "0",
        "VOICEAGENT_MAX_MESSAGES_PER_S": "0",
    }
    ports = {"open": free_port(), "tokens": free_port()}
    envs = {"open": common, "tokens": {**common, "VOICEAGENT_AUTH_SECRET": SECRET}}
    results: dict[str, dict[str, list[float]]] = {
        name: {"rate": [], "latency": [], "cpu_per_conn_ms": []} for name in ports
    }
    argv = [sys.executable, "-m", "hypercorn", "-k", "trio", "voiceagent:app"]
    with (
        server_process([*argv, "--bind", f"127.0.0.1:{ports['open']}"], name="handshake_open",
                       cpus=args.server_cpus, env=envs["open"]) as open_server,
        server_process([*argv, "--bind", f"127.0.0.1:{ports['tokens']}"],
                       name="handshake_tokens", cpus=args.server_cpus,
                       env=envs["tokens"]) as token_server,
    ):  # fmt: skip
        servers = {"open": open_server, "tokens": token_server}
        for port in ports.values():
            wait_app_ready(port)
        pin(args.client_cpus)
        for round_no in range(args.rounds * 2 + 1):
            name = "open" if round_no % 2 else "tokens"
            if round_no == 0:  # warm-up of both servers' handshake paths, not counted
                for warm in ports:
                    warm_token = token if warm == "tokens" else None
                    trio.run(one_round, ports[warm], warm_token, 50, 4, args.round_timeout)
                continue
            cpu_before = cpu_seconds(servers[name].pid)
            started = time.perf_counter()
            latencies = trio.run(
                one_round,
                ports[name],
                token if name == "tokens" else None,
                args.connections,
                args.concurrency,
                args.round_timeout,
            )
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(servers[name].pid) - cpu_before
            results[name]["rate"].append(len(latencies) / elapsed)
            results[name]["latency"].extend(latencies)
            results[name]["cpu_per_conn_ms"].append(cpu / len(latencies) * 1000)
            print(f"round {round_no} {name}: {len(latencies) / elapsed:.0f} conn/s", flush=True)
            if len(latencies) < args.connections:
                print(f"round {round_no} hit --round-timeout: stopping")
                break
    return results


def summarize(results: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name, values in results.items():
        summary[name] = {
            "rounds": len(values["rate"]),
            "conn_per_s_median": statistics.median(values["rate"]),
            "handshake_ms_p50": pct(values["latency"], 50) * 1000,
            "handshake_ms_p99": pct(values["latency"], 99) * 1000,
            "server_cpu_ms_per_conn_median": statistics.median(values["cpu_per_conn_ms"]),
        }
    open_, tokens = summary["open"], summary["tokens"]
    summary["ratio_conn_per_s"] = tokens["conn_per_s_median"] / open_["conn_per_s_median"]
    summary["added_cpu_ms_per_conn"] = (
        tokens["server_cpu_ms_per_conn_median"] - open_["server_cpu_ms_per_conn_median"]
    )
    return summary


def plot(results: dict[str, dict[str, list[float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    names = list(results)
    left.boxplot([results[n]["rate"] for n in names], tick_labels=names)
    left.set_title("connections per second (per round)")
    right.boxplot([[v * 1000 for v in results[n]["latency"]] for n in names], tick_labels=names)
    right.set_title("handshake -> session_started (ms)")
    right.set_yscale("log")
    fig.tight_layout()
    fig.savefig(RESULTS / "handshake.png", dpi=110)


def main() -> None:
    args = build_parser().parse_args()
    results = measure(args)
    summary = summarize(results)
    command = "python benchmarks/handshake.py " + " ".join(sys.argv[1:])
    rows = [
        [
            name,
            s["rounds"],
            s["conn_per_s_median"],
            s["handshake_ms_p50"],
            s["handshake_ms_p99"],
            s["server_cpu_ms_per_conn_median"],
        ]
        for name, s in summary.items()
        if isinstance(s, dict)
    ]
    markdown = "\n\n".join(
        [
            "# Handshake cost: room tokens vs none",
            f"`{command.strip()}`",
            md_table(
                ["server", "rounds", "conn/s (median)", "p50 ms", "p99 ms", "server CPU ms/conn"],
                rows,
            ),
            f"Tokens / open, connections per second: **{summary['ratio_conn_per_s']:.3f}**; "
            f"token verification adds {summary['added_cpu_ms_per_conn']:.3f} ms of server CPU "
            "per connection (medians of alternating rounds in one run).",
            "![handshake.png](handshake.png)",
        ]
    )
    write_results("handshake", {"args": vars(args), "summary": summary, "raw": results}, markdown)
    if not args.no_plots:
        plot(results)
    print(markdown)


if __name__ == "__main__":
    main()
