"""What voiceagent.metrics costs: per-frame tallies vs prometheus counters, and /metrics.

Measures, in this process (one core, no server):
- ns per call of a plain int add, `Counter.inc()`, `labels(...).inc()`,
  `Histogram.observe()`, and `TrafficTally.frame_in()` (the per-frame path);
- the per-echoed-frame cost of counting frames and bytes both ways with counters
  (4 x inc) vs with a tally, as a share of `--frame-us` (the measured CPU of one echoed
  frame on this stack, from echo_floor);
- `render()` time and body size after `--sessions` tallies have been flushed and
  closed (label sets do not grow with sessions, so neither does the scrape).

Writes results/metrics_overhead.{json,md}. Takes a few seconds.
Example: python benchmarks/metrics_overhead.py --frame-us 150
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import md_table, write_results
from prometheus_client import CollectorRegistry, Counter, Histogram

from voiceagent import metrics


def ns_per_call(stmt, number: int) -> float:
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e9


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200_000, help="calls per timing")
    p.add_argument("--frame-us", type=float, default=150.0,
                   help="CPU us of one echoed frame to compare against")  # fmt: skip
    p.add_argument("--sessions", type=int, default=10_000, help="tallies before the scrape")
    args = p.parse_args(argv)

    registry = CollectorRegistry()
    counter = Counter("bench_c", "c", registry=registry)
    labelled = Counter("bench_l", "l", ["direction"], registry=registry)
    child = labelled.labels("in")
    histogram = Histogram("bench_h", "h", registry=registry)
    tally = metrics.TrafficTally()

    class Plain:
        __slots__ = ("n",)

        def __init__(self) -> None:
            self.n = 0

    plain = Plain()

    def plain_add() -> None:
        plain.n += 1

    n = args.calls
    calls = {
        "plain attribute add": ns_per_call(plain_add, n),
        "Counter.inc()": ns_per_call(counter.inc, n),
        "labelled child .inc()": ns_per_call(child.inc, n),
        "Counter.labels('in').inc()": ns_per_call(lambda: labelled.labels("in").inc(), n),
        "Histogram.observe()": ns_per_call(lambda: histogram.observe(0.01), n),
        "TrafficTally.frame_in(960)": ns_per_call(lambda: tally.frame_in(960), n),
    }
    tally.close()
    counters_per_frame_ns = 4 * calls["labelled child .inc()"]
    tally_per_frame_ns = 2 * calls["TrafficTally.frame_in(960)"]
    per_frame = {
        "counters_ns": counters_per_frame_ns,
        "tally_ns": tally_per_frame_ns,
        "counters_share_of_frame": counters_per_frame_ns / (args.frame_us * 1000),
        "tally_share_of_frame": tally_per_frame_ns / (args.frame_us * 1000),
    }
    for _ in range(args.sessions):
        t = metrics.TrafficTally({"outbox": lambda: 3})
        for _ in range(3):
            t.frame_in(960)
            t.frame_out(4096)
        t.close()
    render_s = min(timeit.repeat(metrics.render, number=10, repeat=3)) / 10
    body, _ = metrics.render()
    scrape = {"render_ms": render_s * 1000, "body_bytes": len(body)}

    md = "\n".join(
        [
            "# Metrics overhead",
            "",
            f"`python benchmarks/metrics_overhead.py {' '.join(argv)}`".replace(" `", "`"),
            "",
            md_table(["operation", "ns per call"], [[k, v] for k, v in calls.items()]),
            "",
            f"Per echoed frame (frames + bytes, in + out), against {args.frame_us:.0f} us/frame:",
            "",
            md_table(
                ["way", "ns per frame", "share of a frame"],
                [
                    [
                        "4 counter incs",
                        counters_per_frame_ns,
                        f"{per_frame['counters_share_of_frame']:.2%}",
                    ],
                    [
                        "TrafficTally (flush every 50 frames)",
                        tally_per_frame_ns,
                        f"{per_frame['tally_share_of_frame']:.2%}",
                    ],
                ],
            ),
            "",
            f"/metrics render after {args.sessions} sessions: {scrape['render_ms']:.2f} ms, "
            f"{scrape['body_bytes']} bytes.",
        ]
    )
    data = {"args": vars(args), "calls_ns": calls, "per_frame": per_frame, "scrape": scrape}
    paths = write_results("metrics_overhead", data, md)
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
