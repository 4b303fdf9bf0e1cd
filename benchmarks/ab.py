"""Interleaved A/B of the active-rooms benchmark between two checkouts.

A performance change stays only when an A/B in one run shows it. This runs
`benchmarks/active_rooms.py` of checkout A, then of checkout B, A, B, ... (`--runs` each),
each against its own code (the script serves the checkout it lives in), and compares
the figures that do not depend on how fast the machine is that day: the CPU ratio to
the echo floor at equal load (echo CPU per session / CPU per room, by room count) and
the server CPU per room-second. Latency at each room count (client-side server-added
p99, first-audio p99, interrupt -> silence p99) is reported beside it, medians of the
runs, for changes that are about pauses rather than CPU, and so is the load side's core
(the emulators' and load clients' CPU): a busy load core delays every turn as well.
Interleaving spreads any drift of the machine over both sides.

Writes results/<--name>.{json,md}. Example (A = the commit before a change, checked
out with `git worktree add /tmp/before <commit>`):
    python benchmarks/ab.py --a /tmp/before --b . --runs 3 --name restructure_ab \\
        -- --rooms 25,50 --floor-sessions 25,50 --duration 15 --warmup 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_ab_arguments, md_table, run_in_checkout, write_results


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_ab_arguments(p, runs=3, name="ab", script="active_rooms.py")
    p.add_argument("--a-env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--b-env", action="append", default=[], metavar="NAME=VALUE")
    return p


def one_run(
    checkout: Path, label: str, bench_args: list[str], env: dict[str, str]
) -> dict[str, Any]:
    """Run checkout's active_rooms.py (servers inherit `env`); its results, read back."""
    return run_in_checkout(checkout, "active_rooms.py", bench_args, f"ab_scratch_{label}", env)


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--a-env/--b-env take NAME=VALUE, not {pair!r}")
        env[name] = value
    return env


LATENCY = {
    "added_p99_ms": "server-added p99 (client stamps)",
    "relay_p99_le_ms": "server relay p99 (server's histogram, bucket bound)",
    "turn_p99_ms": "first audio p99",
    "server_llm_ms_p99": "server's model stage p99 (question -> first text)",
    "silence_p99_ms": "interrupt -> silence p99",
    "gc_ms_per_s": "cyclic GC pauses, ms per second (all generations)",
    # By generation: young passes (0) and full ones (2: the GC policy's ticks). How often
    # they run does not depend on how fast the machine is; their length does.
    "gc0_passes_per_s": "young GC passes per second",
    "gc0_ms_per_s": "young GC pauses, ms per second",
    "gc2_passes_per_s": "full GC passes per second (GC policy ticks)",
    "gc2_ms_per_s": "full GC pauses, ms per second",
}
# How busy each core was: the server's, and the load side's (emulators and load clients;
# a busy load core delays every turn too).
LOAD_SIDE = {
    "server_cpu_pct": "server core busy (%)",
    "aux_cpu_pct": "load core busy (%)",
    "aux_runqueue_wait": "load core runqueue wait (tasks waiting, mean)",
    "realtime_cpu_pct": "Realtime emulator CPU (%)",
    "cartesia_cpu_pct": "Cartesia emulator CPU (%)",
    "load_cpu_pct": "load clients CPU (%)",
}
FIGURES = {**LATENCY, **LOAD_SIDE}


def figures(run: dict[str, Any]) -> dict[str, Any]:
    verdict = run["verdict"]
    steps = run.get("steps") or []
    return {
        "cpu_ratio_at_equal_load": {
            str(m): r for m, r in (verdict.get("cpu_ratio_at_equal_load") or {}).items()
        },
        "cpu_ms_per_room_s": verdict.get("cpu_ms_per_room_s"),
        "latency": {str(step["rooms"]): _step_figures(step) for step in steps},
    }


