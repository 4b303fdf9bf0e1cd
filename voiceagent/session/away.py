"""The user away: check in once, then close the room (VOICEAGENT_USER_AWAY_TIMEOUT_S).

Rules:
1. The clock runs from the later of the user's last sign of life (speech start or
   stop, a typed message, a commit, an interrupt) and the moment the agent stopped
   being heard (turns.py `quiet_since`: the estimated end of its audio). While the
   agent is still answering, or the user is speaking, it does not run.
2. The first time it reaches `user_away_timeout_s`, the agent says a check-in line
   ("Are you still there?", lines.py). Any sign of life starts over.
3. The second time, the room ends politely: an `error` event `user_away`, then close
   1000 with the reason "user away". An abandoned room stops costing provider time.

Task: one per room, started when the agent first speaks (a room that never spoke is
left to WS_IDLE_TIMEOUT_S); it sleeps until its deadline and ends with the session.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

from voiceagent import metrics
from voiceagent.close_codes import CloseCode
from voiceagent.logs import log_event
from voiceagent.protocol import error_event
from voiceagent.session.lines import CHECK_IN, localised
from voiceagent.session.room import Room
from voiceagent.session.wakeup import Wakeup

log = logging.getLogger("voiceagent.session")

BUSY_POLL_S = 0.25  # while the agent answers: how often to look again


class Speaking(Protocol):
    @property
    def user_is_speaking(self) -> bool: ...

    async def say_line(self, response_id: str, agent: str, line: str) -> None: ...


class AwayWatch:
    def __init__(self, room: Room) -> None:
        self._room = room
        self._active_at = trio.current_time()
        self._checked_in = False
        self._started = False
        self._changed = Wakeup()

    def user_active(self) -> None:
        self._active_at = trio.current_time()
        self._checked_in = False
        self._changed.set()

    def start(self, router: Speaking) -> None:
        """The agent spoke: watch from now on (once per room)."""
        room = self._room
        if self._started or not room.settings.user_away_timeout_s or room.work is None:
            return
        self._started = True
        room.work.start_soon(self._run, router)

    async def _run(self, router: Speaking) -> None:
        room = self._room
        timeout = room.settings.user_away_timeout_s
        while True:
            quiet = room.turns.quiet_since()
            if quiet is None or router.user_is_speaking or room.text_pending:
                await trio.sleep(BUSY_POLL_S)
                continue
            due = max(quiet, self._active_at) + timeout
            if await self._changed.wait_until(due) or trio.current_time() < due:
                continue
            if room.turns.quiet_since() is None:
                continue  # the agent began to speak at the deadline
            if not self._checked_in:
                self._checked_in = True
                log_event(log, "user_away_check_in", after_s=timeout)
                line = localised(CHECK_IN, room.settings.language)
                await router.say_line(f"away_{room.next_id()}", room.agent.name, line)
                continue
            log_event(log, "user_away", after_s=timeout)
            metrics.count_error("user_away")
            room.outbox.urgent(error_event("user_away", f"no answer for {timeout:g} s"))
            room.close(CloseCode.NORMAL, "user away")
            return
