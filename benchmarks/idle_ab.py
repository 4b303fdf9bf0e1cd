"""Interleaved A/B of the memory an idle room holds, between two checkouts.

Runs `benchmarks/idle_rooms.py` of checkout A, then of checkout B, A, B, ... (`--runs`
each), each serving its own code, and compares the KB per idle room (server RSS growth
over the open rooms, divided by them) at each room count. Memory does not drift with
the machine's speed the way CPU does, but interleaving keeps the comparison honest
about anything else that changes between runs (the kernel's page cache, the store).

Writes results/<--name>.{json,md}. Example (A = the commit before a change, checked
out with `git worktree add /tmp/before <commit>`):
    python benchmarks/idle_ab.py --a /tmp/before --b . --runs 2 --name idle_ab \\
        -- --rooms 5000
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
    add_ab_arguments(p, runs=2, name="idle_ab", script="idle_rooms.py")
    return p


def one_run(checkout: Path, label: str, bench_args: list[str]) -> list[dict[str, Any]]:
    """Run checkout's idle_rooms.py; its steps, read back."""
    name = f"idle_ab_scratch_{label}"
    return run_in_checkout(checkout, "idle_rooms.py", bench_args, name, {})["steps"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    bench_args = [a for a in args.bench_args if a != "--"]
    runs: dict[str, list[list[dict[str, Any]]]] = {"A": [], "B": []}
    for i in range(args.runs):
        for label, checkout in (("A", args.a), ("B", args.b)):
            runs[label].append(one_run(checkout.resolve(), f"{label}{i}", bench_args))
    rooms = [s["sessions"] for s in runs["A"][0]]
    rows, summary = [], []
    for index, n in enumerate(rooms):
        kb = {side: [r[index]["kb_per_session"] for r in runs[side]] for side in runs}
        a, b = statistics.median(kb["A"]), statistics.median(kb["B"])
        summary.append({"rooms": n, "kb_a": kb["A"], "kb_b": kb["B"], "median_a": a,
                        "median_b": b, "ratio_b_a": b / a})  # fmt: skip
        rows.append([n, ", ".join(f"{v:.1f}" for v in kb["A"]),
                     ", ".join(f"{v:.1f}" for v in kb["B"]), a, b, b / a])  # fmt: skip
    md = "\n".join(
        [
            f"# {args.name}: KB per idle room, A vs B",
            "",
            f"`python benchmarks/idle_ab.py {' '.join(argv)}`",
            "",
            f"A = `{args.a}`, B = `{args.b}`; {args.runs} runs a side, interleaved.",
            "",
            md_table(["rooms", "A runs KB", "B runs KB", "A median", "B median", "B/A"], rows),
        ]
    )
    data = {"args": {**vars(args), "a": str(args.a), "b": str(args.b)}, "summary": summary,
            "runs": runs}  # fmt: skip
    paths = write_results(args.name, data, md)
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
