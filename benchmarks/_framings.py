"""The side-by-side report of active_rooms.py `--frame-ms 20,100`: targets, table, plot.

Each framing has its own sweep, its own echo floor at the same framing and its own
verdict (active_rooms.verdict); this module only lays them next to each other and
checks the targets of issue "frame economy":
- the demo's framing (the longest given): >= 100 rooms per core with first-audio p99
  within 1.5x of the first step's and server-added p99 < 20 ms;
- 20 ms frames: the capacity ratio to the same-framing echo floor >= 0.95 (CPU per
  echo session / CPU per room at equal load, the median over the matched steps);
- every framing, at its highest passing step: interrupt -> `audio_interrupted` p99
  < 10 ms and zero stale bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _common import md_table

ROOMS_TARGET = 100
FLOOR_RATIO_TARGET = 0.95
SILENCE_TARGET_MS = 10.0


def targets(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per target and framing: wanted, measured, met."""
    demo = max(run["frame_ms"] for run in runs)
    rows: list[dict[str, Any]] = []
    for run in runs:
        v, ms = run["verdict"], run["frame_ms"]
        if ms == demo:
            rooms = v["rooms_per_core_first_audio_within_1_5x"]
            rows.append({
                "frame_ms": ms, "target": "rooms/core, first-audio p99 <= 1.5x first step's,"
                " server-added p99 < 20 ms", "wanted": f">= {ROOMS_TARGET}",
                "measured": rooms, "met": rooms >= ROOMS_TARGET,
            })  # fmt: skip
        if ms == 20:
            ratio = v["cpu_ratio_at_equal_load_median"]
            rows.append({
                "frame_ms": ms, "target": "capacity ratio to the 20 ms echo floor (CPU per"
                " session / CPU per room at equal load, median)",
                "wanted": f">= {FLOOR_RATIO_TARGET}", "measured": ratio,
                "met": ratio is not None and ratio >= FLOOR_RATIO_TARGET,
            })  # fmt: skip
        silence = v["silence_p99_ms_at_top"]
        rows.append({
            "frame_ms": ms, "target": f"interrupt -> audio_interrupted p99 (client) at the"
            f" highest passing step ({v['highest_passing_step']} rooms)",
            "wanted": f"< {SILENCE_TARGET_MS:g} ms", "measured": silence,
            "met": silence is not None and silence < SILENCE_TARGET_MS,
        })  # fmt: skip
        stale = v["stale_bytes_at_top"]
        rows.append({
            "frame_ms": ms, "target": "stale bytes at that step", "wanted": "0",
            "measured": stale, "met": stale == 0,
        })  # fmt: skip
    return rows


def markdown(runs: list[dict[str, Any]], rows: list[dict[str, Any]], sections: list[str],
             png: str | None, command: str) -> str:  # fmt: skip
    side = md_table(
        ["figure"] + [f"{run['frame_ms']} ms frames" for run in runs],
        [
            [label] + [fmt(run) for run in runs]
            for label, fmt in (
                ("messages per room per second", lambda r: 1000 / r["frame_ms"]),
                ("first-audio p99 at the first step (ms)",
                 lambda r: r["verdict"]["first_audio_p99_ms_first_step"]),
                ("highest step: first audio <= 1.5x, added p99 < 20 ms",
                 lambda r: r["verdict"]["highest_passing_step"]),
                ("rooms/core, server-added p99 < 20 ms (server's histogram)",
                 lambda r: r["verdict"]["rooms_per_core_relay_p99_under_20ms"]),
                ("CPU-bound rooms/core (1 / CPU per room)",
                 lambda r: r["verdict"]["cpu_bound_rooms_per_core"]),
                ("CPU ms per room-second", lambda r: r["verdict"]["cpu_ms_per_room_s"]),
                ("echo floor sessions/core (same framing)",
                 lambda r: r["verdict"]["floor_sessions_per_core"]),
                ("CPU ratio to the floor at equal load, median",
                 lambda r: r["verdict"]["cpu_ratio_at_equal_load_median"]),
                ("  by M", lambda r: ", ".join(f"{v} (M={m})" for m, v in
                                               r["verdict"]["cpu_ratio_at_equal_load"].items())
                 or "-"),
                ("interrupt p99 at the highest passing step, client (ms)",
                 lambda r: r["verdict"]["silence_p99_ms_at_top"]),
                ("  same, in server (bucket bound, ms)",
                 lambda r: r["verdict"]["interrupt_p99_le_ms_at_top"]),
                ("  same, arrival at the load side's socket (kernel clock, ms)",
                 lambda r: r["verdict"].get("silence_socket_p99_ms_at_top")),
                ("stale bytes (whole sweep)", lambda r: r["verdict"]["stale_bytes_total"]),
            )
        ],
    )  # fmt: skip
    target_table = md_table(
        ["framing", "target", "wanted", "measured", "met"],
        [[f"{r['frame_ms']} ms", r["target"], r["wanted"], r["measured"],
          "yes" if r["met"] else "**no**"] for r in rows],
    )  # fmt: skip
    out = ["# Active rooms, two framings side by side", "", f"`{command}`", "",
           "Each framing: its own server run and its own Quart-Trio echo floor at the same"
           " framing, one after the other in one run.", "", target_table, "", side, ""]  # fmt: skip
    if png:
        out += [f"![{png}]({png})", ""]
    out += sections
    return "\n".join(out)


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15, 4.2))
    for run in runs:
        steps, label = run["steps"], f"{run['frame_ms']} ms"
        rooms = [s["rooms"] for s in steps]
        line = a1.plot(rooms, [s["relay_p99_le_ms"] for s in steps], "o-",
                       label=f"{label}: added p99 (server)")[0]  # fmt: skip
        a1.plot(rooms, [s["silence_p99_ms"] for s in steps], "s:", color=line.get_color(),
                label=f"{label}: interrupt p99 (client)")  # fmt: skip
        a2.plot(rooms, [s["server_cpu_util"] * 100 for s in steps], "o-",
                color=line.get_color(), label=f"{label}: rooms")  # fmt: skip
        floor = (run.get("floor") or {}).get("steps", [])
        a2.plot([s["sessions"] for s in floor], [s["server_cpu_util"] * 100 for s in floor],
                "x--", color=line.get_color(), label=f"{label}: echo floor")  # fmt: skip
        a3.plot(rooms, [s["turn_p99_ms"] for s in steps], "o-", color=line.get_color(),
                label=f"{label}: first audio p99")  # fmt: skip
        base = run["verdict"]["first_audio_p99_ms_first_step"]
        if base:
            a3.axhline(1.5 * base, color=line.get_color(), ls=":", lw=0.8)
    a1.axhline(20, color="red", ls=":", lw=0.8, label="20 ms")
    a1.axhline(10, color="grey", ls=":", lw=0.8, label="10 ms")
    a1.set_yscale("log")
    a1.set_ylabel("ms")
    a2.set_ylabel("server CPU, % of one core")
    a3.set_ylabel("first audio p99, ms (dotted: 1.5x first step)")
    a3.set_yscale("log")
    for ax in (a1, a2, a3):
        ax.set_xlabel("active rooms (echo sessions) on one core")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
