"""Idle rooms: server memory per open, idle session of `hypercorn -k trio voiceagent:app`.

For each N in `--rooms` a fresh server process is started (pinned to `--server-cpus`,
fd limit raised); once /healthz says its engines are loaded, its baseline RSS is read
after a warm-up connection, then N sessions are opened from `--client-procs` separate
load processes (pinned to `--client-cpus`).
The sessions send nothing (the model and voice connect lazily, so none is opened);
after `--settle` seconds the RSS is read again. KB per room = (RSS - baseline) / N.
A /metrics scrape checks that the server counts the rooms it holds, and the server's
`voiceagent_gc_pause_seconds` histogram gives the longest generation-2 garbage
collector pass while it held up to N rooms (such a pass walks every tracked object, so
it grows with the rooms, and every session waits for it).

Writes results/idle_rooms.{json,md} and results/idle_rooms.png.
Example: python benchmarks/idle_rooms.py --rooms 1000,5000,10000
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.request
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
from _sweep import measure_idle_rss

TARGET_KB = 60.0


def int_list(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError("give positive integers separated by commas")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int_list, default=int_list("1000,5000,10000"))
    p.add_argument("--app", default="voiceagent:app", help="hypercorn application path")
    p.add_argument("--settle", type=float, default=3.0, help="seconds before reading RSS")
    p.add_argument("--server-cpus", type=cpu_list, default=[0])
    p.add_argument("--client-cpus", type=cpu_list, default=[1])
    p.add_argument("--client-procs", type=int, default=4)
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--name", default="idle_rooms", help="results/<name>.{json,md}")
    return p


def scrape_sessions_open(port: int) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        body = response.read().decode()
    for family in text_string_to_metric_families(body):
        if family.name == "voiceagent_sessions_open":
            return family.samples[0].value
    return None


def scrape_gc_gen2(port: int) -> tuple[float, float | None]:
    """(generation-2 passes so far, upper bound of the longest one's bucket in s)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
        body = response.read().decode()
    buckets: list[tuple[float, float]] = []
    for family in text_string_to_metric_families(body):
        if family.name != "voiceagent_gc_pause_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("generation") == "2":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    if not buckets or not buckets[-1][1]:
        return 0.0, None
    total = buckets[-1][1]
    longest = next(le for le, count in buckets if count >= total)
    return total, longest


def run_with_scrape(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Like run_one, but scrapes /metrics while the rooms are open (in the load's shadow)."""
    import threading

    seen: dict[str, Any] = {}
    result = {}

    def scraper(port_holder: list[int]) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and "done" not in seen:
            try:
                value = scrape_sessions_open(port_holder[0])
                if value is not None:
                    seen["max_open"] = max(seen.get("max_open", 0), value)
            except OSError as exc:
                seen["scrape_error"] = repr(exc)
            time.sleep(1.0)

    port = free_port()
    argv = [sys.executable, "-m", "hypercorn", "-k", "trio", "--backlog", "4096",
            "-b", f"127.0.0.1:{port}", args.app]  # fmt: skip
    with server_process(argv, name=f"idle_rooms_{n}", cpus=args.server_cpus) as proc:
        wait_port(port, proc)
        wait_app_ready(port)
        measure_idle_rss(proc.pid, port, 1, path="/ws/", procs=1, cpus=args.client_cpus,
                         settle_s=0.5, id_prefix="warm")  # fmt: skip
        time.sleep(0.5)
        baseline = rss_bytes(proc.pid)
        thread = threading.Thread(target=scraper, args=([port],), daemon=True)
        thread.start()
        try:
            result = measure_idle_rss(proc.pid, port, n, path="/ws/", procs=args.client_procs,
                                      cpus=args.client_cpus, settle_s=args.settle)  # fmt: skip
        finally:
            seen["done"] = True
            thread.join(5)
        result["gc_gen2_passes"], result["gc_gen2_longest_le_s"] = scrape_gc_gen2(port)
    result["baseline_mb"] = baseline / 1e6
    if result["connected"]:
        result["kb_per_session"] = (
            (result["rss_after_mb"] * 1e6 - baseline) / result["connected"] / 1e3
        )
    result["metrics_sessions_open_max"] = seen.get("max_open")
    result["metrics_scrape_error"] = seen.get("scrape_error")
    return result


def plot(steps: list[dict[str, Any]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ns = [s["connected"] for s in steps]
    ax.plot(ns, [s["kb_per_session"] for s in steps], "o-", label="voiceagent idle room")
    ax.axhline(TARGET_KB, color="red", ls=":", label=f"target {TARGET_KB:.0f} KB")
    ax.set_xscale("log")
    ax.set_xlabel("open idle rooms")
    ax.set_ylabel("server RSS per room (KB)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "idle_rooms.png", dpi=110)
    plt.close(fig)
    return ["idle_rooms.png"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    raise_nofile()
    steps = []
    for n in args.rooms:
        step = run_with_scrape(n, args)
        steps.append(step)
        print(
            f"N={n}: connected={step['connected']} failed={step['failed']} "
            f"baseline={step['baseline_mb']:.1f} MB after={step['rss_after_mb']:.1f} MB "
            f"-> {step['kb_per_session']} KB/room (connect {step['connect_s']} s, "
            f"/metrics open max {step['metrics_sessions_open_max']})",
            flush=True,
        )
    pngs = [] if args.no_plots else plot([s for s in steps if s["kb_per_session"]])
    rows = [[s["sessions"], s["connected"], s["failed"], s["baseline_mb"], s["rss_after_mb"],
             s["kb_per_session"], s["connect_s"], s["metrics_sessions_open_max"],
             s["gc_gen2_passes"], s["gc_gen2_longest_le_s"]]
            for s in steps]  # fmt: skip
    md = "\n".join(
        [
            "# Idle rooms",
            "",
            f"`python benchmarks/idle_rooms.py {' '.join(argv)}`".replace(" `", "`"),
            "",
            f"Target: <= {TARGET_KB:.0f} KB per idle room at 10,000 rooms.",
            "",
            md_table(
                [
                    "rooms",
                    "connected",
                    "failed",
                    "baseline MB",
                    "RSS MB",
                    "KB/room",
                    "connect s",
                    "/metrics sessions_open",
                    "gen-2 GC passes",
                    "longest pass <= s",
                ],
                rows,
            ),
            "",
            *[f"![{p}]({p})" for p in pngs],
        ]
    )
    paths = write_results(args.name, {"args": vars(args), "steps": steps}, md)
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