def _step_figures(step: dict[str, Any]) -> dict[str, float | None]:
    out = {key: step.get(key) for key in LATENCY}
    shares = step.get("gc_share_by_generation")
    out["gc_ms_per_s"] = sum(shares.values()) * 1000 if shares else None
    passes = step.get("gc_passes_per_s_by_generation") or {}
    for gen in ("0", "2"):
        out[f"gc{gen}_passes_per_s"] = passes.get(gen)
        out[f"gc{gen}_ms_per_s"] = shares[gen] * 1000 if shares and gen in shares else None
    by_process = step.get("aux_cpu_by_process") or {}
    out["server_cpu_pct"] = _pct(step.get("server_cpu_util"))
    out["aux_cpu_pct"] = _pct(step.get("aux_cpu_util"))
    out["aux_runqueue_wait"] = step.get("aux_runqueue_wait")
    for process in ("realtime", "cartesia", "load"):
        out[f"{process}_cpu_pct"] = _pct(by_process.get(process))
    return out


def _pct(share: float | None) -> float | None:
    return None if share is None else share * 100


def step_rows(runs: dict[str, list[dict[str, Any]]]) -> list[list[Any]]:
    """One row per room count and figure: each side's runs and median."""
    rooms = sorted({int(m) for side in runs.values() for run in side for m in run["latency"]})
    rows = []
    for m in rooms:
        for key, label in FIGURES.items():
            row: list[Any] = [m, label]
            for side in ("A", "B"):
                values = [
                    run["latency"][str(m)][key]
                    for run in runs[side]
                    if run["latency"].get(str(m), {}).get(key) is not None
                ]
                row.append(", ".join(f"{v:.1f}" for v in values) or "-")
                row.append(round(statistics.median(values), 1) if values else None)
            rows.append(row)
    return rows


def main() -> None:
    args = build_parser().parse_args()
    bench_args = [a for a in args.bench_args if a != "--"]
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    envs = {"A": parse_env(args.a_env), "B": parse_env(args.b_env)}
    for n in range(args.runs):
        for label, checkout in (("A", args.a), ("B", args.b)):
            data = one_run(checkout.resolve(), f"{label}{n}", bench_args, envs[label])
            runs[label].append(figures(data))
            print(label, n, runs[label][-1], flush=True)
    rooms = sorted(
        {int(m) for side in runs.values() for run in side for m in run["cpu_ratio_at_equal_load"]}
    )
    rows = []
    medians: dict[str, dict[str, float | None]] = {"A": {}, "B": {}}
    for m in rooms:
        row: list[Any] = [m]
        for label in ("A", "B"):
            values = [
                run["cpu_ratio_at_equal_load"][str(m)]
                for run in runs[label]
                if str(m) in run["cpu_ratio_at_equal_load"]
            ]
            medians[label][str(m)] = statistics.median(values) if values else None
            row.append(", ".join(f"{v:.3f}" for v in values) or "-")
            row.append(medians[label][str(m)])
        rows.append(row)
    cpu: dict[str, float | None] = {}
    for label in runs:
        values = [r["cpu_ms_per_room_s"] for r in runs[label] if r["cpu_ms_per_room_s"]]
        cpu[label] = statistics.median(values) if values else None
    ratio = cpu["B"] / cpu["A"] if cpu["A"] and cpu["B"] else None

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} ms"

    command = "python benchmarks/ab.py " + " ".join(sys.argv[1:])
    markdown = "\n\n".join(
        [
            f"# A/B: {args.a} {' '.join(args.a_env)} (A) vs {args.b} {' '.join(args.b_env)}"
            " (B), interleaved",
            f"`{command}`",
            "CPU ratio to the echo floor at equal load (echo CPU per session / CPU per room; "
            "1.0 = a relayed room costs what a bare echo session costs):",
            md_table(["rooms", "A runs", "A median", "B runs", "B median"], rows),
            f"Server CPU per room-second (median of runs, loaded steps): A {ms(cpu['A'])}, "
            f"B {ms(cpu['B'])} (B/A {'-' if ratio is None else f'{ratio:.3f}'}).",
            "Latency (ms) and the two cores by room count (each run, then the median):",
            md_table(
                ["rooms", "figure", "A runs", "A median", "B runs", "B median"],
                step_rows(runs),
            ),
        ]
    )
    write_results(
        args.name,
        {
            "args": {**vars(args), "a": str(args.a), "b": str(args.b)},
            "runs": runs,
            "medians": medians,
            "cpu_ms_per_room_s": cpu,
        },
        markdown,
    )
    print(markdown)


if __name__ == "__main__":
    main()
