"""Server-side deadlines on the model: a provider that goes quiet must not hang a room.

Two deadlines, one at a time, per model connection:

- *first event*: after a response is requested (a typed message, a commit, a tool
  output that asks for a follow-up), the response must start within
  `model_first_event_timeout_s` (an error or a finished response also counts as an
  answer);
- *stall*: while a response is in progress, the gap between two of its events must
  stay under `model_stall_timeout_s`.

`ModelWatch` only keeps the marks; the model link's watch task sleeps until
`deadline()` and, when it passes, gives up on the response: a typed `model_timeout`
error for the client, a `cancel_response` to the provider, a log line and the errors
counter, and the open response ends as failed. The connection stays: the next turn
goes through it. Cost per model event: one clock read and two type checks.
"""

from __future__ import annotations

import trio

from voiceagent.events import ModelError, ModelEvent, ResponseDone, ResponseStarted

TIMEOUT_CODE = "model_timeout"


class ModelWatch:
    __slots__ = ("_first_s", "_stall_s", "changed", "in_response", "last_event", "requested_at")

    def __init__(self, first_event_s: float, stall_s: float) -> None:
        self._first_s = first_event_s
        self._stall_s = stall_s
        self.requested_at: float | None = None  # a response was asked for, none started
        self.in_response = False
        self.last_event = 0.0
        self.changed = trio.Event()  # wakes the watch task when a deadline appears

    def requested(self) -> None:
        """A response was asked for: start the first-event clock (if none is running)."""
        if self.requested_at is None and not self.in_response:
            self.requested_at = trio.current_time()
            self.changed.set()

    def saw(self, ev: ModelEvent) -> None:
        """The model said something (called for every event)."""
        self.last_event = trio.current_time()
        kind = type(ev)
        if kind is ResponseStarted:
            self.requested_at = None
            self.in_response = True
            self.changed.set()
        elif kind is ResponseDone or kind is ModelError:
            self.requested_at = None
            self.in_response = False

    def deadline(self) -> float | None:
        if self.in_response:
            return self.last_event + self._stall_s
        if self.requested_at is not None:
            return self.requested_at + self._first_s
        return None

    def expired(self) -> str | None:
        """Which deadline has passed ("first_event" or "stall"), if one has; resets it."""
        deadline = self.deadline()
        if deadline is None or trio.current_time() < deadline:
            return None
        stage = "stall" if self.in_response else "first_event"
        self.requested_at = None
        self.in_response = False
        return stage
