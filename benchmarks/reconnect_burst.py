"""Reconnect burst: N rooms that were open a moment ago all come back at once.

That is what a drained or restarted instance, or a network blip, does to the instance
that takes its rooms. Does every room resume its conversation (docs/store.md,
"Resume"), and how long do the handshakes take?

Per run and per checkout (`--checkout`, repeatable; runs interleave the checkouts):
1. A store of its own is filled (through the store's backend) with an earlier
   connection of each of the N rooms: two items, ended 10 s ago (inside the resume
   window). SQLite in a fresh data directory by default; with `--postgres`, a fresh
   database on a PostgreSQL server this script starts from Debian's package on
   127.0.0.1 (the fleet's case: a drained instance's rooms come back to another one
   that shares the database).
2. `hypercorn -k trio voiceagent:app` of that checkout starts on it (pinned to
   `--server-cpus`), and waits until it is ready.
3. N clients (this process, pinned to `--client-cpus`) connect to the same room ids,
   at most `--concurrency` handshakes at a time, and stay open until the burst is over.
   A room resumed when its `history_added` events follow `agent_start` within
   `--history-wait-s`.
Reported: rooms resumed, handshake latency (connect -> `session_started`, p50 / p99),
the burst's length, and the `resume_failed` lines of the server's log.

Writes results/<name>.{json,md}. Example (A = the commit before a change, checked out
with `git worktree add /tmp/before <commit>`):
    python benchmarks/reconnect_burst.py --rooms 5000 --checkout /tmp/before --checkout .
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.store
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    LOGS,
    REPO,
    cpu_list,
    free_port,
    md_table,
    pct,
    pin,
    raise_nofile,
    server_process,
    wait_app_ready,
    wait_port,
    write_results,
)
from _wsclient import OP_TEXT, LeanWebSocket

from tests.store.postgres_server import PostgresServer, postgres_bin, running_postgres
from voiceagent.store.backend import SqlBackend
from voiceagent.store.records import ConnectionClosed, ConnectionOpened, ItemFinal
from voiceagent.store.sqlite import SqliteBackend


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL server on 127.0.0.1, stopped and removed at the end."""
    bindir = postgres_bin()
    if bindir is None:
        raise SystemExit("--postgres needs PostgreSQL (apt-get install postgresql)")
    with running_postgres(bindir) as server:
        yield server


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rooms", type=int, default=2000, help="rooms that come back")
    p.add_argument("--concurrency", type=int, default=500, help="handshakes at a time")
    p.add_argument("--checkout", type=Path, action="append", default=[],
                   help="serve this checkout (repeat to compare; default: this one)")  # fmt: skip
    p.add_argument("--runs", type=int, default=1, help="runs per checkout, interleaved")
    p.add_argument("--history-wait-s", type=float, default=5.0)
    p.add_argument("--timeout-s", type=float, default=120.0, help="bound of the whole burst")
    p.add_argument("--server-cpus", type=cpu_list, default=[0])
    p.add_argument("--client-cpus", type=cpu_list, default=[1])
    p.add_argument("--postgres", action="store_true", help="store on PostgreSQL, not SQLite")
    p.add_argument("--name", default="reconnect_burst", help="results/<name>.{json,md}")
    return p


EARLIER = [
    ("user", "What is the baggage allowance?"),
    ("assistant", "One carry-on and one checked bag are included."),
]


def fill_store(backend: SqlBackend, room_ids: list[str]) -> None:
    """Each room: one earlier connection with a question and an answer, ended 10 s ago."""
    backend.migrate()
    ended = time.time() - 10
    batch: list[Any] = []
    for room in room_ids:
        conn = uuid.uuid4().hex
        batch.append(ConnectionOpened(room, conn, ended - 60, None, "triage", "offline", "local"))
        for seq, (role, text) in enumerate(EARLIER):
            batch.append(ItemFinal(room, conn, seq, ended - 30 + seq, f"item_{seq}", role,
                                   "message", text, "completed"))  # fmt: skip
        batch.append(ConnectionClosed(room, conn, ended, "client_left", 1000, "triage", {}))
        if len(batch) >= 4000:
            backend.write(batch)
            batch = []
    if batch:
        backend.write(batch)
    backend.close()


