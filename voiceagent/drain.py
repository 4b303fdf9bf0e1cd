"""Draining an instance for a deploy: stop taking rooms, let the talking ones finish.

A drain starts on SIGTERM or Ctrl-C to `voiceagent serve` (cli.py) or on
`POST /admin/drain` (admin.py), once per process; it is one-way (the process is
expected to exit after it).

Rules:
1. At once: `/healthz` answers 503 with `ready: false, draining: true`, so a load
   balancer's health check takes the instance out of rotation, and every new
   WebSocket handshake is refused with 503 and `Retry-After` (app.py). No socket
   write may take longer than a second from now (`Transport.stop_writes`): a client
   that has stopped reading cannot finish a response, so it is dropped instead of
   holding the drain for the whole grace.
2. A room with no response in progress (`Session.responding`: nothing asked of the
   model, written, voiced or waiting on a tool) is closed at once: `error`
   `server_shutting_down` with `"reconnect": true`, then close 1001. The client opens
   the same session id again and the load balancer sends it to another instance.
3. A room in the middle of a response keeps it until it is finished (its
   `response_done` and `audio_end` are queued), then closes the same way. The rooms
   are looked at every `POLL_S`; a pass is a few attribute reads per room.
4. After `VOICEAGENT_DRAIN_GRACE_S` the rooms still responding are closed too.
   0 closes every room at once.
5. `run()` returns once every room has been told; the sessions then finish their
   close (bounded by `VOICEAGENT_TEARDOWN_TIMEOUT_S`) on their own.

Cancellation: cancelling `run()` (a second signal) leaves the rooms not yet told open;
the caller closes them (`registry.close_all`). Closing a session never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from voiceagent.close_codes import CloseCode
from voiceagent.logs import log_event

if TYPE_CHECKING:
    from voiceagent.session.registry import Registry
    from voiceagent.session.session import Session

log = logging.getLogger("voiceagent.drain")

POLL_S = 0.1  # how soon a room that finished its response is told
RETRY_AFTER_S = 2  # what a refused handshake is told: the balancer will have moved on
SHUTTING_DOWN = "server shutting down"


class Drain:
    """The drain state of one app: whether it is draining, and the drain itself."""

    def __init__(self, grace_s: float, on_begin: Callable[[], None] = lambda: None) -> None:
        self.grace_s = grace_s
        self._on_begin = on_begin
        self.started_at: float | None = None  # trio.current_time() when it began
        self.done = trio.Event()  # every room has been told
        self._running = False

    @property
    def draining(self) -> bool:
        return self.started_at is not None

    def begin(self) -> None:
        """Rule 1, at once (idempotent): /healthz and the handshake see it from now."""
        if self.started_at is None:
            self.started_at = trio.current_time()
            self._on_begin()

    async def run(self, registry: Registry) -> None:
        """Drain (rules 1-5); a call while another one runs waits for that one."""
        self.begin()
        if self._running:
            await self.done.wait()
            return
        self._running = True
        start = self.started_at
        assert start is not None
        log_event(log, "drain_started", sessions=len(registry), grace_s=self.grace_s)
        told: set[Session] = set()
        waited_for = 0
        deadline = start + self.grace_s
        while True:
            late = trio.current_time() >= deadline
            waiting = 0
            for session in registry.sessions():
                if session in told:
                    continue
                if session.responding and not late:
                    waiting += 1
                    continue
                session.close(CloseCode.GOING_AWAY, SHUTTING_DOWN)
                told.add(session)
            waited_for = max(waited_for, waiting)
            if not waiting:
                break
            await trio.sleep(POLL_S)
        log_event(
            log,
            "drain_done",
            sessions_closed=len(told),
            waited_for_responses=waited_for,
            cut_at_grace=late,
            drain_s=round(trio.current_time() - start, 2),
        )
        self.done.set()
