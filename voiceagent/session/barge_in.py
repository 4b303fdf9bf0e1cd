"""Barge-in and output guardrails: stop what the user hears, keep only what they heard.

Rules (responses.py routes the events; this module does the cutting):
1. `cut` never waits: it makes the epoch stale and queues `audio_interrupted` ahead of
   everything (outbox.py), cancels the speaking responses' voices and the interruptible
   tool calls, asks the model to cancel and keep only what was heard (a `CancelResponse`
   on the link's control channel, never blocking), and records the heard text in the
   history as an `interrupted` assistant item. A barge-in over the budget goodbye
   closes the room at once (4002).
2. An output guardrail that trips cuts the response (a barge-in, `guardrail`) and says
   the agent's safe line instead, as a response of its own (`<id>_safe`); the model is
   told the user heard the safe line.
3. Plain functions of the room's parts: they hold nothing, so they add no reference
   cycle (room.py). The router is passed in where it is needed, never stored.

On cancellation: `cut` has no checkpoint, so a barge-in is all done or not begun.
`trip_guardrail` waits only to queue its events, to send the cancel and to say the
line; cancelled there (the session is ending, room.py rule 1) the cut stays done. A
`CancelResponse` that does not fit the control channel is logged and dropped.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import trio

from voiceagent.close_codes import CloseCode
from voiceagent.conversation import ConversationItem, Heard
from voiceagent.logs import log_event
from voiceagent.protocol import event
from voiceagent.session.model_link import CancelResponse, ModelLink
from voiceagent.session.room import Room
from voiceagent.session.tool_runner import ToolRunner
from voiceagent.session.turns import Response

log = logging.getLogger("voiceagent.session")


class Router(Protocol):
    def barge_in(self, source: str) -> None: ...

    async def say_line(self, response_id: str, agent: str, line: str) -> None: ...


def end_text(response: Response) -> None:
    """No more text for `response`'s voice: its `speak` task finishes what it has."""
    if response.text_tx is not None:
        response.text_tx.close()


def cut(room: Room, link: ModelLink, tools: ToolRunner, source: str) -> None:
    """Rule 1: stop the audible responses now and keep what the user heard of them."""
    now = trio.current_time()
    tools.cancel_interruptible()
    if room.ending:  # a barge-in over the goodbye: the room has nothing more to say
        room.close(CloseCode.BUDGET, "session usage limit reached")
    speaking = room.turns.interrupt(now)
    if not speaking:
        return
    current = speaking[-1]
    room.outbox.interrupt(
        event(
            "audio_interrupted",
            response_id=current.response_id,
            played_ms=current.estimated_played_ms(now),
        )
    )
    for response in speaking:
        if response.tts_scope is not None:
            response.tts_scope.cancel()
        end_text(response)
    heard = current.heard(now)
    log_event(
        log,
        "barge_in",
        source=source,
        response_id=current.response_id,
        played_ms=heard.audio_ms,
    )
    room.journal.mark(
        "barge_in", source=source, response_id=current.response_id, played_ms=heard.audio_ms
    )
    if room.recorder is not None:
        room.recorder.cut(current.response_id, heard.audio_ms)
    if link.connection is not None:
        if not link.send_nowait(CancelResponse(heard)):
            log_event(log, "cancel_not_queued", level=logging.WARNING)
    if current.item_id is not None:
        room.history.put(
            ConversationItem(
                current.item_id,
                "assistant",
                text=heard.text or "",
                status="interrupted",
                agent=current.agent,
            )
        )


async def trip_guardrail(
    router: Router, room: Room, link: ModelLink, response: Response, tripped: Any
) -> None:
    """Rule 2: an output guardrail fired: cut the response and say the safe line instead."""
    name = getattr(tripped, "guardrail", None) or getattr(tripped, "name", "guardrail")
    safe_line = room.agent.guardrail_safe_line
    router.barge_in("guardrail")
    response.guardrails = None
    room.journal.mark(
        "guardrail_tripped",
        guardrail=str(name),
        response_id=response.response_id,
    )
    await room.put(
        event(
            "guardrail_tripped",
            guardrail=str(name),
            response_id=response.response_id,
            message=str(getattr(tripped, "message", "") or ""),
        )
    )
    if link.connection is not None:
        heard = Heard(response.response_id, response.item_id, 0, safe_line)
        await link.send(CancelResponse(heard))
    await router.say_line(f"{response.response_id}_safe", response.agent, safe_line)
