"""The offline model: server VAD + local STT + an injected brain behind `RealtimeModel`.

Rules of this module:

* It speaks exactly the event vocabulary of `voiceagent.events`, in the order a cloud
  Realtime model would: SpeechStarted -> SpeechStopped -> InputCommitted ->
  TranscriptCompleted -> ResponseStarted -> (TextDelta* TextDone | FunctionCall*) ->
  ResponseDone. The session cannot tell it from a cloud model except by its `name`.
* The conversation is a list of `ConversationItem`; the brain reads all of it and
  keeps (almost) no state of its own, so handoffs and barge-in only edit the list.
* The brain is given (`brain_factory`: one `Brain` per conversation); this module imports
  no particular brain, so the models layer never depends on the demo brain or the graph
  (the app passes `voiceagent.brain.OfflineBrain`).
* Every background task lives in the nursery of `connect()`'s block: leaving the block
  cancels pending transcriptions (their worker processes are killed) and the response.

Theory of operation
-------------------
`send_audio()` runs the VAD inline (~0.5 ms per 100 ms of audio, see `speech/vad.py`)
and emits SpeechStarted/SpeechStopped as it goes, so barge-in is never delayed by a
transcription. With `semantic_turn`, a VAD stop is first held for the end-of-turn model
(`offline_turns.py`): speech after a pause that the model judged unfinished continues
the same item. A finished utterance becomes an item (InputCommitted) and goes to one
*turn task* through a small channel: it transcribes utterances one after another (so
transcripts stay in speaking order), appends the user message and asks for a response.

Responses are one at a time. A new response first cancels the one in progress and waits
for it to end (its ResponseDone comes first). A response asks the brain for a reply and
either emits FunctionCalls (and waits for all their outputs before the next response)
or streams the reply text in small word chunks. `cancel_response(heard)` cancels the
response's scope; the response task then cuts the assistant item to `heard.text` and
emits ResponseDone("cancelled"). It never waits for that itself, so it is safe to call
from any task, even one that is also draining the events.

Errors never end the connection: odd audio or text -> ModelError (not fatal); a failed
transcription -> TranscriptFailed; a transcript with no words (noise the VAD let
through) -> TranscriptCompleted("") and no response; a brain exception ->
ResponseDone("failed"). A new user turn drops calls still waiting for outputs (their
tools may have been cancelled by the barge-in); late outputs are still recorded.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

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
    ModelConnectionError,
    OutputMode,
    RealtimeModel,
)
from voiceagent.models.offline_turns import TurnGate, TurnModel, vad_config_for
from voiceagent.speech.availability import check_offline_engines
from voiceagent.speech.stt import Recognizer, SpeechRecognitionError
from voiceagent.speech.turn_detector import SmartTurnDetector
from voiceagent.speech.turn_end import EAGERNESS
from voiceagent.speech.vad import (
    VAD_SAMPLE_RATE,
    SpeechPause,
    SpeechStart,
    SpeechStop,
    VadConfig,
    VadInputError,
    VoiceActivityDetector,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OfflineModelConfig:
    """Offline model settings (proposed env names in the comments)."""

    #: VOICEAGENT_VAD_THRESHOLD / _PREFIX_PADDING_MS / _SILENCE_DURATION_MS
    vad: VadConfig = field(default_factory=VadConfig)
    #: utterances decoded at once in this process (VOICEAGENT_STT_CONCURRENCY)
    stt_concurrency: int = 2
    #: words per TextDelta
    words_per_delta: int = 3
    #: pause between TextDeltas, so the reply streams like a cloud model's (seconds)
    delta_interval_s: float = 0.02
    #: bound on the events waiting for the session to read them
    event_capacity: int = 256
    #: utterances waiting for transcription; more are dropped with an error event
    pending_utterances: int = 4
    #: conversation items kept (oldest dropped first)
    max_history_items: int = 200
    #: longest user text message accepted, in characters
    max_text_chars: int = 4000
    #: after VAD silence, the end-of-turn model decides (VOICEAGENT_TURN_DETECTION=
    #: semantic_vad); VAD-only when the model is not installed
    semantic_turn: bool = False
    #: how soon the model ends a turn (VOICEAGENT_VAD_EAGERNESS; see speech/turn_end.py)
    turn_eagerness: str = "auto"

    def __post_init__(self) -> None:
        if self.stt_concurrency < 1:
            raise ValueError("stt_concurrency must be >= 1")
        if self.words_per_delta < 1:
            raise ValueError("words_per_delta must be >= 1")
        if not 0.0 <= self.delta_interval_s <= 1.0:
            raise ValueError("delta_interval_s must be in [0, 1]")
        if self.turn_eagerness not in EAGERNESS:
            raise ValueError(f"turn_eagerness must be one of {', '.join(EAGERNESS)}")
        for name in ("event_capacity", "pending_utterances", "max_history_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


class OfflineModel(RealtimeModel):
    """VAD + STT + the offline brain; one per app (the recogniser pool is shared)."""

    name = "offline"
    offline_brain = True
    audio_output = False  # it speaks through the local TTS; without one it runs text-only

    def __init__(
        self,
        config: OfflineModelConfig | None = None,
        *,
        brain_factory: Callable[[], Brain],
        recognizer: Recognizer | None = None,
        turn_detector: SmartTurnDetector | None = None,
    ) -> None:
        """`brain_factory` makes each conversation's brain (a brain keeps per-conversation
        state; the app passes `voiceagent.brain.OfflineBrain`, tests their own);
        `recognizer` shares one STT pool between models; `turn_detector` the end-of-turn
        model (loaded on first use when `config.semantic_turn` and not given)."""
        self.config = config or OfflineModelConfig()
        self._recognizer = recognizer
        self._brain_factory = brain_factory
        self._missing: str | None = None  # what the engine check found, once
        self.turn_model = TurnModel(self.config.semantic_turn, turn_detector)

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = Recognizer(self.config.stt_concurrency)
        return self._recognizer

    async def warm_up(self) -> None:
        """Start the recogniser's worker processes and load the VAD (call at app startup;
        ~1-2 s, off the loop except the VAD import). Cancellable."""
        self._check_engines()
        # Imports the VAD and leaves one loaded model in the pool for the first session.
        vad = await trio.to_thread.run_sync(VoiceActivityDetector, self.config.vad)
        vad.close()
        await self.turn_model.get()
        await self.recognizer.warm_up()

    def _check_engines(self) -> None:
        if self._missing is None:
            availability = check_offline_engines()
            self._missing = "" if availability.speech_ok else availability.messages()[0]
        if self._missing:
            raise ModelConnectionError(self._missing, code="model_unavailable")

    def connect(
        self, setup: AgentSetup, *, output: OutputMode
    ) -> AbstractAsyncContextManager[ModelConnection]:
        """Open one conversation; raises `ModelConnectionError` for output="audio" or
        when the offline engines are not installed (the message names the extra)."""
        if output != "text":
            raise ModelConnectionError(
                "the offline model has no voice of its own; it speaks through the local "
                "TTS, so connect it with output='text'",
                code="model_unsupported",
            )
        self._check_engines()
        return self._open(setup)

    @asynccontextmanager
    async def _open(self, setup: AgentSetup) -> AsyncIterator[ModelConnection]:
        brain = self._brain_factory()
        detector = await self.turn_model.get()
        vad = VoiceActivityDetector(vad_config_for(self.config.vad, detector is not None))
        try:
            async with trio.open_nursery() as nursery:
                connection = _OfflineConnection(
                    self.config, setup, vad, self.recognizer, brain, nursery, detector
                )
                nursery.start_soon(connection.run_turns)
                try:
                    yield connection
                finally:
                    connection.close()
                    nursery.cancel_scope.cancel()
        finally:
            vad.close()  # after the nursery: no task of this connection can feed it now


class _Response:
    """One response in flight: its ids, scope, and what the user heard if cut."""

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self.scope = trio.CancelScope()
        self.done = trio.Event()
        self.heard: Heard | None = None
        self.item: ConversationItem | None = None


class _OfflineConnection(ModelConnection):
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
        self._utterances_tx, self._utterances_rx = trio.open_memory_channel[tuple[str, SpeechStop]](
            config.pending_utterances
        )
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

    async def _end_of_speech(self, stop: SpeechStop) -> None:
        item_id = self._speech_item or self._id("item")
        self._speech_item = None
        await self._emit(SpeechStopped(stop.audio_end_ms, item_id))
        await self._emit(InputCommitted(item_id))
        try:
            self._utterances_tx.send_nowait((item_id, stop))
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
        async for item_id, stop in self._utterances_rx:
            try:
                transcript = await self._recognizer.transcribe(stop.audio, VAD_SAMPLE_RATE)
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