class Tally:
    """What the burst's rooms report; `all_in` is set once every room has either its
    `session_started` or a failure before it."""

    def __init__(self, rooms: int) -> None:
        self.handshake_s: list[float] = []
        self.resumed = 0
        self.errors: Counter[str] = Counter()
        self.burst_s: float | None = None
        self.all_in = trio.Event()
        self._pending = rooms

    def started(self, seconds: float) -> None:
        self.handshake_s.append(seconds)
        self._arrived()

    def failed(self, error: BaseException, *, before_start: bool) -> None:
        self.errors[type(error).__name__] += 1
        if before_start:
            self._arrived()

    def _arrived(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self.all_in.set()


async def come_back(
    port: int, room: str, gate: trio.Semaphore, over: trio.Event, args: argparse.Namespace,
    tally: Tally,
) -> None:  # fmt: skip
    """One room reconnects; records its handshake time and whether its history came."""
    async with gate:
        started = time.perf_counter()
        try:
            ws = await LeanWebSocket.connect("127.0.0.1", port, f"/ws/{room}")
        except Exception as exc:  # refused or reset under the burst: counted, not fatal
            tally.failed(exc, before_start=True)
            return
    kinds: list[str] = []
    try:
        while "agent_start" not in kinds:
            opcode, payload = await ws.receive()
            if opcode == OP_TEXT:
                kinds.append(json.loads(payload)["type"])
                if kinds[-1] == "session_started":
                    tally.started(time.perf_counter() - started)
        with trio.move_on_after(args.history_wait_s):
            while True:
                opcode, payload = await ws.receive()
                if opcode == OP_TEXT and json.loads(payload)["type"] == "history_added":
                    tally.resumed += 1
                    break
        await over.wait()  # a real burst's rooms stay open
    except Exception as exc:
        tally.failed(exc, before_start="session_started" not in kinds)
    finally:
        with trio.CancelScope(shield=True):
            await ws.aclose()


async def burst(port: int, rooms: list[str], args: argparse.Namespace) -> Tally:
    tally = Tally(len(rooms))
    gate = trio.Semaphore(args.concurrency)
    over = trio.Event()
    started = time.perf_counter()
    with trio.move_on_after(args.timeout_s):
        async with trio.open_nursery() as nursery:
            for room in rooms:
                nursery.start_soon(come_back, port, room, gate, over, args, tally)
            await tally.all_in.wait()
            tally.burst_s = time.perf_counter() - started  # every room has its start
            await trio.sleep(args.history_wait_s)  # the last histories' time to arrive
            over.set()
    return tally


def one_run(
    checkout: Path, label: str, args: argparse.Namespace, postgres: PostgresServer | None
) -> dict[str, Any]:
    token = uuid.uuid4().hex[:8]
    rooms = [f"rb-{token}-{i}" for i in range(args.rooms)]
    with tempfile.TemporaryDirectory(prefix="voiceagent-burst-") as data_dir:
        env = {"VOICEAGENT_DATA_DIR": data_dir}
        if postgres is None:
            backend: SqlBackend = SqliteBackend.in_dir(data_dir)
        else:
            env["VOICEAGENT_DATABASE_URL"] = postgres.create_database(f"burst_{token}")
            from voiceagent.store.postgres import PostgresBackend  # psycopg: a dev extra

            backend = PostgresBackend(env["VOICEAGENT_DATABASE_URL"])
        fill_store(backend, rooms)
        port = free_port()
        argv = [sys.executable, "-m", "hypercorn", "-k", "trio", "--backlog", "4096",
                "-b", f"127.0.0.1:{port}", "voiceagent:app"]  # fmt: skip
        name = f"{args.name}_{label}"
        with server_process(argv, name=name, cpus=args.server_cpus, cwd=checkout,
                            env=env) as proc:  # fmt: skip
            wait_port(port, proc)
            wait_app_ready(port)
            tally = trio.run(burst, port, rooms, args)
    log = (LOGS / f"{name}.log").read_text(errors="replace")
    handshakes = tally.handshake_s
    return {
        "checkout": str(checkout),
        "rooms": args.rooms,
        "connected": len(handshakes),
        "resumed": tally.resumed,
        "resume_failed_logged": log.count("resume_failed"),
        "handshake_p50_ms": pct(handshakes, 50) * 1000 if handshakes else None,
        "handshake_p99_ms": pct(handshakes, 99) * 1000 if handshakes else None,
        "burst_s": tally.burst_s,
        "errors": dict(tally.errors),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    raise_nofile()
    pin(args.client_cpus)
    checkouts = [c.resolve() for c in args.checkout] or [REPO]
    runs: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        postgres = stack.enter_context(postgres_server()) if args.postgres else None
        for n in range(args.runs):
            for i, checkout in enumerate(checkouts):
                label = f"{'AB'[i] if len(checkouts) == 2 else i}{n}"
                run = one_run(checkout, label, args, postgres)
                print(run, flush=True)
                runs.append(run)
    rows = []
    for checkout in checkouts:
        mine = [r for r in runs if r["checkout"] == str(checkout)]
        rows.append([
            str(checkout),
            ", ".join(f"{r['resumed']}/{r['rooms']}" for r in mine),
            ", ".join(str(r["resume_failed_logged"]) for r in mine),
            statistics.median(r["handshake_p50_ms"] or 0 for r in mine),
            statistics.median(r["handshake_p99_ms"] or 0 for r in mine),
            statistics.median(r["burst_s"] or 0 for r in mine),
        ])  # fmt: skip
    headers = ["server", "resumed (each run)", "resume_failed logged",
               "handshake p50 ms (median)", "handshake p99 ms (median)",
               "burst s (median)"]  # fmt: skip
    markdown = (
        "# Reconnect burst\n\n"
        f"`python benchmarks/reconnect_burst.py {' '.join(argv)}`\n\n"
        f"{args.rooms} rooms with an earlier conversation come back at once, "
        f"{args.concurrency} handshakes at a time, store on "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}; runs interleaved.\n\n"
        + md_table(headers, rows)
    )
    write_results(args.name, {"args": {k: str(v) for k, v in vars(args).items()},
                              "runs": runs}, markdown)  # fmt: skip
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
