"""What the parts of one session share: the outbox, the turns, the history, the agent.

The session's parts (model_link.py, responses.py, speaker.py, tool_runner.py) each
hold the `Room`, never the `Session` or each other in both directions, so a finished
session leaves no reference cycle and is freed by reference counting (a cycle costs
the collector a pass over every open room; tests/session/test_lifecycle.py checks).

Rules:
1. `put()` is how every part queues reliable traffic. A client too slow to take it
   (`SlowClient`, see outbox.py) closes the session with 1013: `put()` then raises
   `Cancelled` in its caller, because the work scope around every part is cancelled.
2. `close()` records the first close code only (a later reason never overwrites the
   first) and announces it with an `error` event when close_codes.py names one.
3. `agent` is the agent that speaks now; a handoff (tool_runner.py) replaces it.
4. `text_pending`: a typed message was sent to the model and no response has started
   since (nor has the model failed). While it is set, a new typed message is answered
   `busy` instead of being queued behind it.
5. `charge()` adds a response's usage to what the room has spent; once a token or cost
   cap (`VOICEAGENT_MAX_SESSION_TOKENS`, `VOICEAGENT_MAX_SESSION_COST_USD`) is reached
   the room is `ending`: nothing more goes to the model, the agent says goodbye
   (responses.py) and the room closes with 4002. The journal sums the same usage
   by kind for the session's billing record.
"""

from __future__ import annotations

import itertools
import logging

import trio

from voiceagent.close_codes import CLOSE_ERRORS, RECONNECT_CODES, CloseCode
from voiceagent.conversation import ConversationItem
from voiceagent.events import Usage
from voiceagent.graph import Agent
from voiceagent.logs import log_event
from voiceagent.metrics import TrafficTally, TurnTimer
from voiceagent.protocol import error_event
from voiceagent.session.history import History
from voiceagent.session.outbox import NO_EPOCH, Outbox, SlowClient
from voiceagent.session.recorder import Recorder
from voiceagent.session.services import Services
from voiceagent.session.turns import Turns
from voiceagent.store.journal import Journal

log = logging.getLogger("voiceagent.session")


class Room:
    def __init__(
        self, session_id: str, services: Services, outbox: Outbox, tally: TrafficTally
    ) -> None:
        self.session_id = session_id
        self.services = services
        self.settings = services.settings
        self.outbox = outbox
        self.tally = tally
        self.turns = Turns()
        # What this connection tells the conversation store (a no-op without one).
        self.journal = Journal(services.store, session_id)
        self.history = History(outbox, self.journal)
        self.recorder: Recorder | None = None  # VOICEAGENT_RECORD=1 (recorder.py)
        writer = services.recordings
        if writer is not None:
            path = writer.path_for(session_id, self.journal.connection_id)
            self.recorder = Recorder(writer, path, trio.current_time())
        self.agent: Agent = services.agent
        # The session's work (model, voice, tools) while it runs; its nursery's own scope
        # is what close() cancels (a scope of its own would cost every room ~0.6 KB).
        self.work: trio.Nursery | None = None
        self.work_stopped = False  # stopped before it began: it never starts
        self.close_code: int = CloseCode.NORMAL
        self.close_reason = ""
        self.timer: TurnTimer | None = None  # the turn in progress
        self.text_pending = False  # rule 4
        self.spent_usd = 0.0  # rule 5
        self.spent_tokens = 0
        self.ending = False
        self.resumed: tuple[ConversationItem, ...] = ()  # an earlier conversation (resume.py)
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """A number unique in this session (for item ids the server makes up)."""
        return next(self._ids)

    def new_turn(self) -> TurnTimer:
        self.timer = TurnTimer(self.services.prices)
        return self.timer

    def charge(self, usage: Usage) -> bool:
        """Add one usage report (rule 5); True when it reaches a cap for the first time."""
        cost = self.services.prices.cost_usd(usage)
        self.spent_tokens += usage.input_tokens + usage.output_tokens
        self.spent_usd += cost
        self.journal.charge(usage, cost)
        settings = self.settings
        over = (
            settings.max_session_tokens and self.spent_tokens >= settings.max_session_tokens
        ) or (settings.max_session_cost_usd and self.spent_usd >= settings.max_session_cost_usd)
        if over and not self.ending:
            self.ending = True
            return True
        return False

    def close(self, code: int, reason: str) -> None:
        """Cancel the session's work; the socket then closes with `code` (rule 2)."""
        if self.close_code == CloseCode.NORMAL:
            self.close_code, self.close_reason = code, reason
            error_code = CLOSE_ERRORS.get(code)
            if error_code is not None:
                reconnect = code in RECONNECT_CODES
                self.outbox.urgent(error_event(error_code, reason, reconnect=reconnect))
        self.stop_work()

    def stop_work(self) -> None:
        """Cancel the session's work, or keep it from starting if it has not yet."""
        if self.work is not None:
            self.work.cancel_scope.cancel()
        else:
            self.work_stopped = True

    async def put(
        self, message: str | bytes, *, epoch: int = NO_EPOCH, arrived: float = 0.0
    ) -> None:
        """Queue reliable traffic; a client too slow to take it is closed with 1013."""
        try:
            await self.outbox.put(message, epoch, arrived)
        except SlowClient as exc:
            log_event(log, "client_too_slow", level=logging.WARNING, error=str(exc))
            self.close(CloseCode.TRY_AGAIN, "client too slow")
            await trio.lowlevel.checkpoint()  # raises Cancelled: the work scope is cancelled
