"""Density: 10,000 idle rooms plus 25 active ones in one server process on one core.

Processes (all on 127.0.0.1): the server, `hypercorn -k trio voiceagent:app` pinned to
`--server-cpus`, pointed at the Realtime and Cartesia emulators; the emulators and the
load processes pinned to `--aux-cpus`. Per run:

1. the server starts; after a warm-up connection its baseline RSS is read;
2. `--idle` idle rooms are opened (`--client-procs` load processes; they send nothing,
   so no provider connection is opened) and held open; after `--settle` s the RSS gives
   the KB per idle room;
3. with the idle rooms still open, `--active` relayed voice rooms run for `--warmup` +
   `--window` seconds (a simulated browser each, as in active_rooms.py: 20 ms frames in
   real time, a typed question every 4 s, every second answer interrupted);
4. from /metrics, scraped at the edges of that window: the event-loop lag p99 and max
   (`voiceagent_event_loop_lag_seconds`, 50 ms ticks) and the longest garbage collector
   pass of each generation (`voiceagent_gc_pause_seconds`), as bucket upper bounds; the
   same GC figures for the ramp (while the idle rooms were opening); the active rooms'
   turn latency and interrupt -> silence from the clients.

`--policy on,off` runs each run twice, interleaved (on, off, on, off, ...): with the GC
policy (voiceagent/gc_policy.py, the default) and with `VOICEAGENT_GC_FREEZE_INTERVAL_S=0`
(CPython's own collector settings): the A/B that keeps the policy.

Targets: longest GC pause < 50 ms, loop-lag max < 100 ms, idle room <= 40 KB.
Writes results/density.{json,md,png}.
Example: python benchmarks/density.py --idle 10000 --active 25 --window 60 --policy on,off
"""

from __future__ import annotations

import argparse
import signal
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
    rss_bytes,
    server_process,
    wait_app_ready,
    wait_port,
    write_results,
)
from _emulators import Emulators, emulators
from _loadgen import Fleet
from _sweep import measure_idle_rss
from active_rooms import histogram_quantile, rooms_step, scrape

TARGET_GC_MS = 50.0
TARGET_LAG_MS = 100.0
TARGET_KB = 40.0
GC = "voiceagent_gc_pause_seconds"
LAG = "voiceagent_event_loop_lag_seconds"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--idle", type=int, default=10_000, help="idle rooms held open")
    p.add_argument("--active", type=int, default=25, help="active relayed rooms")
    p.add_argument("--window", type=float, default=60.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=6.0, help="active rooms' warm-up (s)")
    p.add_argument("--settle", type=float, default=5.0, help="s before reading idle RSS")
    p.add_argument("--policy", default="on", help="on, off, or on,off (interleaved A/B)")
    p.add_argument("--runs", type=int, default=1, help="runs per policy side")
    p.add_argument("--server-cpus", type=cpu_list, default=[0])
    p.add_argument("--aux-cpus", type=cpu_list, default=[1])
    p.add_argument("--client-procs", type=int, default=4)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--name", default="density")
    return p


