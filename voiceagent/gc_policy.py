"""When the cyclic garbage collector runs, so that no pass walks every open room.

CPython's full (generation 2) pass walks every tracked object while the event loop
waits: ~290 objects per idle room, measured 0.84-0.90 s at 5,000 rooms and over 2.5 s
at 10,000 (benchmarks/results/idle_rooms.md, before this policy): a stall of every
room in the process. Objects in the *permanent* generation (`gc.freeze()`) are never
walked; reference counting still frees them the moment they are unreferenced.

Rules (docs/memory.md):
1. Every `freeze_interval_s` (VOICEAGENT_GC_FREEZE_INTERVAL_S, 3 s) a *tick*: a full
   collection, which walks only what is not frozen (what was made since the last tick:
   the rooms opened in one interval, not all of them), then `gc.freeze()`. A cycle that
   becomes garbage within one interval of its birth is freed by that collection. With
   active rooms a tick stops every room for a few milliseconds whatever the interval
   (rule 4), so the interval is how often that happens: 3 s, not 1, took the ticks at
   100 active rooms from 1.0 to 0.4-0.5 a second and their pauses from 5.5 to 3.6 ms a
   second (benchmarks/results/gc_freeze_interval_ab.md).
2. That is safe because a closed room leaves no reference cycle (tests/session/
   test_cyclic_garbage.py checks every way a room ends): a room's frozen objects are
   freed by reference counting when it closes. An object that becomes cyclic garbage
   after it was frozen would stay until a *sweep*.
3. A sweep (`gc.unfreeze()`, a full collection, `gc.freeze()`) walks everything, so it
   runs only at a quiet moment: at most `sweep_max_rooms` rooms open
   (VOICEAGENT_GC_SWEEP_MAX_ROOMS, 0) and `sweep_interval_s` since the last one
   (VOICEAGENT_GC_SWEEP_INTERVAL_S, 600 s). What it collects is what leaked into the
   frozen generation; it is logged (`gc_sweep`) and counted in
   `voiceagent_gc_policy_collected_total{pass="sweep"}`: it should stay 0.
4. A tick's pause is measured; one longer than `TICK_BUDGET_S` (10 ms) shrinks the
   interval to the next tick in proportion (interval x budget / pause, down to
   `MIN_INTERVAL_S`, 0.1 s), one shorter than half of it doubles the interval back (up
   to `freeze_interval_s`): a tick walks what was made since the last one, so while
   rooms open fast (measured: 10,000 idle rooms opened at ~350 a second) ticks come
   sooner and stay short. Half, because a pause that grew in step with the interval
   would still be within budget after doubling; with a quarter, the interval never
   came back once the rooms had opened: with 100 active rooms a tick walks the waiting
   state of the tasks that ran since the last one, whatever the interval (median
   4.3 ms a tick every 0.28 s, 5.4 ms every 1 s), so ticks stayed nearly four times as
   frequent.
5. CPython's own automatic passes stay on (rule 6 makes the young ones rare): they
   walk only unfrozen objects. `freeze_interval_s = 0` turns this policy off (CPython's
   defaults only).
6. While the policy runs, generation 0's threshold is `young_threshold`
   (VOICEAGENT_GC_YOUNG_THRESHOLD, 100,000; 0 keeps CPython's 700). CPython counts
   allocations minus deallocations, so with active rooms its young passes at 700 came
   5-6 times a second at 100 rooms, and each walked every young object still alive,
   mostly the coroutine chains of tasks that just went back to waiting (7,000-10,000
   objects, ~3 ms). The ticks do that work once an interval: at 100 active rooms the
   collector's pauses went 31 -> 8 ms per second and server CPU per room-second
   x0.92 (benchmarks/results/gc_young_off_ab.md). The threshold stays a safety valve
   for a burst the next rule has not seen yet.
7. A tick also comes early, whatever the interval, once `gc.get_count()[0]` (tracked
   objects made minus freed since the last collection: with the young passes off, about
   what the tick will walk when rooms are being opened) reaches `TICK_OBJECTS`; it is
   read every `CHECK_S` (0.1 s). So when rooms start opening fast the first tick walks
   a tenth of a second of them, not a whole interval's: measured with 10,000 idle rooms
   opening at ~350 a second, that first tick took 72-146 ms before this rule. (With
   CPython's young passes on, each of them restarts the count: this rule then rarely
   fires.)

Every pass is observed by the GC pause histogram (metrics/monitors.py). The policy runs
as one task in the app's background nursery (app.py); cancellation ends it between
ticks (a tick or a sweep is synchronous and never cut in half). A failing collector
call is a bug in the interpreter, not a reason to stop serving: it propagates.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from voiceagent.logs import log_event
from voiceagent.metrics.series import GC_POLICY_COLLECTED

log = logging.getLogger("voiceagent.gc_policy")

TICK_BUDGET_S = 0.010  # rule 4: a fifth of the 50 ms pause target
MIN_INTERVAL_S = 0.1
CHECK_S = 0.1  # rule 7
TICK_OBJECTS = 10_000  # rule 7: ~1 us an object, so about the tick budget


@dataclass(frozen=True, slots=True)
class GcSettings:
    freeze_interval_s: float = 3.0  # rule 1; 0 = policy off
    sweep_interval_s: float = 600.0  # rule 3
    sweep_max_rooms: int = 0  # rule 3
    young_threshold: int = 100_000  # rule 6; 0 = CPython's own


class Collector(Protocol):
    """The interpreter's collector, as the policy uses it (a fake in unit tests)."""

    def collect(self) -> int: ...
    def freeze(self) -> None: ...
    def unfreeze(self) -> None: ...
    def young(self) -> int: ...


