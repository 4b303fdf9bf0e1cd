"""One browser connection = one `Session` = one Trio nursery.

Task tree (every task has this session as its owner; nothing outlives `run()`):

    run()
    ├── writer                     the only task that sends on the socket (outbox.py)
    └── work nursery (cancel scope: close() cancels it, the writer finishes last)
        ├── reader                 parses client messages; never blocks on audio
        ├── model loop             lazy: started by the first audio or text
        │   └── connection nursery: audio pump, control pump, idle watch, events
        ├── speak(response)        one per response with TTS, in the response's scope
        └── tool call              one per function call, in its own scope

Inbound audio: the reader appends frames to a pending buffer and hands each ~100 ms
batch (`VOICEAGENT_AUDIO_BATCH_MS`) to the `audio` channel (fixed capacity; when full
the newest batch is dropped and counted) → audio pump → provider. Batching in the
reader means one channel hop and one provider append per batch, not per 20 ms frame.
A commit travels in the same channel, behind the audio it commits. Other control
(text, tool outputs, handoffs, cancels) goes through a small `control` channel to the
control pump, so the reader never waits for the provider.

Cancellation: the client closing the socket cancels `run()` from outside; `close()`
(replacement, slow client, abusive client) cancels the work scope, lets the writer
send what is queued for a bounded time, then closes the socket with its code. A
barge-in cancels only the speaking responses' scopes and the tool calls marked
`cancel_on_interrupt` (turns.py and outbox.py say what reaches the client).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from typing import Any

import trio

from voiceagent import metrics
from voiceagent.conversation import Heard
from voiceagent.events import (
    AudioDelta,
    FunctionCall,
    InputCommitted,
    ModelError,
    ModelEvent,
    RateLimits,
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
from voiceagent.graph import (
    Agent,
    GuardrailMonitor,
    Handoff,
    ToolContext,
    ToolResult,
    run_tool,
)
from voiceagent.logs import bind_session, log_event
from voiceagent.models.base import ModelConnection, ModelConnectionError, OutputMode
from voiceagent.protocol import (
    AudioIn,
    ClientMessage,
    ClientMetrics,
    ClientVadSpeechStart,
    CommitAudio,
    Interrupt,
    Playback,
    ProtocolError,
    TextIn,
    chunk_pcm,
    error_event,
    event,
    parse_client_message,
    session_started,
)
from voiceagent.session.outbox import Outbox, SlowClient
from voiceagent.session.services import ClientDisconnected, ClientSocket, Services
from voiceagent.session.turns import Response, Turns
from voiceagent.tts.base import TTSConnection, TTSError, WordTiming

log = logging.getLogger("voiceagent.session")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_TRY_AGAIN = 1013

# The `error` code a client gets just before the socket closes with a given code.
_CLOSE_ERRORS = {1001: "server_shutting_down", 1008: "too_many_errors", 1012: "replaced"}

ERROR_WINDOW_S = 10.0
CONTROL_CAPACITY = 32
TEXT_TO_TTS_CAPACITY = 1024
HISTORY_MAX_ITEMS = 200
RECONNECT_BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 5.0)
BYTES_PER_MS = 48  # PCM16 mono at 24 kHz


class Session:
    # Model input channels, opened by the first audio or text (`_ensure_model`).
    _audio_tx: trio.MemorySendChannel[bytes | None]  # None: commit the audio sent so far
    _audio_rx: trio.MemoryReceiveChannel[bytes | None]
    _control_tx: trio.MemorySendChannel[tuple[Any, ...]]
    _control_rx: trio.MemoryReceiveChannel[tuple[Any, ...]]

    def __init__(self, session_id: str, socket: ClientSocket, services: Services) -> None:
        self.session_id = session_id
        self._socket = socket
        self._services = services
        settings = services.settings
        self._settings = settings
        self._limits = services.limits
        self._outbox = Outbox(settings.ws_outgoing_max, settings.ws_send_timeout_s)
        self._work_scope = trio.CancelScope()
        self._work: trio.Nursery | None = None
        self._close_code = CLOSE_NORMAL
        self._close_reason = ""
        self._errors: deque[float] | None = None  # times of recent bad messages (lazy)
        self._audio_pending = bytearray()  # frames not yet handed to the audio pump
        self._pending_since = 0.0  # when the first of them arrived
        self._batch_bytes = settings.audio_batch_ms * BYTES_PER_MS
        self._agent: Agent = services.agent
        self._tool_context = ToolContext(session_id=session_id, state={})
        self._turns = Turns()
        self._model_started = False
        self._conn: ModelConnection | None = None
        self._input_arrived = trio.Event()
        self._last_input = trio.current_time()
        self._tts_conn: TTSConnection | None = None
        self._tts_ready: trio.Event | None = None
        self._speaker = trio.Lock()  # responses speak one after another, in order
        self._timer: metrics.TurnTimer | None = None
        self._tally = metrics.TrafficTally(
            {
                "audio_in": lambda: (
                    self._audio_rx.statistics().current_buffer_used if self._model_started else 0
                ),
                "outbox": self._outbox.depth,
            }
        )
        self._history: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._tool_scopes: dict[str, trio.CancelScope] = {}
        self._interruptible_calls: set[str] = set()  # running tools with cancel_on_interrupt
        self._speaking = False  # the model heard the user start and not yet stop
        self.finished = trio.Event()

    # -- lifetime ---------------------------------------------------------------------

    @property
    def output_mode(self) -> OutputMode:
        """Text when a TTS voices replies (or the model cannot speak), else the model's audio."""
        model = self._services.model
        if self._services.tts is not None or model is None or not model.audio_output:
            return "text"
        return "audio"

    async def run(self) -> None:
        """Serve the connection until the client leaves or `close()` is called."""
        registry = self._services.registry
        with bind_session(self.session_id):
            registry.register(self)
            log_event(log, "session_open", model=self._model_name, tts=self._tts_name)
            try:
                await self._run()
            except Exception:
                # A bug must end this session only, loudly, and never the process.
                log.exception("session crashed")
                self._close_code, self._close_reason = CLOSE_INTERNAL, "internal error"
                with trio.move_on_after(self._settings.teardown_timeout_s):
                    try:
                        await self._socket.close(CLOSE_INTERNAL, "internal error")
                    except Exception:
                        log.debug("close after crash failed", exc_info=True)
            finally:
                registry.unregister(self)
                self._user_speaking(False)
                self._tally.close()
                self.finished.set()
                log_event(
                    log,
                    "session_closed",
                    code=self._close_code,
                    reason=self._close_reason or None,
                    dropped=self._outbox.stats.dropped,
                )

    async def _run(self) -> None:
        teardown = self._settings.teardown_timeout_s
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write)
            self._outbox.urgent(
                session_started(
                    session_id=self.session_id,
                    model=self._model_name,
                    tts=self._tts_name,
                    agent=self._agent.name,
                    offline_brain=bool(getattr(self._services.model, "offline_brain", False)),
                    limits=self._limits,
                )
            )
            self._outbox.urgent(event("agent_start", agent=self._agent.name))
            client_gone = False
            with self._work_scope:
                async with trio.open_nursery() as work:
                    self._work = work
                    try:
                        await self._read_loop()  # in this task: one task fewer per room
                    except ClientDisconnected:
                        # A normal end: our own scopes stop our own tasks, and nothing
                        # is raised into the framework.
                        client_gone = True
                        work.cancel_scope.cancel()
            # The reader ended or close() was called: nothing new will be queued.
            if client_gone:
                self._close_reason = self._close_reason or "client left"
                nursery.cancel_scope.cancel()  # nobody is left to write to
            else:
                if self._close_code == CLOSE_TRY_AGAIN:
                    self._outbox.drain_nowait()
                self._outbox.close()  # the writer sends what is queued, then ends
                nursery.cancel_scope.deadline = trio.current_time() + teardown
        if client_gone:
            return
        with trio.move_on_after(teardown):
            try:
                await self._socket.close(self._close_code, self._close_reason)
            except Exception:  # the client may already be gone; closing is best effort
                log.debug("close failed", exc_info=True)
                return
            # Complete the closing handshake: read (and ignore) what the client still
            # sends until its Close reply arrives (then `receive()` raises
            # ClientDisconnected). Returning at once would drop the TCP connection
            # under a client still streaming audio, and the reset can destroy our Close
            # frame before the browser reads it (it then sees 1006).
            try:
                while True:
                    await self._socket.receive()
            except Exception:  # ClientDisconnected, or the connection broke
                return

    def close(self, code: int, reason: str) -> None:
        """Stop the session: cancel its work; the socket closes with `code`.

        The client first gets an `error` event saying why (except a client too slow
        to read it), so the reason survives even a transport that loses the Close.
        """
        if self._close_code == CLOSE_NORMAL:
            self._close_code, self._close_reason = code, reason
            error_code = _CLOSE_ERRORS.get(code)
            if error_code is not None:
                self._outbox.urgent(error_event(error_code, reason))
        self._work_scope.cancel()

    async def _write(self) -> None:
        send = self._socket.send
        tally = self._tally

        async def send_and_count(message: str | bytes) -> None:
            await send(message)
            tally.frame_out(len(message))

        try:
            await self._outbox.run_writer(send_and_count)
        except Exception as exc:  # the socket broke: the client is gone
            log_event(log, "writer_stopped", level=logging.DEBUG, error=repr(exc))
            self._work_scope.cancel()

    # -- reading the client -----------------------------------------------------------

    async def _read_loop(self) -> None:
        receive = self._socket.receive
        while True:
            data = await receive()
            self._tally.frame_in(len(data))
            try:
                message = parse_client_message(data, self._limits)
            except ProtocolError as exc:
                self._client_error(exc.code, exc.message)
                continue
            self._dispatch(message)

    def _dispatch(self, message: ClientMessage) -> None:
        """Act on one client message without waiting for anything."""
        if isinstance(message, AudioIn):
            if not message.pcm or not self._ensure_model():
                return
            pending = self._audio_pending
            if not pending:
                self._pending_since = trio.current_time()
            pending += message.pcm
            if len(pending) >= self._batch_bytes:
                self._queue_audio()
        elif isinstance(message, TextIn):
            if self._ensure_model():
                self._new_turn().user_text()
                self._control(("text", message.text))
                item_id = f"text_{next(self._ids)}"
                self._history_put(item_id, "user", "message", message.text, "completed", None)
        elif isinstance(message, CommitAudio):
            if self._ensure_model():
                self._new_turn().commit()
                self._queue_audio()
                try:
                    self._audio_tx.send_nowait(None)
                except trio.WouldBlock:
                    self._client_error("busy", "too much audio is waiting for the model")
                    return
                self._note_input()
        elif isinstance(message, Interrupt | ClientVadSpeechStart):
            self._barge_in(type(message).__name__)
        elif isinstance(message, Playback):
            response = self._turns.get(message.response_id)
            if response is not None:
                response.played_ms = max(response.played_ms or 0, message.played_ms)
        elif isinstance(message, ClientMetrics):
            metrics.observe_client_e2e(message.e2e_ms / 1000)

    def _client_error(self, code: str, message: str) -> None:
        metrics.count_error(code)
        now = trio.current_time()
        errors = self._errors
        if errors is None:
            errors = self._errors = deque()
        errors.append(now)
        while errors and errors[0] < now - ERROR_WINDOW_S:
            errors.popleft()
        if len(errors) > self._settings.ws_max_errors:
            log_event(log, "client_abusive", level=logging.WARNING, last_error=code)
            self.close(CLOSE_POLICY, "too many invalid messages")
            return
        # Errors are few (the budget above bounds them), so they may skip the queue.
        self._outbox.urgent(error_event(code, message))

    def _queue_audio(self) -> None:
        """Hand the pending frames to the audio pump as one batch (dropped when full)."""
        pending = self._audio_pending
        if not pending:
            return
        batch = bytes(pending)
        pending.clear()
        try:
            self._audio_tx.send_nowait(batch)
        except trio.WouldBlock:
            self._tally.drop("audio_in")
        self._note_input()

    def _control(self, item: tuple[Any, ...]) -> None:
        try:
            self._control_tx.send_nowait(item)
        except trio.WouldBlock:
            self._client_error("busy", "too many requests are waiting for the model")
            return
        self._note_input()

    def _note_input(self) -> None:
        self._last_input = trio.current_time()
        self._input_arrived.set()

    def _new_turn(self) -> metrics.TurnTimer:
        self._timer = metrics.TurnTimer(self._services.prices)
        return self._timer

    # -- the model connection ---------------------------------------------------------

    @property
    def _model_name(self) -> str:
        model = self._services.model
        return model.name if model is not None else "none"

    @property
    def _tts_name(self) -> str:
        tts = self._services.tts
        return tts.name if tts is not None else "none"

    def _ensure_model(self) -> bool:
        """Start the model loop on first use; False (and an error) without a model."""
        if self._model_started:
            return True
        if self._services.model is None or self._work is None:
            self._client_error("no_provider", self._services.model_problem)
            return False
        self._model_started = True
        # Created on first use: an idle room costs only its socket and a few objects.
        self._audio_tx, self._audio_rx = trio.open_memory_channel[bytes | None](
            self._settings.ws_incoming_audio_max
        )
        self._control_tx, self._control_rx = trio.open_memory_channel[tuple[Any, ...]](
            CONTROL_CAPACITY
        )
        self._work.start_soon(self._model_loop)
        return True

    async def _model_loop(self) -> None:
        """Keep a provider connection while there is input; reconnect lazily.

        A failed or dropped connection becomes an `error` event; the loop then waits
        for the next input (with a growing pause after repeated failures) before it
        connects again. Idle connections are closed after the idle timeout.
        """
        model = self._services.model
        assert model is not None
        failures = 0
        while True:
            if failures:
                await trio.sleep(RECONNECT_BACKOFF_S[min(failures, len(RECONNECT_BACKOFF_S) - 1)])
            started = time.monotonic()
            failure: ModelConnectionError | None = None
            try:
                async with model.connect(self._agent.setup(), output=self.output_mode) as conn:
                    metrics.observe_provider(model.name, "connect", time.monotonic() - started)
                    failures = 0
                    await self._serve_connection(conn)
            except* ModelConnectionError as group:
                # Providers' own nurseries wrap their errors in groups; one is enough.
                failure = _first(group)
            if failure is not None:
                failures += 1
                log_event(
                    log,
                    "model_failed",
                    level=logging.WARNING,
                    code=failure.code,
                    error=str(failure),
                )
                metrics.count_error(failure.code)
                await self._put(error_event(failure.code, str(failure)))
                await self._abandon_responses()
            # Lazy: reconnect only when the user says or sends something new.
            if not self._pending_input():
                self._input_arrived = trio.Event()
                await self._input_arrived.wait()

    def _pending_input(self) -> bool:
        return bool(
            self._audio_pending
            or self._audio_rx.statistics().current_buffer_used
            or self._control_rx.statistics().current_buffer_used
        )

    async def _serve_connection(self, conn: ModelConnection) -> None:
        registry = self._services.registry
        self._conn = conn
        registry.model_opened()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump_audio, conn)
                nursery.start_soon(self._pump_control, conn)
                nursery.start_soon(self._close_when_idle, nursery.cancel_scope)
                async for model_event in conn:
                    await self._on_model_event(model_event)
                raise ModelConnectionError("the model closed the connection", code="model_closed")
            # Only the idle watch cancels this nursery: a quiet close, not an error.
        finally:
            self._conn = None
            registry.model_closed()

    async def _close_when_idle(self, scope: trio.CancelScope) -> None:
        idle = self._settings.model_idle_timeout_s
        while True:
            await trio.sleep_until(self._last_input + idle)
            now = trio.current_time()
            if now >= self._last_input + idle and self._turns.audible(now) is None:
                log_event(log, "model_idle_close")
                scope.cancel()
                return

    async def _pump_audio(self, conn: ModelConnection) -> None:
        """Send audio batches and commits to the provider, in arrival order.

        A batch the client stopped filling (the user muted, the page went away) is
        sent as it is once it is 1.5 batch periods old, so no audio waits for ever.
        """
        receive = self._audio_rx.receive
        flush_after = 1.5 * self._settings.audio_batch_ms / 1000
        while True:
            if self._audio_pending:
                with trio.move_on_at(self._pending_since + flush_after) as waited:
                    item = await receive()
                if waited.cancelled_caught:
                    self._queue_audio()
                    continue
            else:
                item = await receive()
            if item is None:
                await conn.commit_audio()
            else:
                await conn.send_audio(item)

    async def _pump_control(self, conn: ModelConnection) -> None:
        async for item in self._control_rx:
            kind = item[0]
            if kind == "text":
                await conn.send_text(item[1])
            elif kind == "tool":
                await conn.send_tool_result(item[1], item[2], respond=item[3])
            elif kind == "agent":
                await conn.update_agent(item[1])
            elif kind == "cancel":
                await conn.cancel_response(item[1])

    # -- model events -----------------------------------------------------------------

    async def _on_model_event(self, ev: ModelEvent) -> None:
        if isinstance(ev, TextDelta):
            await self._on_text_delta(ev)
        elif isinstance(ev, AudioDelta):
            await self._on_audio_delta(ev)
        elif isinstance(ev, ResponseStarted):
            await self._on_response_started(ev)
        elif isinstance(ev, TextDone):
            response = self._turns.get(ev.response_id)
            if response is not None:
                response.text = ev.text or response.text
                response.item_id = response.item_id or ev.item_id
                self._end_tts_text(response)
                self._history_put(
                    ev.item_id, "assistant", "message", response.text, "completed", response.agent
                )
            await self._put(
                event("text_done", response_id=ev.response_id, item_id=ev.item_id, text=ev.text)
            )
        elif isinstance(ev, ResponseDone):
            await self._on_response_done(ev)
        elif isinstance(ev, FunctionCall):
            await self._on_function_call(ev)
        elif isinstance(ev, SpeechStarted):
            self._user_speaking(True)
            await self._put(event("input_speech_started", audio_start_ms=ev.audio_start_ms))
            self._barge_in("model_vad")
        elif isinstance(ev, SpeechStopped):
            self._user_speaking(False)
            self._new_turn().speech_end()
            await self._put(event("input_speech_stopped", audio_end_ms=ev.audio_end_ms))
        elif isinstance(ev, InputCommitted):
            self._history_put(ev.item_id, "user", "message", "", "in_progress", None)
        elif isinstance(ev, TranscriptDelta):
            self._outbox.post(event("user_transcript_delta", item_id=ev.item_id, delta=ev.delta))
        elif isinstance(ev, TranscriptCompleted):
            if self._timer is not None:
                self._timer.transcript_final()
            await self._put(event("user_transcript", item_id=ev.item_id, text=ev.transcript))
            self._history_put(ev.item_id, "user", "message", ev.transcript, "completed", None)
        elif isinstance(ev, TranscriptFailed):
            await self._put(error_event("transcription_failed", ev.message))
            self._history_put(ev.item_id, "user", "message", "", "failed", None)
        elif isinstance(ev, ModelError):
            metrics.count_error(ev.code)
            log_event(log, "model_error", level=logging.WARNING, code=ev.code, error=ev.message)
            await self._put(error_event(ev.code, ev.message))
            if ev.fatal:
                raise ModelConnectionError(ev.message, code=ev.code)
        elif isinstance(ev, RateLimits):
            pass  # providers report them at every response; nothing for the client

    def _user_speaking(self, speaking: bool) -> None:
        if speaking != self._speaking:
            self._speaking = speaking
            metrics.SESSIONS_SPEAKING.inc() if speaking else metrics.SESSIONS_SPEAKING.dec()

    async def _on_response_started(self, ev: ResponseStarted) -> None:
        response = self._turns.begin(ev.response_id, self._agent.name)
        self._outbox.begin_epoch(self._turns.epoch)
        if self._timer is None:
            self._new_turn().response_requested()
        # Every response until the user's next input (a tool call's follow-up, the
        # new agent's answer after a handoff) belongs to the same turn and timer.
        response.timer = self._timer
        if self._agent.output_guardrails:
            response.guardrails = GuardrailMonitor(self._agent.output_guardrails)
        await self._put(event("response_start", response_id=ev.response_id, agent=response.agent))
        if self._services.tts is not None and self._work is not None:
            text_tx, text_rx = trio.open_memory_channel[str](TEXT_TO_TTS_CAPACITY)
            response.text_tx = text_tx
            response.tts_scope = trio.CancelScope()
            self._work.start_soon(self._speak, response, text_rx)
        else:
            response.speech_done = True

    async def _on_text_delta(self, ev: TextDelta) -> None:
        response = self._turns.get(ev.response_id)
        if response is None or response.interrupted:
            return  # text of a response the user already cut off
        response.item_id = response.item_id or ev.item_id
        response.text += ev.delta
        if response.timer is not None:
            response.timer.model_first_text()
        self._outbox.post(
            event("text_delta", response_id=ev.response_id, item_id=ev.item_id, delta=ev.delta)
        )
        if response.guardrails is not None:
            tripped = response.guardrails.feed(ev.delta)
            if tripped is not None:
                await self._trip_guardrail(response, tripped)
                return
        if response.text_tx is not None:
            if response.timer is not None:
                response.timer.tts_first_text()
            try:
                await response.text_tx.send(ev.delta)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the TTS stopped (failed or cancelled); the text still reached the UI

    async def _on_audio_delta(self, ev: AudioDelta) -> None:
        response = self._turns.get(ev.response_id)
        if response is None or response.interrupted:
            return
        response.item_id = response.item_id or ev.item_id
        await self._send_audio(response, ev.pcm)

    async def _on_response_done(self, ev: ResponseDone) -> None:
        response = self._turns.get(ev.response_id)
        if response is not None:
            response.model_done = True
            if ev.usage is not None and response.timer is not None:
                response.timer.usage(ev.usage)
            if response.guardrails is not None and not response.interrupted:
                tripped = response.guardrails.finish()
                if tripped is not None:
                    await self._trip_guardrail(response, tripped)
            self._end_tts_text(response)
        await self._put(event("response_done", response_id=ev.response_id, status=ev.status))
        if response is not None and response.speech_done:
            await self._finish_response(response)

    async def _abandon_responses(self) -> None:
        """The provider went away mid-response: end what it left open."""
        response = self._turns.current
        if response is not None and not response.model_done:
            response.model_done = True
            self._end_tts_text(response)
            await self._put(
                event("response_done", response_id=response.response_id, status="failed")
            )

    def _end_tts_text(self, response: Response) -> None:
        if response.text_tx is not None:
            response.text_tx.close()

    async def _finish_response(self, response: Response) -> None:
        """Both the model and the voice are done with `response`: report its metrics."""
        if response.reported:
            return
        response.reported = True
        if response.audio_bytes and not response.interrupted:
            await self._put(
                event("audio_end", response_id=response.response_id, audio_ms=response.audio_ms),
                epoch=response.epoch,
            )
        # Responses that only called tools said nothing: no turn figures for them.
        if response.timer is not None and (response.text or response.audio_bytes):
            report = response.timer.report(response.response_id, self._tally.dropped)
            self._outbox.post(event(report.pop("type"), **report))

    # -- speaking ---------------------------------------------------------------------

    async def _speak(self, response: Response, text: trio.MemoryReceiveChannel[str]) -> None:
        """Voice one response, after the ones before it, inside its cancel scope."""
        assert response.tts_scope is not None
        with response.tts_scope:
            async with self._speaker:
                conn = await self._tts_connection()
                sink = _ResponseSink(self, response)
                tts_name = self._tts_name
                try:
                    await conn.synthesize(text, sink, response_id=response.response_id)
                except TTSError as exc:
                    metrics.count_error(exc.code)
                    log_event(
                        log, "tts_failed", level=logging.WARNING, code=exc.code, error=str(exc)
                    )
                    await self._put(error_event(exc.code, f"{tts_name}: {exc}"))
        response.speech_done = True
        if response.model_done and not response.interrupted:
            await self._finish_response(response)

    async def _tts_connection(self) -> TTSConnection:
        """The session's TTS connection, opened on first use by a holder task."""
        if self._tts_ready is None:
            assert self._work is not None
            self._tts_ready = trio.Event()
            self._work.start_soon(self._hold_tts)
        await self._tts_ready.wait()
        assert self._tts_conn is not None
        return self._tts_conn

    async def _hold_tts(self) -> None:
        tts = self._services.tts
        assert tts is not None and self._tts_ready is not None
        async with tts.connect() as conn:
            if hasattr(conn, "on_fallback"):
                conn.on_fallback = self._tts_fell_back  # FallbackTTS: tell the client
            self._tts_conn = conn
            self._tts_ready.set()
            await trio.sleep_forever()  # until the session's work is cancelled

    def _tts_fell_back(self, error: TTSError) -> None:
        metrics.count_error(error.code)
        log_event(log, "tts_fallback", level=logging.WARNING, code=error.code, error=str(error))
        self._outbox.urgent(error_event(error.code, f"{error}; speaking with the local voice"))

    async def _send_audio(self, response: Response, pcm: bytes) -> None:
        if response.interrupted or not pcm:
            return
        arrived = trio.current_time()
        timer = response.timer
        if response.first_audio_at is None:
            response.first_audio_at = trio.current_time()
            if timer is not None:
                timer.tts_first_audio()
            await self._put(
                event("audio_start", response_id=response.response_id, sample_rate=24000),
                epoch=response.epoch,
            )
        for chunk in chunk_pcm(pcm, self._settings.ws_tts_chunk_bytes):
            await self._put(chunk, epoch=response.epoch, arrived=arrived)
            if response.interrupted:
                return
            response.audio_bytes += len(chunk)
        if timer is not None:
            timer.first_audio_sent()

    # -- barge-in ---------------------------------------------------------------------

    def _barge_in(self, source: str) -> None:
        """Stop what the user is hearing; keep only what they heard. Never waits."""
        now = trio.current_time()
        for call_id in self._interruptible_calls:
            self._tool_scopes[call_id].cancel()
        speaking = self._turns.interrupt(now)
        if not speaking:
            return
        current = speaking[-1]
        self._outbox.interrupt(
            event(
                "audio_interrupted",
                response_id=current.response_id,
                played_ms=current.estimated_played_ms(now),
            )
        )
        for response in speaking:
            if response.tts_scope is not None:
                response.tts_scope.cancel()
            self._end_tts_text(response)
        heard = current.heard(now)
        log_event(
            log,
            "barge_in",
            source=source,
            response_id=current.response_id,
            played_ms=heard.audio_ms,
        )
        if self._conn is not None:
            try:
                self._control_tx.send_nowait(("cancel", heard))
            except trio.WouldBlock:
                log_event(log, "cancel_not_queued", level=logging.WARNING)
        if current.item_id is not None:
            self._history_put(
                current.item_id,
                "assistant",
                "message",
                heard.text or "",
                "interrupted",
                current.agent,
            )

    async def _trip_guardrail(self, response: Response, tripped: Any) -> None:
        """An output guardrail fired: cut the response and say the safe line instead."""
        name = getattr(tripped, "guardrail", None) or getattr(tripped, "name", "guardrail")
        safe_line = self._agent.guardrail_safe_line
        self._barge_in("guardrail")
        response.guardrails = None
        await self._put(
            event(
                "guardrail_tripped",
                guardrail=str(name),
                response_id=response.response_id,
                message=str(getattr(tripped, "message", "") or ""),
            )
        )
        safe_id = f"{response.response_id}_safe"
        safe = self._turns.begin(safe_id, response.agent)
        self._outbox.begin_epoch(self._turns.epoch)
        safe.model_done = True
        safe.text = safe_line
        item_id = f"item_safe_{next(self._ids)}"
        await self._put(event("response_start", response_id=safe_id, agent=safe.agent))
        await self._put(event("text_done", response_id=safe_id, item_id=item_id, text=safe_line))
        self._history_put(item_id, "assistant", "message", safe_line, "completed", safe.agent)
        if self._conn is not None:
            heard = Heard(response.response_id, response.item_id, 0, safe_line)
            await self._control_tx.send(("cancel", heard))
        if self._services.tts is not None and self._work is not None:
            text_tx, text_rx = trio.open_memory_channel[str](1)
            text_tx.send_nowait(safe_line)
            text_tx.close()
            safe.tts_scope = trio.CancelScope()
            self._work.start_soon(self._speak, safe, text_rx)
        else:
            safe.speech_done = True
        await self._put(event("response_done", response_id=safe_id, status="completed"))

    # -- tools and handoffs -----------------------------------------------------------

    async def _on_function_call(self, call: FunctionCall) -> None:
        tool = self._agent.resolve(call.name)
        self._history_put(
            call.item_id or call.call_id,
            "assistant",
            "function_call",
            call.arguments,
            "completed",
            self._agent.name,
            name=call.name,
        )
        if isinstance(tool, Handoff):
            await self._hand_off(call, tool)
            return
        await self._put(
            event(
                "tool_start",
                call_id=call.call_id,
                name=call.name,
                arguments=call.arguments,
                agent=self._agent.name,
            )
        )
        assert self._work is not None
        scope = trio.CancelScope()
        self._tool_scopes[call.call_id] = scope
        if tool is not None and tool.cancel_on_interrupt:
            self._interruptible_calls.add(call.call_id)
        self._work.start_soon(self._run_tool_call, call, tool, scope)

    async def _run_tool_call(self, call: FunctionCall, tool: Any, scope: trio.CancelScope) -> None:
        """Run one tool in its own scope; its output always goes back to the model."""
        respond = True
        try:
            with scope:
                if tool is None:
                    result = ToolResult(f"error: no tool named {call.name!r}", "unknown tool")
                else:
                    result = await run_tool(
                        tool,
                        call.arguments,
                        self._tool_context,
                        limiter=self._services.tool_limiter,
                    )
            if scope.cancelled_caught:
                result = ToolResult("error: cancelled because the user interrupted", "cancelled")
                respond = False
        finally:
            self._tool_scopes.pop(call.call_id, None)
            self._interruptible_calls.discard(call.call_id)
        if result.error:
            metrics.count_error("tool_failed")
        await self._put(
            event(
                "tool_end",
                call_id=call.call_id,
                name=call.name,
                output=result.output,
                error=result.error,
            )
        )
        self._history_put(
            f"out_{call.call_id}",
            "tool",
            "function_call_output",
            result.output,
            "completed",
            self._agent.name,
            name=call.name,
        )
        await self._control_tx.send(("tool", call.call_id, result.output, respond))

    async def _hand_off(self, call: FunctionCall, handoff: Handoff) -> None:
        previous, target = self._agent, handoff.target
        self._agent = target
        log_event(log, "handoff", source=previous.name, target=target.name)
        await self._put(event("handoff", **{"from": previous.name, "to": target.name}))
        await self._put(event("agent_end", agent=previous.name))
        await self._put(event("agent_start", agent=target.name))
        self._history_put(
            f"handoff_{call.call_id}",
            "assistant",
            "handoff",
            f"{previous.name} -> {target.name}",
            "completed",
            target.name,
        )
        await self._control_tx.send(("agent", target.setup()))
        output = f'{{"assistant": "{target.name}"}}'
        await self._control_tx.send(("tool", call.call_id, output, True))

    # -- history ----------------------------------------------------------------------

    def _history_put(
        self,
        item_id: str,
        role: str,
        kind: str,
        text: str,
        status: str,
        agent: str | None,
        *,
        name: str | None = None,
    ) -> None:
        item: dict[str, Any] = {
            "id": item_id,
            "role": role,
            "type": kind,
            "text": text,
            "status": status,
            "agent": agent,
        }
        if name is not None:
            item["name"] = name
        history = self._history
        if item_id not in history:
            history[item_id] = item
            if len(history) > HISTORY_MAX_ITEMS:
                del history[next(iter(history))]
            self._outbox.post(event("history_added", item=item))
        else:
            history[item_id].update(item)
        self._outbox.post(event("history_updated", items=list(history.values())))

    # -- sending ----------------------------------------------------------------------

    async def _put(self, message: str | bytes, *, epoch: int = -1, arrived: float = 0.0) -> None:
        """Queue reliable traffic; a client too slow to take it is closed with 1013."""
        try:
            await self._outbox.put(message, epoch, arrived)
        except SlowClient as exc:
            log_event(log, "client_too_slow", level=logging.WARNING, error=str(exc))
            self.close(CLOSE_TRY_AGAIN, "client too slow")
            await trio.lowlevel.checkpoint()  # raises Cancelled: the work scope is cancelled


class _ResponseSink:
    """Where a TTS delivers one response's audio and word timings."""

    __slots__ = ("_response", "_session")

    def __init__(self, session: Session, response: Response) -> None:
        self._session = session
        self._response = response

    async def audio(self, pcm: bytes) -> None:
        await self._session._send_audio(self._response, pcm)

    def words(self, timings: Any) -> None:
        self._response.words.extend(
            t if isinstance(t, WordTiming) else WordTiming(*t) for t in timings
        )


def _first(group: BaseExceptionGroup[ModelConnectionError]) -> ModelConnectionError:
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    assert isinstance(error, ModelConnectionError)
    return error
