"""Room churn: 10,000 rooms opened and cancelled mid-answer, and nothing left behind.

This process is the server (the app on Hypercorn's trio worker, pinned to
`--server-cpus`), so it can count its own objects; the Realtime and Cartesia emulators
and the load (`_churn_client.py`) are separate processes pinned to `--aux-cpus`. The
load runs `--cycles` room cycles, `--concurrency` at a time, in batches of `--batch`:
connect, ask a question, wait for the answer's first audio, leave (every
`--interrupt-every`-th cycle interrupts the voice first). The server's session, its
Realtime connection and its Cartesia stream are cancelled mid-answer every time.

After the warm-up batch and after every batch, with no room open: a full collection of
everything, the frozen generation included (`gc.unfreeze()`, `gc.collect()`: how many
objects it found in reference cycles, so a cycle that leaked into the frozen generation
counts too; then `gc.freeze()` again), the tracked objects and the RSS.
Pass: RSS at the end within 5 % of the value after warm-up, and the tracked-object
count flat (within 1 % + 1,000 of it). The GC policy runs as in production
(`--policy off` sets VOICEAGENT_GC_FREEZE_INTERVAL_S=0).

Writes results/room_churn.{json,md,png}.
Example: python benchmarks/room_churn.py --cycles 10000 --batch 1000 --concurrency 25
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trio
from _common import (
    RESULTS,
    cpu_list,
    md_table,
    pin,
    raise_nofile,
)
from _common import write_results as write
from _emulators import emulators

RSS_TOLERANCE = 0.05
OBJECTS_TOLERANCE = 0.01
OBJECTS_SLACK = 1_000


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cycles", type=int, default=10_000, help="measured room cycles")
    p.add_argument("--warmup", type=int, default=500, help="cycles before the baseline")
    p.add_argument("--batch", type=int, default=1_000)
    p.add_argument("--concurrency", type=int, default=25)
    p.add_argument("--interrupt-every", type=int, default=4)
    p.add_argument("--policy", choices=("on", "off"), default="on")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="bound on the run")
    p.add_argument("--server-cpus", type=cpu_list, default=[0])
    p.add_argument("--aux-cpus", type=cpu_list, default=[1])
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--name", default="room_churn")
    return p


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def wait_rooms_closed(services: Any, within: float = 30.0) -> None:
    with trio.fail_after(within):
        while len(services.registry) or services.registry.with_model:  # noqa: ASYNC110
            await trio.sleep(0.05)  # registry counts have no event to wait on
    await trio.sleep(0.5)  # the connections' last tasks finish


def checkpoint(cycles: int, policy_collected: dict[str, int]) -> dict[str, Any]:
    """Everything, frozen or not, walked once: a cycle that leaked into the frozen
    generation is found here too (then frozen again, as the policy would)."""
    gc.unfreeze()
    found = gc.collect()
    tracked = len(gc.get_objects())
    gc.freeze()
    return {
        "cycles": cycles,
        "collected": found,
        "policy_collected": dict(policy_collected),
        "tracked": tracked,
        "rss_mb": rss_bytes() / 1e6,
    }


async def serve_and_churn(args: argparse.Namespace, env: dict[str, str]) -> dict[str, Any]:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    from voiceagent.app import create_app
    from voiceagent.config import Settings
    from voiceagent.gc_policy import GcSettings, run_gc_policy
    from voiceagent.providers import build_services

    settings = Settings.from_env({**env, "VOICEAGENT_GC_FREEZE_INTERVAL_S": "0"})
    services = build_services(settings)
    app = create_app(services=services)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    config.websocket_ping_interval = None
    points: list[dict[str, Any]] = []
    batches: list[dict[str, Any]] = []
    with trio.fail_after(args.max_seconds):
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(
                    app, config, shutdown_trigger=trio.sleep_forever, task_status=task_status
                )
            )
            port = int(binds[0].rsplit(":", 1)[1])
            # The policy as the app starts it, but here so its counts can be read.
            interval = 1.0 if args.policy == "on" else 0.0
            policy = await nursery.start(
                lambda task_status: run_gc_policy(
                    GcSettings(freeze_interval_s=interval), lambda: len(services.registry),
                    task_status=task_status,
                )
            )  # fmt: skip
            collected = policy.collected if policy is not None else {}
            client = await trio.lowlevel.open_process(
                [sys.executable, str(Path(__file__).parent / "_churn_client.py"),
                 "--port", str(port), "--concurrency", str(args.concurrency),
                 "--interrupt-every", str(args.interrupt_every),
                 "--cpus", ",".join(map(str, args.aux_cpus))],
                stdin=-1, stdout=-1,
            )  # fmt: skip
            assert client.stdin is not None and client.stdout is not None
            lines = client.stdout
            buffer = b""

            async def run_batch(n: int) -> dict[str, Any]:
                nonlocal buffer
                await client.stdin.send_all(f"{n}\n".encode())
                while b"\n" not in buffer:
                    chunk = await lines.receive_some(65536)
                    if not chunk:
                        raise RuntimeError("the churn client ended early")
                    buffer += chunk
                line, _, buffer = buffer.partition(b"\n")
                return json.loads(line)

            started = time.monotonic()
            batches.append(await run_batch(args.warmup))
            await wait_rooms_closed(services)
            points.append(checkpoint(0, collected))
            done = 0
            while done < args.cycles:
                n = min(args.batch, args.cycles - done)
                result = await run_batch(n)
                done += n
                batches.append(result)
                await wait_rooms_closed(services)
                points.append(checkpoint(done, collected))
                p = points[-1]
                print(f"{done} cycles ({time.monotonic() - started:.0f} s): ok={result['ok']} "
                      f"failed={result['failed']} tracked={p['tracked']} rss={p['rss_mb']:.1f} MB "
                      f"collected={p['collected']} policy={p['policy_collected']}",
                      flush=True)  # fmt: skip
            await client.stdin.send_all(b"\n")
            with trio.move_on_after(10):
                await client.wait()
            client.kill()
            nursery.cancel_scope.cancel()
    return {"points": points, "batches": batches, "seconds": time.monotonic() - started}


def verdict(points: list[dict[str, Any]]) -> dict[str, Any]:
    first, last = points[0], points[-1]
    rss_growth = last["rss_mb"] / first["rss_mb"] - 1
    object_growth = last["tracked"] - first["tracked"]
    return {
        "rss_growth": rss_growth,
        "rss_within_5_percent": rss_growth <= RSS_TOLERANCE,
        "tracked_growth": object_growth,
        "tracked_flat": object_growth <= first["tracked"] * OBJECTS_TOLERANCE + OBJECTS_SLACK,
        "cyclic_objects_found_after_warmup": sum(p["collected"] for p in points[1:]),
    }


def plot(points: list[dict[str, Any]], name: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p["cycles"] for p in points]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(xs, [p["rss_mb"] for p in points], "o-")
    a1.axhline(points[0]["rss_mb"] * (1 + RSS_TOLERANCE), color="red", ls=":", label="+5 %")
    a1.set_xlabel("room cycles after warm-up")
    a1.set_ylabel("server RSS (MB)")
    a1.legend()
    a2.plot(xs, [p["tracked"] for p in points], "o-")
    a2.set_xlabel("room cycles after warm-up")
    a2.set_ylabel("tracked objects (incl. frozen)")
    a2.set_ylim(0, max(p["tracked"] for p in points) * 1.1)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)
    return [f"{name}.png"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    raise_nofile()
    with emulators("churn", args.aux_cpus, ttft=0.05, token_rate=100, first_chunk_ms=30) as emu:
        env = {**emu.env, "VOICEAGENT_TTS_FALLBACK": "false"}
        pin(args.server_cpus)
        run = trio.run(serve_and_churn, args, env)
    points = run["points"]
    v = verdict(points)
    ok = sum(b["ok"] for b in run["batches"][1:])
    failed = sum(b["failed"] for b in run["batches"][1:])
    interrupted = sum(b["interrupted"] for b in run["batches"][1:])
    pngs = [] if args.no_plots else plot(points, args.name)
    rows = [[p["cycles"], p["tracked"], round(p["rss_mb"], 1), p["collected"],
             p["policy_collected"].get("tick", 0)] for p in points]  # fmt: skip
    md = "\n".join(
        [
            "# Room churn: rooms opened and cancelled mid-answer",
            "",
            f"`python benchmarks/room_churn.py {' '.join(argv)}`".replace(" `", "`"),
            "",
            f"{args.cycles} measured cycles after {args.warmup} warm-up cycles, "
            f"{args.concurrency} at a time, in {run['seconds']:.0f} s: {ok} left mid-answer "
            f"({interrupted} of them after an interrupt), {failed} failed. "
            f"GC policy {args.policy}. "
            "Each row is read with no room open, after a full collection.",
            "",
            f"RSS growth after warm-up: {v['rss_growth'] * 100:+.2f} % (limit +5 %: "
            f"{'met' if v['rss_within_5_percent'] else 'NOT met'}); tracked objects: "
            f"{v['tracked_growth']:+d} ({'flat' if v['tracked_flat'] else 'NOT flat'}); objects "
            f"in reference cycles found after warm-up: {v['cyclic_objects_found_after_warmup']}.",
            "",
            md_table(
                [
                    "cycles",
                    "tracked objects",
                    "RSS MB",
                    "gc.collect() found",
                    "policy ticks collected (cumulative)",
                ],
                rows,
            ),
            "",
            *[f"![{p}]({p})" for p in pngs],
        ]
    )
    paths = write(args.name, {"args": vars(args), **run, "verdict": v}, md)
    print(paths["md"].read_text())
    return 0 if v["rss_within_5_percent"] and v["tracked_flat"] and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
