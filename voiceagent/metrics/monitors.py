"""Process-wide monitors: event-loop lag and cyclic garbage-collector pauses.

Both observe into histograms (`observe()` ~1 us): the loop-lag monitor 20 times a second
for the whole process, the GC watch once per collector pass. Neither runs per frame.
"""

from __future__ import annotations

import gc
import time

import trio

from voiceagent.metrics.series import GC_PAUSE, LOOP_LAG


async def monitor_loop_lag(tick: float = 0.05) -> None:
    """Sleep `tick` seconds forever and record each wake-up's overshoot in `LOOP_LAG`.

    The overshoot is how long other tasks (or a blocking call) kept the loop from
    running this one. Runs until cancelled (start it in the app's lifespan nursery);
    cancellation simply ends it. Uses the run's clock, so a `MockClock` drives it too.
    """
    if not tick > 0:
        raise ValueError(f"tick must be > 0, got {tick!r}")
    observe = LOOP_LAG.observe
    now = trio.current_time
    while True:
        started = now()
        await trio.sleep(tick)
        observe(max(0.0, now() - started - tick))


def watch_gc_pauses() -> None:
    """Record every cyclic GC pass in `GC_PAUSE` (idempotent; a callback per pass).

    A generation-2 pass walks every tracked object of the process while all sessions
    wait, so its length grows with the number of open rooms: the figure to watch when
    sizing rooms per worker.
    """
    if _gc_callback in gc.callbacks:
        return
    gc.callbacks.append(_gc_callback)


_gc_started = [0.0]
_GC_CHILDREN = [GC_PAUSE.labels(str(generation)) for generation in range(3)]


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _GC_CHILDREN[info["generation"]].observe(time.perf_counter() - _gc_started[0])
