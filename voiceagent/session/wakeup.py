"""A wake-up for the one task that waits for a change, costing nothing until it waits.

A `trio.Event` is about 300 bytes (the object and its set of waiters), and its
`wait()` adds a coroutine frame under the waiter. A room holds several "something
changed" signals (new input for an idle model link, the user speaking again for the
away watch, an utterance ending for the interruption judge, queued traffic for the
writer), and most rooms never start most of the tasks that wait on them; the writer
waits on its signal for as long as the room is idle. `Wakeup` keeps only the waiting
task, and parks it with Trio's own primitive (`trio.lowlevel.wait_task_rescheduled`).

Edge-triggered: `wait()` and `wait_until()` see only the changes made after they
began, as the "make a new Event, then wait on it" idiom they replace did. One waiter
at a time.
"""

from __future__ import annotations

import trio


class Wakeup:
    __slots__ = ("_waiter",)

    def __init__(self) -> None:
        self._waiter: trio.lowlevel.Task | None = None

    def set(self) -> None:
        """Wake the task waiting now, if any (nothing happens otherwise)."""
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    async def wait(self) -> None:
        """Wait for the next `set()`."""
        assert self._waiter is None, "a Wakeup has one waiter at a time"
        await trio.lowlevel.checkpoint_if_cancelled()
        self._waiter = task = trio.lowlevel.current_task()
        try:
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        finally:
            if self._waiter is task:  # left some other way: no set() may wake it now
                self._waiter = None

    def _abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        # Trio reschedules the cancelled waiter itself. Forget it now, not when it runs
        # again: a set() in between (a barge-in cancels a wait, then signals the change)
        # would reschedule it a second time.
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    async def wait_until(self, deadline: float) -> bool:
        """Wait for the next `set()` until `deadline`; whether it came."""
        with trio.move_on_at(deadline) as scope:
            await self.wait()
        return not scope.cancelled_caught