def gc_figures(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Passes and longest pass (bucket upper bound, ms) per generation, in between."""
    out: dict[str, Any] = {}
    for generation in ("0", "1", "2"):
        sub_before = {k.replace(f"|generation={generation}", ""): v for k, v in before.items()
                      if f"|generation={generation}" in k}  # fmt: skip
        sub_after = {k.replace(f"|generation={generation}", ""): v for k, v in after.items()
                     if f"|generation={generation}" in k}  # fmt: skip
        count = sub_after.get(f"{GC}_count", 0.0) - sub_before.get(f"{GC}_count", 0.0)
        longest = histogram_quantile(sub_before, sub_after, GC, 1.0)
        out[f"gen{generation}_passes"] = int(count)
        out[f"gen{generation}_longest_le_ms"] = None if longest is None else longest * 1000
    return out


def one_run(policy: str, args: argparse.Namespace, emu: Emulators) -> dict[str, Any]:
    port = free_port()
    env = {**emu.env, "VOICEAGENT_LOG_LEVEL": "warning",
           "WS_MAX_CONNECTIONS": str(args.idle + args.active + 100)}  # fmt: skip
    if policy == "off":
        env["VOICEAGENT_GC_FREEZE_INTERVAL_S"] = "0"
    argv = [sys.executable, "-m", "hypercorn", "-k", "trio", "--backlog", "4096",
            "-b", f"127.0.0.1:{port}", "voiceagent:app"]  # fmt: skip
    result: dict[str, Any] = {"policy": policy}
    with server_process(argv, name=f"density_{policy}", cpus=args.server_cpus, env=env,
                        stop_signal=signal.SIGINT) as proc:  # fmt: skip
        wait_port(port, proc)
        wait_app_ready(port)
        measure_idle_rss(proc.pid, port, 1, path="/ws/", procs=1, cpus=args.aux_cpus,
                         settle_s=0.5, id_prefix="warm")  # fmt: skip
        time.sleep(1.5)
        baseline = rss_bytes(proc.pid)
        ramp0, _ = scrape(port)
        spec = {"mode": "idle", "host": "127.0.0.1", "port": port, "path": "/ws/",
                "connect_concurrency": 128}  # fmt: skip
        started = time.monotonic()
        with Fleet(spec, args.idle, procs=args.client_procs, cpus=args.aux_cpus,
                   id_prefix="idle") as idle:  # fmt: skip
            ready = idle.wait_ready(timeout=max(120.0, args.idle / 50))
            result["idle_connected"], result["idle_failed"] = ready["ok"], ready["failed"]
            result["connect_s"] = round(time.monotonic() - started, 1)
            time.sleep(args.settle)
            rss = rss_bytes(proc.pid)
            ramp1, _ = scrape(port)
            result["baseline_mb"] = baseline / 1e6
            result["rss_idle_mb"] = rss / 1e6
            result["kb_per_idle_room"] = (rss - baseline) / max(1, ready["ok"]) / 1e3
            result["ramp_gc"] = gc_figures(ramp0, ramp1)
            step_args = argparse.Namespace(
                turn_every=4.0, interrupt_every=2, interrupt_after=0.4, client_procs=1,
                aux_cpus=args.aux_cpus, warmup=args.warmup, duration=args.window,
            )  # fmt: skip
            before, _ = scrape(port)
            step = rooms_step(proc.pid, port, args.active, emu, step_args, frame_ms=20)
            after, _ = scrape(port)
            result["sessions_open"] = after.get("voiceagent_sessions_open")
            idle.stop()
    result["window_gc"] = gc_figures(before, after)
    lag_p99 = histogram_quantile(before, after, LAG, 0.99)
    lag_max = histogram_quantile(before, after, LAG, 1.0)
    result["loop_lag_p99_le_ms"] = None if lag_p99 is None else lag_p99 * 1000
    result["loop_lag_max_le_ms"] = None if lag_max is None else lag_max * 1000
    keep = ("connected", "failed", "turn_p50_ms", "turn_p99_ms", "silence_p99_ms",
            "stale_bytes", "turns", "turns_with_audio", "interrupts", "interrupts_acked",
            "server_cpu_util", "relay_p99_le_ms", "error_codes")  # fmt: skip
    result["active"] = {k: step.get(k) for k in keep}
    return result


def longest_gc_ms(run: dict[str, Any], part: str) -> float | None:
    values = [run[part][f"gen{g}_longest_le_ms"] for g in "012"]
    present = [v for v in values if v is not None]
    return max(present) if present else None


def verdict(run: dict[str, Any]) -> dict[str, bool | None]:
    gc_ms = longest_gc_ms(run, "window_gc")
    lag = run["loop_lag_max_le_ms"]
    return {
        "gc_pause_under_50_ms": None if gc_ms is None else gc_ms < TARGET_GC_MS,
        "loop_lag_max_under_100_ms": None if lag is None else lag <= TARGET_LAG_MS,
        "idle_room_at_most_40_kb": run["kb_per_idle_room"] <= TARGET_KB,
    }


def plot(runs: list[dict[str, Any]], name: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    labels = [f"{r['policy']} #{i + 1}" for i, r in enumerate(runs)]
    colors = ["tab:green" if r["policy"] == "on" else "tab:red" for r in runs]
    figures = [
        ([longest_gc_ms(r, "window_gc") or 0 for r in runs], TARGET_GC_MS,
         "longest GC pass in the window (ms, <=)"),
        ([r["loop_lag_max_le_ms"] or 0 for r in runs], TARGET_LAG_MS,
         "event-loop lag max (ms, <=)"),
        ([r["kb_per_idle_room"] for r in runs], TARGET_KB, "RSS per idle room (KB)"),
    ]  # fmt: skip
    for ax, (values, target, title) in zip(axes, figures, strict=True):
        ax.bar(labels, values, color=colors)
        ax.axhline(target, color="black", ls=":", label="target")
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="x", labelsize=8, rotation=30)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    fig.suptitle(f"{runs[0]['idle_connected']} idle + {runs[0]['active']['connected']} "
                 "active rooms, one core", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=110)
    plt.close(fig)
    return [f"{name}.png"]


def markdown(runs: list[dict[str, Any]], argv: list[str], pngs: list[str]) -> str:
    rows = []
    for r in runs:
        v, a = verdict(r), r["active"]
        rows.append([
            r["policy"], r["idle_connected"], r["idle_failed"], a["connected"],
            round(r["kb_per_idle_room"], 1), r["rss_idle_mb"],
            r["ramp_gc"]["gen2_passes"], r["ramp_gc"]["gen2_longest_le_ms"],
            r["window_gc"]["gen2_passes"], longest_gc_ms(r, "window_gc"),
            r["loop_lag_p99_le_ms"], r["loop_lag_max_le_ms"],
            a["turn_p50_ms"], a["turn_p99_ms"], a["silence_p99_ms"], a["stale_bytes"],
            "yes" if all(v.values()) else "no",
        ])  # fmt: skip
    headers = ["GC policy", "idle rooms", "failed", "active rooms", "KB/idle room",
               "RSS MB", "ramp gen-2 passes", "ramp longest pass <= ms",
               "window gen-2 passes", "window longest pass <= ms", "loop lag p99 <= ms",
               "loop lag max <= ms", "turn p50 ms", "turn p99 ms", "interrupt->silence p99 ms",
               "stale bytes", "targets met"]  # fmt: skip
    return "\n".join([
        "# Density: idle rooms plus active rooms on one core",
        "",
        f"`python benchmarks/density.py {' '.join(argv)}`".replace(" `", "`"),
        "",
        f"Targets: longest GC pass < {TARGET_GC_MS:.0f} ms and event-loop lag max <= "
        f"{TARGET_LAG_MS:.0f} ms over the {runs[0]['active'] and 'measured'} window, "
        f"idle room <= {TARGET_KB:.0f} KB. Pause and lag figures are bucket upper bounds "
        "of the server's own histograms (buckets 0.5, 1, 2, 5, 10, 20, 50, 100, 250 ms, "
        "...). 'ramp' is while the idle rooms were opening; 'window' is the active rooms' "
        "warm-up plus the measured window, with every idle room open.",
        "",
        md_table(headers, rows),
        "",
        *[f"![{p}]({p})" for p in pngs],
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    sides = [s.strip() for s in args.policy.split(",") if s.strip()]
    if not sides or any(s not in ("on", "off") for s in sides):
        raise SystemExit("--policy takes on, off or on,off")
    raise_nofile()
    runs: list[dict[str, Any]] = []
    with emulators("density", args.aux_cpus) as emu:
        for _ in range(args.runs):
            for side in sides:
                run = one_run(side, args, emu)
                run["verdict"] = verdict(run)
                runs.append(run)
                print(
                    f"[{side}] idle={run['idle_connected']} ({run['kb_per_idle_room']:.1f} KB) "
                    f"ramp gc={run['ramp_gc']} window gc={run['window_gc']} lag p99<="
                    f"{run['loop_lag_p99_le_ms']} max<={run['loop_lag_max_le_ms']} ms "
                    f"active={run['active']} verdict={run['verdict']}",
                    flush=True,
                )
    pngs = [] if args.no_plots else plot(runs, args.name)
    paths = write_results(args.name, {"args": vars(args), "runs": runs},
                          markdown(runs, argv, pngs))  # fmt: skip
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
