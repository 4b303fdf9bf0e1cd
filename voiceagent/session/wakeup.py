"""A wake-up for the one task that waits for a change, made only when it waits.

A `trio.Event` is about 300 bytes (the object and its set of waiters). A room holds
several "something changed" signals (new input for an idle model link, the user
speaking again for the away watch, an utterance ending for the interruption judge),
and most rooms never start most of the tasks that wait on them: an idle room would
carry them all for nothing. `Wakeup` holds no event until a task waits.

Edge-triggered: `wait()` and `wait_until()` see only the changes made after they
began, as the "make a new Event, then wait on it" idiom they replace did.
"""

from __future__ import annotations

import trio


class Wakeup:
    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: trio.Event | None = None

    def set(self) -> None:
        """Wake the task waiting now, if any (nothing happens otherwise)."""
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Wait for the next `set()`."""
        self._event = event = trio.Event()
        await event.wait()

    async def wait_until(self, deadline: float) -> bool:
        """Wait for the next `set()` until `deadline`; whether it came."""
        self._event = event = trio.Event()
        with trio.move_on_at(deadline):
            await event.wait()
        return event.is_set()
