"""Load-generator processes driven by a benchmark script over a multiprocessing pipe.

A load process connects its share of sessions, reports `ready`, then waits for the
script's commands. Timing windows are sent as wall-clock times (`time.time()`, one host
clock for every process) and converted to Trio's clock locally.

Commands (script -> worker):  ("window", t0_wall, t1_wall)  record between t0 and t1,
                                                             then stop and report;
                              ("stop",)                     close everything and report.
Replies (worker -> script):   ("ready", {"ok": n, "failed": n, "errors": [...]}),
                              ("result", {...}).

Modes:
- "idle": connect, read whatever the server sends (discarding it), send nothing;
- "echo": every session sends a constant frame of `frame_bytes` every `period_s` and
  waits for its echo; the latency of a frame is echo arrival - its scheduled send time,
  so a late client or server both show up;
- "rooms": a simulated browser per room (see `_rooms.py`).

Every loop is bounded: connect has a timeout, the run ends at the window end (plus a
grace period) or on "stop", and the worker gives up if the script goes away.
"""

from __future__ import annotations

import random
import secrets
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import trio
from _common import pin, raise_nofile
from _wsclient import OP_BINARY, LeanWebSocket, WsClosed, WsProtocolError, client_frame

CONNECT_TIMEOUT_S = 30
GRACE_S = 2.0


class Recorder:
    """Collects latencies (seconds) of events that happen inside the window."""

    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("-inf")
        self.latencies: list[float] = []
        self.frames_sent = 0
        self.frames_received = 0
        self.late_resyncs = 0
        self.errors: Counter[str] = Counter()

    def in_window(self, t: float) -> bool:
        return self.start <= t < self.end


async def _connect_all(
    spec: dict[str, Any], nursery: trio.Nursery, session, rec: Recorder
) -> tuple[int, int]:
    """Open every session (bounded concurrency) and start `session(ws, index)` for each."""
    limiter = trio.CapacityLimiter(spec.get("connect_concurrency", 64))
    ok = failed = 0

    async def open_one(index: int, session_id: str) -> None:
        nonlocal ok, failed
        async with limiter:
            try:
                with trio.fail_after(CONNECT_TIMEOUT_S):
                    ws = await LeanWebSocket.connect(
                        spec["host"], spec["port"], f"{spec['path']}{session_id}"
                    )
            except (OSError, trio.TooSlowError, WsProtocolError, WsClosed) as exc:
                failed += 1
                rec.errors[f"connect: {type(exc).__name__}: {exc}"[:120]] += 1
                return
        ok += 1
        nursery.start_soon(session, ws, index)

    async with trio.open_nursery() as connectors:
        for index, session_id in enumerate(spec["sessions"]):
            connectors.start_soon(open_one, index, session_id)
    return ok, failed


async def _drain(ws: LeanWebSocket, rec: Recorder) -> None:
    try:
        while True:
            await ws.receive()
    except (WsClosed, WsProtocolError, trio.BrokenResourceError) as exc:
        rec.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1


def _make_echo_session(spec: dict[str, Any], rec: Recorder, sockets: list[LeanWebSocket]):
    frame = client_frame(OP_BINARY, bytes(spec.get("frame_bytes", 960)))
    period = spec.get("period_s", 0.02)

    async def session(ws: LeanWebSocket, index: int) -> None:
        sockets.append(ws)
        now = trio.current_time
        t = now() + random.random() * period  # spread sessions over the frame period
        try:
            while True:
                await trio.sleep_until(t)
                await ws.send_frame(frame)
                rec.frames_sent += 1
                await ws.receive()
                arrived = now()
                rec.frames_received += 1
                if rec.in_window(t):
                    rec.latencies.append(arrived - t)
                t += period
                if arrived > t + period:  # more than a frame behind: real time is lost
                    rec.late_resyncs += 1
                    t = arrived
        except (WsClosed, WsProtocolError, trio.BrokenResourceError, OSError) as exc:
            rec.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1

    return session


def _make_idle_session(rec: Recorder, sockets: list[LeanWebSocket]):
    async def session(ws: LeanWebSocket, index: int) -> None:
        sockets.append(ws)
        await _drain(ws, rec)

    return session


async def _commands(conn: Connection) -> Any:
    return await trio.to_thread.run_sync(conn.recv, abandon_on_cancel=True)


