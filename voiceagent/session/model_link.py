"""The session's link to its speech model: lazy connect, reconnect, idle close, pumps.

Rules:
1. Lazy: nothing is opened until the first audio or text (`start()`); an idle room
   costs only its socket and a few objects.
2. Inbound audio has one owner, the `AudioBatcher` (audio_batch.py): the reader
   appends frames and each ~100 ms batch goes to the `audio` channel (full: the
   newest batch is dropped and counted). The audio pump sends batches and commits
   to the provider in order, and flushes a batch the client stopped filling once it
   is 1.5 batch periods old. One channel hop and one provider append per batch, not
   per 20 ms frame.
3. Everything else for the provider is a typed control message (`SendText`,
   `ToolOutput`, `UpdateAgent`, `CancelResponse`, `AnswerInput`) on one small `control` channel,
   sent in order by the control pump, so the reader never waits for the provider.
4. A model that goes quiet (no response after a request, or a response that stops
   mid-way) is given up on by the deadlines of deadlines.py; the connection stays.
5. A failed or dropped connection becomes one `error` event and ends the responses
   it left open. The input it did not take (a typed message, audio, tool outputs)
   is dropped with that error, never sent later next to a new turn. The link then
   connects again only on new input, and not before a pause that doubles with each
   failure in a row (`VOICEAGENT_MODEL_RECONNECT_BACKOFF_S`, at most
   `VOICEAGENT_MODEL_RECONNECT_MAX_S`, with jitter so rooms do not retry in step).
   A connection with no input for `model_idle_timeout_s`, and nothing audible, is
   closed quietly; input that arrives meanwhile goes to the next connection.

Cancellation: the session's work scope cancels the model loop; leaving the
connection's `async with` closes the provider connection within a bounded time.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Protocol

import trio

from voiceagent import metrics
from voiceagent.conversation import AgentSetup, Heard, replayable
from voiceagent.events import ModelEvent
from voiceagent.logs import log_event
from voiceagent.models.base import ModelConnection, ModelConnectionError
from voiceagent.protocol import error_event
from voiceagent.session.audio_batch import AudioBatcher, InputActivity
from voiceagent.session.deadlines import TIMEOUT_CODE, ModelWatch
from voiceagent.session.room import Room

log = logging.getLogger("voiceagent.session")

CONTROL_CAPACITY = 32


@dataclass(frozen=True, slots=True)
class SendText:
    """A typed user message; the model answers it."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A function call's output; `respond` asks for the follow-up response."""

    call_id: str
    output: str
    respond: bool = True


@dataclass(frozen=True, slots=True)
class UpdateAgent:
    """A handoff: the new agent's instructions and tools."""

    setup: AgentSetup


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """A barge-in: stop the response and keep only what the user heard."""

    heard: Heard


@dataclass(frozen=True, slots=True)
class AnswerInput:
    """A held spoken turn (interruptions.py): answer it, or forget it."""

    item_id: str
    respond: bool


Control = SendText | ToolOutput | UpdateAgent | CancelResponse | AnswerInput


class EventSink(Protocol):
    """Where model events go (responses.py), passed to `start()` and held by its task."""

    async def on_event(self, ev: ModelEvent) -> None: ...

    async def abandon_responses(self) -> None: ...


