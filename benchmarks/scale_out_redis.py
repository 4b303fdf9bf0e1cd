"""Scale-out with the shared registry: what Redis adds to a handshake, and what an idle
room costs Redis. Two fleets side by side on this machine, each K `voiceagent serve`
instances behind HAProxy (deploy/haproxy.cfg); one of them shares a Redis.

- Redis: a real `redis-server` started here on a free loopback port in a temporary
  directory (`--save "" --appendonly no`), stopped at the end; the instances of the
  second fleet get `VOICEAGENT_REDIS_URL`.
- Handshake latency, interleaved: `--handshakes` rounds, each one sequential handshake
  on each of four paths (without Redis direct / through HAProxy, with Redis direct /
  through HAProxy) in an order that rotates every round, so every path sees the same
  machine. Each is a new room id, timed until `session_started`, then closed.
- Redis commands per room per minute: `--idle-rooms` rooms opened through the Redis
  fleet's HAProxy and held idle; after `--settle` seconds, `INFO commandstats` (which
  counts the commands scripts run, as tests/fleet/test_redis_cost.py does) is read
  before and after a `--window` of seconds. The delta, less this script's own `INFO`
  calls, divided by rooms and minutes, is the steady cost; Redis's CPU time
  (`INFO cpu`, less its rate over `--baseline` seconds with no room) and the memory of
  the keys (`MEMORY USAGE`, read after the window) come with it.
Both fleets set `VOICEAGENT_MAX_ROOMS=--max-rooms` (so with Redis each room holds the
fleet-wide `rooms` slot; 0: no slot). The rooms come from 127.0.0.1, so no per-address
slot; no tokens, so no per-user slot. No model or voice connection is opened.
Every wait is bounded (`--timeout` for the whole run).

Writes results/scale_out_redis.{json,md,png}.
Example: python benchmarks/scale_out_redis.py --instances 3 --handshakes 300 \
    --idle-rooms 300 --window 60
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # tests.infra: RedisServer, HAProxy

from _common import RESULTS, md_table, pin, raise_nofile, write_results  # noqa: E402
from scale_out import (  # noqa: E402
    cpu_list,
    fleet,
    handshake,
    hold_rooms,
    sessions_of,
    summary,
)

from tests.infra import RedisServer  # noqa: E402

PATHS = ("plain-direct", "plain-haproxy", "redis-direct", "redis-haproxy")
# This script's own commands, not the fleet's.
OWN = ("info", "config|resetstat", "config", "ping")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=3, help="instances per fleet (K)")
    p.add_argument("--handshakes", type=int, default=300, help="sequential handshakes per path")
    p.add_argument("--idle-rooms", type=int, default=300, help="rooms held idle for the window")
    p.add_argument("--concurrency", type=int, default=50, help="idle rooms opening at once")
    p.add_argument("--settle", type=float, default=6.0, help="seconds before the window")
    p.add_argument("--window", type=float, default=60.0, help="seconds of counting")
    p.add_argument("--baseline", type=float, default=10.0, help="seconds of Redis with no room")
    p.add_argument("--max-rooms", type=int, default=100000, help="VOICEAGENT_MAX_ROOMS")
    p.add_argument("--server-cpus", type=cpu_list, default=cpu_list("0"))
    p.add_argument("--aux-cpus", type=cpu_list, default=cpu_list("1"))
    p.add_argument("--timeout", type=float, default=600, help="bound on the whole run (s)")
    p.add_argument("--name", default="scale_out_redis", help="results/<name>.{json,md,png}")
    return p


def redis_info(redis: RedisServer, section: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in str(redis.call("INFO", section)).splitlines():
        key, sep, value = line.partition(":")
        if sep and not key.startswith("#"):
            fields[key] = value
    return fields


def redis_snapshot(redis: RedisServer) -> dict[str, Any]:
    cpu = redis_info(redis, "cpu")
    calls = redis.command_calls()
    for own in OWN:
        calls.pop(own, None)
    return {
        "at": time.monotonic(),
        "calls": calls,
        "cpu_s": float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"]),
    }


def key_bytes(redis: RedisServer, limit: int = 100_000) -> dict[str, int]:
    """`MEMORY USAGE` summed over every key, by kind (`room`, `slots`); at most `limit` keys."""
    totals: dict[str, int] = {}
    cursor, seen = "0", 0
    while seen < limit:
        reply = redis.call("SCAN", cursor, "COUNT", 1000)
        assert isinstance(reply, list)
        cursor, keys = reply[0], reply[1]
        for key in keys:
            kind = key.split(":")[1] if key.count(":") else key
            totals[kind] = totals.get(kind, 0) + int(redis.call("MEMORY", "USAGE", key) or 0)
            seen += 1
        if cursor == "0":
            break
    return totals


async def measure_handshakes(
    count: int, ports: dict[str, list[int]], proxies: dict[str, int]
) -> dict[str, list[float]]:
    """Seconds until `session_started` per path; the order rotates every round."""
    samples: dict[str, list[float]] = {path: [] for path in PATHS}
    for index in range(count):
        shift = index % len(PATHS)
        for path in PATHS[shift:] + PATHS[:shift]:
            fleet_name, _, how = path.partition("-")
            if how == "direct":
                fleet_ports = ports[fleet_name]
                port = fleet_ports[index % len(fleet_ports)]
            else:
                port = proxies[fleet_name]
            _, started = await handshake(port, f"hs-{path}-{index}")
            samples[path].append(started)
        await trio.sleep(0.005)  # one at a time: latency, not throughput
    return samples


async def run(
    args: argparse.Namespace,
    ports: dict[str, list[int]],
    proxies: dict[str, int],
    redis: RedisServer,
) -> dict[str, Any]:
    with trio.fail_after(args.timeout):
        samples = await measure_handshakes(args.handshakes, ports, proxies)
        await trio.sleep(1.0)  # the handshake rooms finish closing
        empty = redis_snapshot(redis)
        await trio.sleep(args.baseline)  # Redis with no room: its own housekeeping
        idle_redis = redis_snapshot(redis)
        opened, release = trio.Event(), trio.Event()
        window: dict[str, Any] = {}

        async def observe() -> None:
            await opened.wait()
            await trio.sleep(args.settle)  # past the opening; heartbeats in their rhythm
            window["held"] = [sessions_of(port) for port in ports["redis"]]
            window["before"] = redis_snapshot(redis)
            await trio.sleep(args.window)
            window["after"] = redis_snapshot(redis)
            window["key_bytes"] = key_bytes(redis)  # after the window: not counted in it
            release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(observe)
            failures = await hold_rooms(
                args.idle_rooms, args.concurrency, proxies["redis"], opened, release, "idle"
            )
    before, after = window["before"], window["after"]
    rooms = sum(window["held"])
    minutes = (after["at"] - before["at"]) / 60
    per_command = {
        name: after["calls"][name] - before["calls"].get(name, 0)
        for name in sorted(after["calls"])
        if after["calls"][name] - before["calls"].get(name, 0)
    }
    total = sum(per_command.values())
    # Redis's own housekeeping (serverCron, this script's INFO) is there with no room.
    baseline_cpu_s_per_s = (idle_redis["cpu_s"] - empty["cpu_s"]) / (idle_redis["at"] - empty["at"])
    window_cpu_s_per_s = (after["cpu_s"] - before["cpu_s"]) / (minutes * 60)
    rooms_cpu_s_per_s = max(0.0, window_cpu_s_per_s - baseline_cpu_s_per_s)
    no_room_calls = {
        name: n - empty["calls"].get(name, 0)
        for name, n in idle_redis["calls"].items()
        if n - empty["calls"].get(name, 0)
    }
    per_room = max(1, rooms)
    return {
        "handshakes": {path: summary(values) for path, values in samples.items()},
        "handshake_samples_ms": {
            path: [round(v * 1000, 3) for v in values] for path, values in samples.items()
        },
        "idle": {
            "rooms_requested": args.idle_rooms,
            "failures": len(failures),
            "failure_examples": failures[:3],
            "per_instance": window["held"],
            "rooms": rooms,
            "window_s": round(minutes * 60, 2),
            "commands": per_command,
            "commands_total": total,
            "commands_per_room_per_minute": round(total / per_room / minutes, 2),
            "commands_per_room_per_minute_by_name": {
                name: round(n / per_room / minutes, 2) for name, n in per_command.items()
            },
            "redis_cpu_ms_per_room_per_minute": round(
                (rooms_cpu_s_per_s * 60) * 1000 / per_room, 4
            ),
            "redis_cpu_share_of_core_no_room": round(baseline_cpu_s_per_s, 5),
            "commands_no_room": no_room_calls,
            "redis_cpu_share_of_core": round(rooms_cpu_s_per_s, 5),
            "redis_key_bytes": window["key_bytes"],
            "redis_bytes_per_room": round(sum(window["key_bytes"].values()) / per_room, 1),
        },
    }


def plot(result: dict[str, Any], name: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for path in PATHS:
        values = sorted(result["handshake_samples_ms"][path])
        share = [(i + 1) / len(values) for i in range(len(values))]
        left.plot(values, share, "-" if path.endswith("direct") else "--", label=path)
    left.set_xscale("log")
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # unreadable overlap
    left.set_xlabel("connect → session_started (ms)")
    left.set_ylabel("share of handshakes")
    left.legend(fontsize=8)
    idle = result["idle"]
    by_name = idle["commands_per_room_per_minute_by_name"]
    right.bar(list(by_name), list(by_name.values()))
    right.set_ylabel("commands per room per minute")
    right.set_title(f"{idle['rooms']} idle rooms, {idle['window_s']:.0f} s window")
    right.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)
    return [f"{name}.png"]


def markdown(result: dict[str, Any], args: argparse.Namespace, command: str) -> str:
    hs = result["handshakes"]
    rows = []
    for how in ("direct", "haproxy"):
        plain, redis = hs[f"plain-{how}"], hs[f"redis-{how}"]
        rows.append(
            [
                how,
                plain["p50_ms"],
                redis["p50_ms"],
                redis["p50_ms"] - plain["p50_ms"],
                plain["p99_ms"],
                redis["p99_ms"],
                redis["p99_ms"] - plain["p99_ms"],
            ]
        )
    idle = result["idle"]
    slot = "the fleet-wide `rooms` slot" if args.max_rooms else "no slot"
    lines = [
        "# Scale-out with the Redis registry",
        "",
        f"`{command}`",
        "",
        f"Two fleets of {args.instances} `voiceagent serve` instances (CPUs {args.server_cpus}),"
        " each behind HAProxy with deploy/haproxy.cfg; one shares a `redis-server`",
        f'(`--save "" --appendonly no`). HAProxy, Redis and the load on CPUs {args.aux_cpus};'
        " all on 127.0.0.1.",
        f"`VOICEAGENT_MAX_ROOMS={args.max_rooms}` on both: with Redis each room holds {slot};"
        " no tokens, loopback clients (no per-user or per-address slot).",
        "",
        f"Load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs;"
        " with other work on the machine the p99 figures carry its noise, the p50",
        "differences are the ones to read.",
        "",
        f"Handshakes: {args.handshakes} per path, one at a time, the four paths interleaved,"
        " each a new room; connect until `session_started`.",
        "",
        md_table(
            [
                "path",
                "no Redis p50 ms",
                "Redis p50 ms",
                "added p50 ms",
                "no Redis p99 ms",
                "Redis p99 ms",
                "added p99 ms",
            ],
            rows,
        ),
        "",
        f"Idle rooms: {idle['rooms']} held through HAProxy ({idle['per_instance']} per"
        f" instance, {idle['failures']} failed), counted over {idle['window_s']} s after"
        f" {args.settle} s settling (`INFO commandstats` deltas, scripts' commands included).",
        "",
        md_table(
            ["command", "calls", "per room per minute"],
            [
                [name, n, idle["commands_per_room_per_minute_by_name"][name]]
                for name, n in idle["commands"].items()
            ]
            + [["total", idle["commands_total"], idle["commands_per_room_per_minute"]]],
        ),
        "",
        f"Redis CPU time: {idle['redis_cpu_ms_per_room_per_minute']} ms per room per minute"
        f" ({idle['redis_cpu_share_of_core'] * 100:.3f} % of one core for these rooms, above"
        f" {idle['redis_cpu_share_of_core_no_room'] * 100:.3f} % with no room over"
        f" {args.baseline} s, commands then: {idle['commands_no_room'] or 'none'});"
        f" memory: {idle['redis_bytes_per_room']} bytes per room (`MEMORY USAGE` summed over"
        f" the keys: {idle['redis_key_bytes']}).",
        "",
        f"![{args.name}.png]({args.name}.png)",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if min(args.instances, args.handshakes, args.idle_rooms) < 1 or args.window <= 0:
        raise SystemExit("--instances, --handshakes, --idle-rooms and --window must be positive")
    raise_nofile()
    pin(args.aux_cpus)  # Redis (started from here) and the load; the instances re-pin
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="va-redis-")))
        redis = RedisServer(directory)
        redis.start()
        stack.callback(redis.stop)
        limits = {"VOICEAGENT_MAX_ROOMS": str(args.max_rooms)}
        plain = stack.enter_context(fleet(args, limits, tag="-plain"))
        shared = stack.enter_context(
            fleet(args, {**limits, "VOICEAGENT_REDIS_URL": redis.url}, tag="-redis")
        )
        ports = {"plain": plain[0], "redis": shared[0]}
        proxies = {"plain": plain[1], "redis": shared[1]}
        result = trio.run(run, args, ports, proxies, redis)
    command = "python benchmarks/scale_out_redis.py " + " ".join(argv)
    result["plots"] = plot(result, args.name)
    result["settings"] = dict(vars(args))
    paths = write_results(args.name, result, markdown(result, args, command.strip()))
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