async def run_worker(conn: Connection, spec: dict[str, Any], make_session) -> None:
    """Connect, report ready, obey one command, report the result. See module doc."""
    rec = Recorder()
    sockets: list[LeanWebSocket] = []
    session = make_session(spec, rec, sockets)
    result: dict[str, Any] = {}
    async with trio.open_nursery() as outer:
        sessions_scope = trio.CancelScope()

        async def hold_sessions(task_status=trio.TASK_STATUS_IGNORED) -> None:
            with sessions_scope:
                async with trio.open_nursery() as nursery:
                    ok, failed = await _connect_all(spec, nursery, session, rec)
                    task_status.started((ok, failed))
                    await trio.sleep_forever()

        ok, failed = await outer.start(hold_sessions)
        conn.send(("ready", {"ok": ok, "failed": failed, "errors": dict(rec.errors)}))
        command = await _commands(conn)
        if command[0] == "window":
            offset = time.time() - trio.current_time()
            rec.start, rec.end = command[1] - offset, command[2] - offset
            await trio.sleep_until(rec.end + spec.get("grace_s", GRACE_S))
        sessions_scope.cancel()
        extra = getattr(session, "summary", None)
        result = {
            "latencies_s": np.asarray(rec.latencies, dtype=np.float64),
            "frames_sent": rec.frames_sent,
            "frames_received": rec.frames_received,
            "late_resyncs": rec.late_resyncs,
            "errors": dict(rec.errors),
            **(extra() if extra else {}),
        }
        async with trio.open_nursery() as closers:
            for ws in sockets:
                closers.start_soon(ws.aclose)
    conn.send(("result", result))


def worker_main(conn: Connection, spec: dict[str, Any]) -> None:
    """Entry point of a load process (multiprocessing target)."""
    raise_nofile()
    pin(spec.get("cpus"))
    mode = spec["mode"]
    if mode == "echo":
        factory = _make_echo_session
    elif mode == "idle":

        def factory(spec, rec, sockets):
            return _make_idle_session(rec, sockets)
    else:
        import _rooms

        factory = _rooms.make_room_session
    try:
        trio.run(run_worker, conn, spec, factory)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        conn.close()


class Fleet:
    """The script's side: `procs` load processes sharing `n_sessions` sessions.

    Use as a context manager; processes still alive on exit are terminated.
    """

    def __init__(
        self,
        spec: dict[str, Any],
        n_sessions: int,
        *,
        procs: int,
        cpus: list[int] | None,
        id_prefix: str,
    ) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        # Room ids new to the server: a room id seen within VOICEAGENT_RESUME_WINDOW_S
        # resumes that conversation, so an earlier run's rooms (same prefix, same
        # numbers) would start every room with their growing history.
        token = secrets.token_hex(3)
        ids = [f"{id_prefix}{token}_{i}" for i in range(n_sessions)]
        procs = max(1, min(procs, n_sessions or 1))
        self._window_end = 0.0
        self._pipes: list[Connection] = []
        self._procs = []
        for p in range(procs):
            parent, child = ctx.Pipe()
            worker_spec = {**spec, "sessions": ids[p::procs], "cpus": cpus}
            proc = ctx.Process(target=worker_main, args=(child, worker_spec), daemon=True)
            proc.start()
            child.close()
            self._pipes.append(parent)
            self._procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

    def _recv_all(self, kind: str, timeout: float) -> list[dict[str, Any]]:
        out = []
        deadline = time.monotonic() + timeout
        for pipe in self._pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"a load process sent no {kind!r} within {timeout} s")
            got, payload = pipe.recv()
            if got != kind:
                raise RuntimeError(f"expected {kind!r} from a load process, got {got!r}")
            out.append(payload)
        return out

    def wait_ready(self, timeout: float = 120) -> dict[str, Any]:
        replies = self._recv_all("ready", timeout)
        errors: Counter[str] = Counter()
        for r in replies:
            errors.update(r["errors"])
        return {
            "ok": sum(r["ok"] for r in replies),
            "failed": sum(r["failed"] for r in replies),
            "errors": dict(errors),
        }

    def send_window(self, t0: float, t1: float) -> None:
        """Tell every load process to record between wall times t0 and t1, then stop."""
        self._window_end = t1
        for pipe in self._pipes:
            pipe.send(("window", t0, t1))

    def collect(self) -> list[dict[str, Any]]:
        """The results of the window sent with `send_window` (blocks until it ends)."""
        return self._recv_all("result", max(0.0, self._window_end - time.time()) + GRACE_S + 30)

    def stop(self) -> list[dict[str, Any]]:
        for pipe in self._pipes:
            pipe.send(("stop",))
        return self._recv_all("result", 60)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for pipe in self._pipes:
            pipe.close()


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum counters and concatenate latency arrays of several load processes."""
    merged: dict[str, Any] = {}
    errors: Counter[str] = Counter()
    for r in results:
        for key, value in r.items():
            if key == "errors":
                errors.update(value)
            elif isinstance(value, dict):
                merged.setdefault(key, Counter()).update(value)
            elif isinstance(value, np.ndarray):
                merged[key] = np.concatenate([merged[key], value]) if key in merged else value
            elif isinstance(value, int | float):
                merged[key] = merged.get(key, 0) + value
    merged["errors"] = dict(errors)
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in merged.items()}
