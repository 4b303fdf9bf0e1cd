"""One offline conversation: VAD turns, transcripts, the brain's replies as events.

`OfflineModel.connect()` (offline.py) opens one of these per session; the module
docstring there states the rules (what runs where, cancellation, what a barge-in keeps).
"""

from __future__ import annotations

import functools
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

import trio

from voiceagent.conversation import AgentSetup, Brain, BrainReply, ConversationItem, Heard
from voiceagent.events import (
    FunctionCall,
    InputCommitted,
    ModelError,
    ModelEvent,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptCompleted,
    TranscriptFailed,
)
from voiceagent.models.base import (
    ModelClosed,
    ModelConnection,
)
from voiceagent.models.offline_turns import TurnGate
from voiceagent.speech.stt import Recognizer, SpeechRecognitionError
from voiceagent.speech.turn_detector import SmartTurnDetector
from voiceagent.speech.turn_end import EAGERNESS
from voiceagent.speech.vad import (
    VAD_SAMPLE_RATE,
    SpeechPause,
    SpeechStart,
    SpeechStop,
    VadInputError,
    VoiceActivityDetector,
)

if TYPE_CHECKING:
    from voiceagent.models.offline import OfflineModelConfig

log = logging.getLogger("voiceagent.models.offline")


class _Response:
    """One response in flight: its ids, scope, and what the user heard if cut."""

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.heard: Heard | None = None
        self.item: ConversationItem | None = None