class ModelLink:
    audio: AudioBatcher  # from start() on
    _control_tx: trio.MemorySendChannel[Control]
    _control_rx: trio.MemoryReceiveChannel[Control]

    def __init__(self, room: Room) -> None:
        self._room = room
        self.started = False
        self.connection: ModelConnection | None = None
        self.activity = InputActivity()  # when the client last sent audio or text
        self._watch: ModelWatch | None = None  # of the open connection

    @property
    def awaiting_model(self) -> bool:
        """A response was asked for and has not ended (a drain waits for it)."""
        watch = self._watch
        return watch is not None and (watch.requested_at is not None or watch.in_response)

    def start(self, sink: EventSink) -> None:
        """Open the input channels and start the model loop in the session's work."""
        room = self._room
        assert room.work is not None and not self.started
        self.started = True
        settings = room.settings
        self.audio = AudioBatcher(
            settings.audio_batch_ms, settings.ws_incoming_audio_max, room.tally, self.activity
        )
        self._control_tx, self._control_rx = trio.open_memory_channel[Control](CONTROL_CAPACITY)
        room.work.start_soon(self._model_loop, sink)

    def audio_depth(self) -> int:
        return self.audio.depth() if self.started else 0

    def request(self, message: Control) -> bool:
        """Queue a message the client asked for; False when the control channel is full."""
        try:
            self._control_tx.send_nowait(message)
        except trio.WouldBlock:
            return False
        self.activity.note()
        return True

    def send_nowait(self, message: Control) -> bool:
        """Queue a message of the server's own (no new input); False when full."""
        try:
            self._control_tx.send_nowait(message)
        except trio.WouldBlock:
            return False
        return True

    async def send(self, message: Control) -> None:
        await self._control_tx.send(message)

    # -- the connection ---------------------------------------------------------------

    async def _model_loop(self, sink: EventSink) -> None:
        """Keep a provider connection while there is input; reconnect lazily (rule 5)."""
        room = self._room
        model = room.services.model
        assert model is not None
        failures = 0
        retry_at = 0.0
        while True:
            await trio.sleep_until(retry_at)
            started = time.monotonic()
            failure: ModelConnectionError | None = None
            try:
                setup = room.agent.setup()
                async with model.connect(setup, output=room.services.output_mode) as conn:
                    metrics.observe_provider(model.name, "connect", time.monotonic() - started)
                    failures = 0
                    await self._serve(conn, sink)
            except* ModelConnectionError as group:
                # Providers' own nurseries wrap their errors in groups; one is enough.
                failure = _first(group)
            if failure is not None:
                failures += 1
                retry_at = trio.current_time() + self._backoff(failures)
                dropped = self._drop_pending()
                log_event(
                    log,
                    "model_failed",
                    level=logging.WARNING,
                    code=failure.code,
                    error=str(failure),
                    detail=failure.detail,
                    dropped_input=dropped,
                )
                metrics.count_error(failure.code)
                await room.put(error_event(failure.code, str(failure)))
                await sink.abandon_responses()
            # Lazy: reconnect only when the user says or sends something new.
            if not (self.audio.waiting() or self._control_rx.statistics().current_buffer_used):
                await self.activity.arrived.wait()

    def _backoff(self, failures: int) -> float:
        """Capped exponential pause after `failures` failures in a row, with jitter."""
        settings = self._room.settings
        pause = settings.model_reconnect_backoff_s * 2 ** min(failures - 1, 16)
        return min(settings.model_reconnect_max_s, pause) * random.uniform(0.5, 1.0)

    def _drop_pending(self) -> int:
        """Forget input the failed connection did not take (rule 5); returns how much.

        It has had its error: sending it with the user's next turn would answer a
        question the user has given up on, next to the new one.
        """
        dropped = self.audio.discard()
        while True:
            try:
                self._control_rx.receive_nowait()
            except trio.WouldBlock:
                return dropped
            dropped += 1

    async def _serve(self, conn: ModelConnection, sink: EventSink) -> None:
        registry = self._room.services.registry
        settings = self._room.settings
        watch = ModelWatch(settings.model_first_event_timeout_s, settings.model_stall_timeout_s)
        conn.hold_spoken_turns()  # the session decides turns (interruptions.py)
        self.connection, self._watch = conn, watch
        registry.model_opened()
        try:
            if self._room.resumed:  # resume.py: the conversation so far, before any input
                await conn.add_history(replayable(list(self._room.resumed)))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump_audio, conn, watch)
                nursery.start_soon(self._pump_control, conn, watch)
                nursery.start_soon(self._close_when_idle, nursery.cancel_scope)
                nursery.start_soon(self._watch_deadlines, conn, watch, sink)
                on_event, saw = sink.on_event, watch.saw
                try:
                    async for model_event in conn:
                        saw(model_event)
                        await on_event(model_event)
                    raise ModelConnectionError(
                        "the model closed the connection", code="model_closed"
                    )
                except BaseException:
                    # Stop the pumps from here, not from the nursery's exit: Trio's exit
                    # would cancel them from a frame that keeps the exception group it
                    # returns, and every Cancelled it delivers would hold that frame (a
                    # reference cycle of ~300 objects per provider drop).
                    nursery.cancel_scope.cancel()
                    raise
            # Only the idle watch cancels this nursery: a quiet close, not an error.
        finally:
            self.connection = self._watch = None
            registry.model_closed()

    async def _watch_deadlines(
        self, conn: ModelConnection, watch: ModelWatch, sink: EventSink
    ) -> None:
        """Give up on a response the model does not deliver in time (rule 4)."""
        while True:
            watch.changed = changed = trio.Event()
            deadline = watch.deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await changed.wait()
            stage = watch.expired()
            if stage is not None:
                await self._give_up(conn, stage, sink)

    async def _give_up(self, conn: ModelConnection, stage: str, sink: EventSink) -> None:
        room = self._room
        settings = room.settings
        if stage == "stall":
            limit = settings.model_stall_timeout_s
            message = f"the model stopped mid-response for {limit:g} s"
        else:
            limit = settings.model_first_event_timeout_s
            message = f"the model did not start a response within {limit:g} s"
        log_event(log, TIMEOUT_CODE, level=logging.WARNING, stage=stage, limit_s=limit)
        metrics.count_error(TIMEOUT_CODE)
        await room.put(error_event(TIMEOUT_CODE, message))
        response = room.turns.current
        now = trio.current_time()
        if response is not None and not response.model_done:
            heard = response.heard(now)
        else:
            heard = Heard(response_id="")
        with trio.move_on_after(settings.teardown_timeout_s):
            await conn.cancel_response(heard)  # the provider may be stuck: bounded
        await sink.abandon_responses()

    async def _close_when_idle(self, scope: trio.CancelScope) -> None:
        idle = self._room.settings.model_idle_timeout_s
        activity, turns = self.activity, self._room.turns
        while True:
            await trio.sleep_until(activity.last + idle)
            now = trio.current_time()
            if now >= activity.last + idle and turns.audible(now) is None:
                log_event(log, "model_idle_close")
                scope.cancel()
                return

    async def _pump_audio(self, conn: ModelConnection, watch: ModelWatch) -> None:
        """Send audio batches and commits to the provider, in arrival order (rule 2)."""
        batcher = self.audio
        receive = batcher.rx.receive
        while True:
            due = batcher.flush_due()
            if due is not None:
                with trio.move_on_at(due) as waited:
                    item = await receive()
                if waited.cancelled_caught:
                    batcher.flush()  # the client stopped filling it: send what there is
                    continue
            else:
                item = await receive()
            if item is None:
                await conn.commit_audio()
                watch.requested()
            else:
                await conn.send_audio(item)

    async def _pump_control(self, conn: ModelConnection, watch: ModelWatch) -> None:
        async for message in self._control_rx:
            match message:
                case SendText(text):
                    await conn.send_text(text)
                    watch.requested()
                case ToolOutput(call_id, output, respond):
                    await conn.send_tool_result(call_id, output, respond=respond)
                    if respond:
                        watch.requested()
                case UpdateAgent(setup):
                    await conn.update_agent(setup)
                case CancelResponse(heard):
                    await conn.cancel_response(heard)
                case AnswerInput(item_id, respond):
                    await conn.answer_input(item_id, respond)


def _first(group: BaseExceptionGroup[ModelConnectionError]) -> ModelConnectionError:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, ModelConnectionError)
    return error