class PythonCollector:
    def collect(self) -> int:
        return gc.collect()

    def freeze(self) -> None:
        gc.freeze()

    def unfreeze(self) -> None:
        gc.unfreeze()

    def young(self) -> int:
        return gc.get_count()[0]


class GcPolicy:
    """The decisions (rules 1 and 3), on a clock the caller passes in."""

    def __init__(
        self, settings: GcSettings, now: float, timer: Callable[[], float] = time.perf_counter
    ) -> None:
        self.settings = settings
        self.interval = settings.freeze_interval_s  # to the next tick (rule 4)
        self.last_sweep = now
        self._timer = timer
        self.ticks = 0
        self.sweeps = 0
        self.collected = {"tick": 0, "sweep": 0}

    def sweep_due(self, now: float, open_rooms: int) -> bool:
        s = self.settings
        return open_rooms <= s.sweep_max_rooms and now - self.last_sweep >= s.sweep_interval_s

    def run_once(self, now: float, open_rooms: int, collector: Collector) -> str:
        """One tick or one sweep; returns which ("tick" or "sweep")."""
        started = self._timer()
        if self.sweep_due(now, open_rooms):
            collector.unfreeze()
            found = collector.collect()
            collector.freeze()
            self.last_sweep = now
            self.sweeps += 1
            kind = "sweep"
            pause = self._timer() - started
            log_event(log, "gc_sweep", collected=found, rooms=open_rooms,
                      pause_ms=round(pause * 1e3, 1))  # fmt: skip
        else:
            found = collector.collect()
            collector.freeze()
            self.ticks += 1
            kind = "tick"
            self.interval = self.next_interval(self._timer() - started)
        if found:
            self.collected[kind] += found
            GC_POLICY_COLLECTED.labels(kind).inc(found)
        return kind

    def next_interval(self, pause: float) -> float:
        """Rule 4: the interval to the next tick after a tick that took `pause` s."""
        longest = self.settings.freeze_interval_s
        if pause > TICK_BUDGET_S:  # shrink in proportion: the next one comes in budget
            return max(min(MIN_INTERVAL_S, longest), self.interval * TICK_BUDGET_S / pause)
        if pause < TICK_BUDGET_S / 2:
            return min(longest, self.interval * 2)
        return self.interval


async def run_gc_policy(
    settings: GcSettings,
    open_rooms: Callable[[], int],
    *,
    collector: Collector | None = None,
    task_status: trio.TaskStatus[GcPolicy | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Apply the policy until cancelled (start it in the app's background nursery)."""
    if not settings.freeze_interval_s > 0:
        task_status.started(None)
        return
    collector = collector or PythonCollector()
    policy = GcPolicy(settings, trio.current_time())
    previous = gc.get_threshold()
    if settings.young_threshold:
        gc.set_threshold(settings.young_threshold, *previous[1:])
    try:
        task_status.started(policy)
        next_tick = trio.current_time() + policy.interval
        while True:
            await trio.sleep_until(min(next_tick, trio.current_time() + CHECK_S))
            now = trio.current_time()
            if now >= next_tick or collector.young() >= TICK_OBJECTS:  # rules 1 and 7
                policy.run_once(now, open_rooms(), collector)
                next_tick = trio.current_time() + policy.interval
    finally:
        gc.set_threshold(*previous)
