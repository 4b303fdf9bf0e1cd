"""Model events → what the client sees and hears: responses, barge-in, guardrails.

Rules:
1. Each model event type has one handler (`_HANDLERS`, looked up by `type(ev)`: one
   dict lookup per event, audio deltas included). Events of unknown types are ignored.
2. A response starts a new entry in `Turns` (turns.py) in the current epoch; with a
   TTS it is voiced by its own `speak` task (speaker.py), else the model's own audio
   deltas are relayed. Text of a response the user cut off is dropped.
3. A barge-in (the client's `interrupt` or VAD, the model's VAD, a guardrail) never
   waits; what it does is barge_in.py's (`cut`). The model's VAD first goes through
   interruptions.py (pause, judge, then resume or commit); the client's messages
   commit at once.
4. An output guardrail that trips cuts the response and says the agent's safe line
   instead, as a response of its own (barge_in.py `trip_guardrail`).
5. When both the model and the voice are done with a response, `audio_end` and the
   turn's `metrics` event are sent (once).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from voiceagent import metrics
from voiceagent.close_codes import CloseCode
from voiceagent.conversation import ConversationItem
from voiceagent.events import (
    AudioDelta,
    FunctionCall,
    InputCommitted,
    ModelError,
    ModelEvent,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptCompleted,
    TranscriptDelta,
    TranscriptFailed,
)
from voiceagent.graph import GuardrailMonitor
from voiceagent.logs import log_event
from voiceagent.models.base import ModelConnectionError
from voiceagent.protocol import error_event, event
from voiceagent.session.away import AwayWatch
from voiceagent.session.barge_in import cut, end_text, trip_guardrail
from voiceagent.session.interruptions import Interruptions
from voiceagent.session.lines import say_line
from voiceagent.session.model_link import ModelLink
from voiceagent.session.room import Room
from voiceagent.session.speaker import Speaker
from voiceagent.session.tool_runner import ToolRunner
from voiceagent.session.turns import Response

log = logging.getLogger("voiceagent.session")

GOODBYE = "I'm sorry, this conversation has reached its limit. Goodbye."


class ResponseRouter:
    def __init__(self, room: Room, link: ModelLink, tools: ToolRunner) -> None:
        self._room = room
        self._link = link
        self._tools = tools
        self._speaker = Speaker(room)
        self._speaking = False  # the model heard the user start and not yet stop
        self.interruptions = Interruptions(room, link)
        self.away = AwayWatch(room)

    async def on_event(self, ev: ModelEvent) -> None:
        handler = _HANDLERS.get(type(ev))
        if handler is not None:
            await handler(self, ev)

    @property
    def user_is_speaking(self) -> bool:
        return self._speaking

    def user_speaking(self, speaking: bool) -> None:
        self.away.user_active()
        if speaking != self._speaking:
            self._speaking = speaking
            metrics.SESSIONS_SPEAKING.inc() if speaking else metrics.SESSIONS_SPEAKING.dec()

    # -- responses --------------------------------------------------------------------

    async def _on_response_started(self, ev: ResponseStarted) -> None:
        room = self._room
        room.text_pending = False  # the model took up the typed message (if any)
        agent = room.agent
        response = room.turns.begin(ev.response_id, agent.name)
        room.outbox.begin_epoch(room.turns.epoch)
        if room.timer is None:
            room.new_turn().response_requested()
        # Every response until the user's next input (a tool call's follow-up, the
        # new agent's answer after a handoff) belongs to the same turn and timer.
        response.timer = room.timer
        response.uninterruptible = not agent.allow_interruptions
        if agent.output_guardrails:
            response.guardrails = GuardrailMonitor(agent.output_guardrails)
        await room.put(event("response_start", response_id=ev.response_id, agent=response.agent))
        self.away.start(self)
        if self._speaker.enabled:
            self._speaker.start(response, self._finish_response)
        else:
            response.speech_done = True

    async def _on_text_delta(self, ev: TextDelta) -> None:
        response = self._room.turns.get(ev.response_id)
        if response is None or response.interrupted:
            return  # text of a response the user already cut off
        response.item_id = response.item_id or ev.item_id
        response.text += ev.delta
        if response.timer is not None:
            response.timer.model_first_text()
        self._room.outbox.post(
            event("text_delta", response_id=ev.response_id, item_id=ev.item_id, delta=ev.delta)
        )
        if response.guardrails is not None:
            tripped = response.guardrails.feed(ev.delta)
            if tripped is not None:
                await trip_guardrail(self, self._room, self._link, response, tripped)
                return
        if response.text_tx is not None:
            if response.timer is not None:
                response.timer.tts_first_text()
            try:
                await response.text_tx.send(ev.delta)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the TTS stopped (failed or cancelled); the text still reached the UI

    async def _on_audio_delta(self, ev: AudioDelta) -> None:
        response = self._room.turns.get(ev.response_id)
        if response is None or response.interrupted:
            return
        response.item_id = response.item_id or ev.item_id
        await self._speaker.send_audio(response, ev.pcm)

    async def _on_text_done(self, ev: TextDone) -> None:
        room = self._room
        response = room.turns.get(ev.response_id)
        if response is not None:
            response.text = ev.text or response.text
            response.item_id = response.item_id or ev.item_id
            end_text(response)
            if not response.interrupted:  # a cut reply stays in the history as heard
                room.history.put(
                    ConversationItem(
                        ev.item_id, "assistant", text=response.text, agent=response.agent
                    )
                )
        await room.put(
            event("text_done", response_id=ev.response_id, item_id=ev.item_id, text=ev.text)
        )

    async def _on_response_done(self, ev: ResponseDone) -> None:
        response = self._room.turns.get(ev.response_id)
        budget_reached = False
        if response is not None and response.model_done:
            return  # ended already: given up on after a model timeout
        if response is not None:
            response.model_done = True
            if ev.usage is not None:
                if response.timer is not None:
                    response.timer.usage(ev.usage)
                budget_reached = self._room.charge(ev.usage)
            if response.guardrails is not None and not response.interrupted:
                tripped = response.guardrails.finish()
                if tripped is not None:
                    await trip_guardrail(self, self._room, self._link, response, tripped)
            end_text(response)
        await self._room.put(event("response_done", response_id=ev.response_id, status=ev.status))
        if response is not None and response.speech_done:
            await self._finish_response(response)
        if budget_reached:
            await self.end_for_budget()

    async def abandon_responses(self) -> None:
        """The provider went away mid-response: end what it left open."""
        self._room.text_pending = False
        response = self._room.turns.current
        if response is not None and not response.model_done:
            response.model_done = True
            end_text(response)
            await self._room.put(
                event("response_done", response_id=response.response_id, status="failed")
            )

    async def _finish_response(self, response: Response) -> None:
        """Both the model and the voice are done with `response`: report its metrics."""
        if response.reported:
            return
        response.reported = True
        room = self._room
        if response.audio_bytes and not response.interrupted:
            await room.put(
                event("audio_end", response_id=response.response_id, audio_ms=response.audio_ms),
                epoch=response.epoch,
            )
        # Responses that only called tools said nothing: no turn figures for them.
        if response.timer is not None and (response.text or response.audio_bytes):
            report = response.timer.report(response.response_id, room.tally.dropped)
            room.outbox.post(event(report.pop("type"), **report))
            room.journal.turn(report)
        response.finished = True

    # -- the user's side --------------------------------------------------------------

    async def _on_speech_started(self, ev: SpeechStarted) -> None:
        self.user_speaking(True)
        await self._room.put(event("input_speech_started", audio_start_ms=ev.audio_start_ms))
        self.interruptions.speech_started(self, ev.item_id, ev.audio_start_ms)

    async def _on_speech_stopped(self, ev: SpeechStopped) -> None:
        self.user_speaking(False)
        if not self.interruptions.paused:  # speech being judged is not a turn yet
            self._room.new_turn().speech_end()
        self.interruptions.speech_stopped(self, ev.item_id, ev.audio_end_ms)
        await self._room.put(event("input_speech_stopped", audio_end_ms=ev.audio_end_ms))

    async def _on_input_committed(self, ev: InputCommitted) -> None:
        if self.interruptions.input_committed(ev.item_id):
            self._room.history.put(ConversationItem(ev.item_id, "user", status="in_progress"))

    async def _on_transcript_delta(self, ev: TranscriptDelta) -> None:
        if self.interruptions.transcript_delta(self, ev.item_id, ev.delta):
            self._room.outbox.post(
                event("user_transcript_delta", item_id=ev.item_id, delta=ev.delta)
            )

    async def _on_transcript_completed(self, ev: TranscriptCompleted) -> None:
        room = self._room
        if not self.interruptions.transcript(self, ev.item_id, ev.transcript):
            return  # a backchannel or noise over the agent: not a user turn
        if room.timer is not None:
            room.timer.transcript_final()
        await room.put(event("user_transcript", item_id=ev.item_id, text=ev.transcript))
        room.history.put(ConversationItem(ev.item_id, "user", text=ev.transcript))

    async def _on_transcript_failed(self, ev: TranscriptFailed) -> None:
        self.interruptions.transcript_failed(self, ev.item_id)
        await self._room.put(error_event("transcription_failed", ev.message))
        self._room.history.put(ConversationItem(ev.item_id, "user", status="failed"))

    async def _on_function_call(self, ev: FunctionCall) -> None:
        await self._tools.on_function_call(ev)

    async def _on_model_error(self, ev: ModelError) -> None:
        log_event(log, "model_error", level=logging.WARNING, code=ev.code, error=ev.message)
        self._room.text_pending = False  # a refused message will not be answered
        code, message = _CLIENT_ERRORS.get(ev.code, (ev.code, ev.message))
        if code:
            metrics.count_error(code)
            await self._room.put(error_event(code, message))
        if ev.fatal:
            raise ModelConnectionError(ev.message, code=ev.code)

    # -- barge-in and guardrails ------------------------------------------------------

    def barge_in(self, source: str) -> None:
        """Stop what the user is hearing; keep only what they heard. Never waits."""
        cut(self._room, self._link, self._tools, source)
        self.interruptions.barged_in()  # after the cancel: held turns are answered next

    async def end_for_budget(self) -> None:
        """The room reached its token or cost cap: say goodbye, then close with 4002.

        Nothing more reaches the model (`room.ending`); a barge-in over the goodbye
        closes at once.
        """
        room = self._room
        log_event(log, "session_budget_reached", tokens=room.spent_tokens, usd=room.spent_usd)
        metrics.count_error("session_budget")
        await room.put(error_event("session_budget", "this session reached its usage limit"))
        await self.say_line(f"budget_{room.next_id()}", room.agent.name, GOODBYE, self._close_after)

    async def _close_after(self, response: Response) -> None:
        await self._finish_response(response)
        self._room.close(CloseCode.BUDGET, "session usage limit reached")

    async def say_line(
        self,
        response_id: str,
        agent: str,
        line: str,
        finish: Callable[[Response], Awaitable[None]] | None = None,
        *,
        uninterruptible: bool = False,
    ) -> None:
        """Say a line of the server's own as a response (lines.py)."""
        self.away.start(self)
        finish = finish or self._finish_response
        await say_line(self._room, self._speaker, response_id, agent, line, finish, uninterruptible)