class OfflineConnection(ModelConnection):
    def __init__(
        self,
        config: OfflineModelConfig,
        setup: AgentSetup,
        vad: VoiceActivityDetector,
        recognizer: Recognizer,
        brain: Brain,
        nursery: trio.Nursery,
        detector: SmartTurnDetector | None = None,
    ) -> None:
        self._config = config
        self._setup = setup
        self._vad = vad
        self._recognizer = recognizer
        self._brain = brain
        self._nursery = nursery
        self._events_tx, self._events_rx = trio.open_memory_channel[ModelEvent](
            config.event_capacity
        )
        # (item id, the turn's audio, its transcript when the turn gate already made it)
        self._utterances_tx, self._utterances_rx = trio.open_memory_channel[
            tuple[str, SpeechStop, str | None]
        ](config.pending_utterances)
        self.history: list[ConversationItem] = []
        self._outstanding_calls: set[str] = set()
        self._response: _Response | None = None
        self._response_lock = trio.Lock()  # held by the response task for its whole life
        self._prefix = secrets.token_hex(3)
        self._ids = itertools.count(1)
        self._speech_item: str | None = None
        self._closed = False
        self.turns = TurnGate(
            detector,
            eagerness=EAGERNESS[config.turn_eagerness],
            max_turn_ms=config.vad.max_utterance_ms,
            nursery=nursery,
            commit=self._end_of_speech,
            # The recogniser is the app's: a partial of it keeps no reference cycle.
            transcribe=(
                functools.partial(recognizer.transcribe, sample_rate=VAD_SAMPLE_RATE)
                if config.turn_words
                else None
            ),
        )
        # Spoken turns wait for the session's answer (base.py `holds_spoken_turns`):
        # transcripts waiting for it, and answers that came before their transcript.
        self._held: dict[str, str] = {}
        self._answers: dict[str, bool] = {}

    # -- plumbing ---------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ModelClosed()

    def _id(self, kind: str) -> str:
        return f"{kind}_{self._prefix}_{next(self._ids)}"

    async def _emit(self, event: ModelEvent) -> None:
        await self._events_tx.send(event)

    def _remember(self, item: ConversationItem) -> None:
        self.history.append(item)
        excess = len(self.history) - self._config.max_history_items
        if excess > 0:
            del self.history[:excess]

    def _user_said(self, item: ConversationItem) -> None:
        # A new user turn supersedes calls still waiting for outputs (their tools may
        # have been cancelled by a barge-in); late outputs are still recorded.
        self._outstanding_calls.clear()
        self._remember(item)

    def __aiter__(self) -> AsyncIterator[ModelEvent]:
        return self._events_rx.__aiter__()

    # -- input ------------------------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        self._check_open()
        try:
            events = self._vad.feed(pcm)
        except VadInputError as exc:
            await self._emit(ModelError("invalid_audio", str(exc)))
            return
        for event in events:
            if isinstance(event, SpeechStart):
                if self.turns.speech_started():
                    continue  # the held turn goes on: same item, no second SpeechStarted
                self._speech_item = self._id("item")
                await self._emit(SpeechStarted(event.audio_start_ms, self._speech_item))
            elif isinstance(event, SpeechPause):
                self.turns.speech_paused(event)
            else:
                await self.turns.speech_stopped(event)
        await self.turns.audio_fed(self._vad.audio_ms)

    async def _end_of_speech(self, stop: SpeechStop, transcript: str | None = None) -> None:
        item_id = self._speech_item or self._id("item")
        self._speech_item = None
        await self._emit(SpeechStopped(stop.audio_end_ms, item_id))
        await self._emit(InputCommitted(item_id))
        try:
            self._utterances_tx.send_nowait((item_id, stop, transcript))
        except trio.WouldBlock:
            # The recogniser is far behind this speaker: say so rather than queue forever.
            await self._emit(TranscriptFailed(item_id, "speech recognition is overloaded"))

    async def commit_audio(self) -> None:
        self._check_open()
        stop = self.turns.flush(self._vad.end_utterance())
        if stop is None:
            await self._emit(ModelError("input_audio_buffer_commit_empty", "no speech to commit"))
            return
        await self._end_of_speech(stop)

    async def send_text(self, text: str) -> None:
        self._check_open()
        text = text.strip()
        if not text or len(text) > self._config.max_text_chars:
            await self._emit(
                ModelError(
                    "invalid_text", f"text must be 1-{self._config.max_text_chars} characters"
                )
            )
            return
        self._user_said(ConversationItem(id=self._id("item"), role="user", text=text))
        await self._start_response()

    async def send_tool_result(self, call_id: str, output: str, *, respond: bool = True) -> None:
        self._check_open()
        known = any(item.call_id == call_id for item in self.history)
        if not known:
            await self._emit(ModelError("unknown_call_id", f"no function call {call_id}"))
            return
        self._outstanding_calls.discard(call_id)
        self._remember(
            ConversationItem(
                id=self._id("item"),
                role="tool",
                type="function_call_output",
                call_id=call_id,
                output=output,
            )
        )
        if respond and not self._outstanding_calls:
            await self._start_response()

    async def update_agent(self, setup: AgentSetup) -> None:
        self._check_open()
        self._setup = setup

    async def add_history(self, items: Sequence[ConversationItem]) -> None:
        """A resumed room: the brain reads the earlier conversation as its own."""
        self._check_open()
        for item in items:
            self._remember(item)

    async def cancel_response(self, heard: Heard) -> None:
        self._check_open()
        response = self._response
        if response is None or response.done.is_set():
            return
        if heard.response_id and heard.response_id != response.response_id:
            return  # an old response; the current one was not interrupted
        response.heard = heard
        response.scope.cancel()

    # -- turns ------------------------------------------------------------------------

    async def run_turns(self) -> None:
        """Transcribe utterances in speaking order and answer each (the turn task)."""
        async for item_id, stop, early in self._utterances_rx:
            try:
                transcript = (
                    early
                    if early is not None
                    else await self._recognizer.transcribe(stop.audio, VAD_SAMPLE_RATE)
                )
            except SpeechRecognitionError as exc:
                log.warning("offline transcription failed: %s", exc)
                await self._emit(TranscriptFailed(item_id, str(exc)))
                continue
            respond = self._answers.pop(item_id, None)
            if respond is None and not self.holds_spoken_turns:
                respond = True
            if transcript and respond is None:
                self._held[item_id] = transcript  # before the event: the answer may be quick
            await self._emit(TranscriptCompleted(item_id, transcript))
            if transcript and respond:  # noise the VAD let through: no words, no turn
                await self._answer(item_id, transcript)

    def hold_spoken_turns(self) -> bool:
        self.holds_spoken_turns = True
        return True

    async def answer_input(self, item_id: str, respond: bool) -> None:
        self._check_open()
        transcript = self._held.pop(item_id, None)
        if transcript is None:
            self._answers[item_id] = respond  # its transcript is still being made
            while len(self._answers) > self._config.pending_utterances * 4:
                del self._answers[next(iter(self._answers))]  # bounded: oldest first
        elif respond:
            await self._answer(item_id, transcript)

    async def _answer(self, item_id: str, transcript: str) -> None:
        self._user_said(ConversationItem(id=item_id, role="user", text=transcript))
        await self._start_response()

    # -- responses --------------------------------------------------------------------

    async def _start_response(self) -> None:
        """Cancel the response in progress (if any) and start a new one."""
        current = self._response
        if current is not None and not current.done.is_set():
            current.scope.cancel()
        response = _Response(self._id("resp"))
        self._response = response
        self._nursery.start_soon(self._run_response, response)

    async def _run_response(self, response: _Response) -> None:
        # The lock orders responses: the previous one's ResponseDone is emitted first.
        async with self._response_lock:
            status: ResponseStatus = "completed"
            reason: str | None = None
            if response.scope.cancel_called:
                # Superseded before it started: a cloud model would never have begun it.
                response.done.set()
                return
            await self._emit(ResponseStarted(response.response_id))
            with response.scope:
                try:
                    reply = self._brain.respond(self._setup, list(self.history))
                except Exception as exc:  # the brain must never take the session down
                    log.exception("offline brain failed")
                    status, reason = "failed", f"offline brain failed: {exc}"
                else:
                    await self._perform(response, reply)
            if response.scope.cancelled_caught:
                status = "cancelled"
                self._keep_heard(response)
            response.done.set()
            await self._emit(ResponseDone(response.response_id, status, None, reason))

    async def _perform(self, response: _Response, reply: BrainReply) -> None:
        if reply.calls:
            items = [
                ConversationItem(
                    id=self._id("item"),
                    role="assistant",
                    type="function_call",
                    name=name,
                    call_id=self._id("call"),
                    arguments=arguments,
                )
                for name, arguments in reply.calls
            ]
            # Every call is recorded before the first is sent: the session runs each
            # tool as soon as it sees the call and may answer it before this task runs
            # again, and the follow-up response must wait for *all* of them.
            for item in items:
                self._outstanding_calls.add(item.call_id or "")
                self._remember(item)
            sent = 0
            try:
                for item in items:
                    await self._emit(
                        FunctionCall(
                            response.response_id,
                            item.id,
                            item.call_id or "",
                            item.name or "",
                            item.arguments or "{}",
                        )
                    )
                    sent += 1
            finally:
                # Cancelled mid-way: calls the session never saw must not hold up the
                # next response (a send that raised sent nothing).
                for item in items[sent:]:
                    self._outstanding_calls.discard(item.call_id or "")
                    if item in self.history:
                        self.history.remove(item)
            return
        await self._stream_text(response, reply.text)

    async def _stream_text(self, response: _Response, text: str) -> None:
        item = ConversationItem(id=self._id("item"), role="assistant", text="")
        response.item = item
        self._remember(item)
        for index, delta in enumerate(word_chunks(text, self._config.words_per_delta)):
            if index and self._config.delta_interval_s:
                await trio.sleep(self._config.delta_interval_s)
            await self._emit(TextDelta(response.response_id, item.id, delta))
            item.text += delta  # only what was sent: a cut keeps no unsent words
        await self._emit(TextDone(response.response_id, item.id, item.text))

    def _keep_heard(self, response: _Response) -> None:
        """After a cut: the assistant item keeps only what the user heard."""
        item = response.item
        heard = response.heard
        if item is None or heard is None or heard.text is None:
            return  # nothing spoken yet, or unknown: keep what was produced
        if heard.text.strip():
            item.text = heard.text
        elif item in self.history:
            self.history.remove(item)


def word_chunks(text: str, words_per_chunk: int) -> list[str]:
    """Split `text` into deltas of a few words that concatenate back to `text` exactly."""
    if not text:
        return []
    words = text.split(" ")
    return [
        " ".join(words[start : start + words_per_chunk])
        + (" " if start + words_per_chunk < len(words) else "")
        for start in range(0, len(words), words_per_chunk)
    ]