# Provider errors that are races inside the server's own use of the provider, not
# news for the user: what the client gets instead ("" code: nothing; the log has it).
_CLIENT_ERRORS = {
    "conversation_already_has_active_response": (
        "busy",
        "the model is still answering; the message was not taken",
    ),
    "response_cancel_not_active": ("", ""),  # a cancel that crossed the response's end
}


# Rule 1. Unbound functions, not bound methods: a table of bound methods held by the
# router would be a reference cycle. RateLimits (reported at every response) has no
# handler: nothing for the client.
_Handler = Callable[[ResponseRouter, Any], Awaitable[None]]
_HANDLERS: dict[type, _Handler] = {
    AudioDelta: ResponseRouter._on_audio_delta,
    TextDelta: ResponseRouter._on_text_delta,
    ResponseStarted: ResponseRouter._on_response_started,
    TextDone: ResponseRouter._on_text_done,
    ResponseDone: ResponseRouter._on_response_done,
    FunctionCall: ResponseRouter._on_function_call,
    SpeechStarted: ResponseRouter._on_speech_started,
    SpeechStopped: ResponseRouter._on_speech_stopped,
    InputCommitted: ResponseRouter._on_input_committed,
    TranscriptDelta: ResponseRouter._on_transcript_delta,
    TranscriptCompleted: ResponseRouter._on_transcript_completed,
    TranscriptFailed: ResponseRouter._on_transcript_failed,
    ModelError: ResponseRouter._on_model_error,
}
