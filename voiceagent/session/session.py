"""One browser connection = one `Session` = one Trio nursery.

The session owns its parts and wires them together; they share a `Room` (room.py):

    session.py      lifetime, the reader, the writer, close codes, the duration
                    limit, the operator's handles (describe, kick, mute)
    client_input.py what client messages do: grants, rate limits, error budget
    model_link.py   the model connection (lazy, reconnect, idle close), the audio
                    and control pumps; audio_batch.py the inbound audio batch;
                    deadlines.py when a quiet model is given up on
    responses.py    model events → responses, barge-in, guardrails, turn metrics;
                    barge_in.py the cut of a barge-in or a tripped guardrail
    speaker.py      TTS per response, in order
    tool_runner.py  tool calls and handoffs
    history.py      the conversation the browser shows (final items also go to
                    the conversation store through the room's journal)
    resume.py       a reconnect continues the room's stored conversation
    outbox.py       the single writer's queue; turns.py epochs and what was heard

Task tree (every task has this session as its owner; nothing outlives `run()`):

    run()
    ├── writer                     the only task that sends on the socket (outbox.py)
    └── work nursery (cancel scope: close() cancels it, the writer finishes last)
        ├── reader                 this task: parses client messages; never blocks;
        │                          closes the room after WS_IDLE_TIMEOUT_S without input
        ├── model loop             lazy: started by the first audio or text
        │   └── connection nursery: audio pump, control pump, idle watch,
        │                           deadline watch (deadlines.py), events
        ├── TTS holder             lazy: the session's TTS connection (speaker.py)
        ├── speak(response)        one per response with TTS, in the response's scope
        └── tool call              one per function call, in its own scope

Cancellation: the client closing the socket ends the reader with `ClientDisconnected`
and the session cancels its own work; `close()` (replacement, slow client, abusive
client, shutdown) cancels the work scope, lets the writer send what is queued for a
bounded time, then closes the socket with its code. A barge-in cancels only the
speaking responses' scopes and the tool calls marked `cancel_on_interrupt` (turns.py
and outbox.py say what reaches the client). A bug ends this session only, with 1011.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import trio

from voiceagent import metrics
from voiceagent.access.tokens import OPEN_GRANT, RoomGrant
from voiceagent.close_codes import CloseCode
from voiceagent.logs import bind_session, log_event
from voiceagent.models.base import OutputMode
from voiceagent.protocol import (
    ProtocolError,
    error_event,
    event,
    parse_client_message,
    session_started,
)
from voiceagent.quart_websocket import receiver_of
from voiceagent.session.client_input import ClientInput
from voiceagent.session.model_link import ModelLink
from voiceagent.session.outbox import Outbox
from voiceagent.session.responses import ResponseRouter
from voiceagent.session.resume import resume
from voiceagent.session.room import Room
from voiceagent.session.services import ClientDisconnected, ClientSocket, Services
from voiceagent.session.tool_runner import ToolRunner

log = logging.getLogger("voiceagent.session")

ERROR_WINDOW_S = 10.0


class Session:
    def __init__(
        self,
        session_id: str,
        socket: ClientSocket,
        services: Services,
        *,
        grant: RoomGrant = OPEN_GRANT,
        on_closing: Callable[[], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.grant = grant  # who opened the room, and what their token allows
        # Called once the room will send no more, before its Close frame (app.py gives
        # back the user's room slot there: a client told to reconnect does so at once).
        self._on_closing = on_closing
        self.opened_at = time.time()
        self._socket = socket
        self._services = services
        settings = services.settings
        self._settings = settings
        self._limits = services.limits
        self._tally = tally = metrics.TrafficTally()
        self._outbox = Outbox(settings.ws_outgoing_max, settings.ws_send_timeout_s, tally)
        self._room = room = Room(session_id, services, self._outbox, tally)
        self._link = ModelLink(room)
        # The probes are bound to this session's parts; `tally.close()` drops them.
        tally.add_depth_probe("audio_in", self._link.audio_depth)
        tally.add_depth_probe("outbox", self._outbox.depth)
        self._tools = ToolRunner(room, self._link)
        self._router = ResponseRouter(room, self._link, self._tools)
        self._client = ClientInput(room, self._link, self._router, grant)

    # -- lifetime ---------------------------------------------------------------------

    @property
    def output_mode(self) -> OutputMode:
        """Text when a TTS voices replies (or the model cannot speak), else the model's audio."""
        return self._services.output_mode

    async def run(self) -> None:
        """Serve the connection until the client leaves or `close()` is called."""
        registry = self._services.registry
        room = self._room
        with bind_session(self.session_id):
            registry.register(self)
            log_event(log, "session_open", model=self._model_name, tts=self._tts_name)
            try:
                await self._run()
            except Exception:
                # A bug must end this session only, loudly, and never the process.
                log.exception("session crashed")
                room.close_code, room.close_reason = CloseCode.INTERNAL, "internal error"
                with trio.move_on_after(self._settings.teardown_timeout_s):
                    try:
                        await self._socket.close(CloseCode.INTERNAL, "internal error")
                    except Exception:
                        log.debug("close after crash failed", exc_info=True)
            finally:
                registry.unregister(self)
                room.journal.closed(
                    reason=room.close_reason or "",
                    code=room.close_code,
                    agent=room.agent.name,
                    model=self._model_name,
                    tts=self._tts_name,
                )
                if room.recorder is not None:
                    room.recorder.close(trio.current_time())
                self._router.user_speaking(False)
                self._tally.close()
                log_event(
                    log,
                    "session_closed",
                    code=room.close_code,
                    reason=room.close_reason or None,
                    dropped=self._tally.drops_out,
                )

    async def _run(self) -> None:
        room = self._room
        teardown = self._settings.teardown_timeout_s
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._outbox.run_writer, self._socket.send, self._writer_stopped)
            resumed = await resume(room, self.grant)
            room.journal.opened(
                sub=self.grant.sub or None,
                agent=room.agent.name,
                model=self._model_name,
                tts=self._tts_name,
                resumed=resumed,
                recording=str(room.recorder.path) if room.recorder is not None else None,
            )
            self._outbox.urgent(
                session_started(
                    session_id=self.session_id,
                    model=self._model_name,
                    tts=self._tts_name,
                    agent=room.agent.name,
                    offline_brain=bool(getattr(self._services.model, "offline_brain", False)),
                    limits=self._limits,
                )
            )
            self._outbox.urgent(event("agent_start", agent=room.agent.name))
            room.history.restore(room.resumed)
            client_gone = False
            limit = self._duration_limit()
            async with trio.open_nursery() as work:
                room.work = work
                if limit is not None:
                    work.cancel_scope.deadline = trio.current_time() + limit
                if room.work_stopped:  # closed while it opened
                    work.cancel_scope.cancel()
                try:
                    await self._read_until_idle()  # in this task: one task fewer per room
                except ClientDisconnected:
                    # A normal end: our own scopes stop our own tasks, and nothing
                    # is raised into the framework.
                    client_gone = True
                    work.cancel_scope.cancel()
            room.work = None
            timed_out = work.cancel_scope.cancelled_caught and not client_gone
            if timed_out and room.close_code == CloseCode.NORMAL:
                if limit is not None and trio.current_time() >= work.cancel_scope.deadline:
                    log_event(log, "session_time_limit", limit_s=limit)
                    room.close(CloseCode.TIME_LIMIT, f"the session reached {limit:g} s")
            # The reader ended or close() was called: nothing new will be queued.
            if client_gone:
                lost = room.close_code == 1006
                room.close_reason = room.close_reason or (
                    "connection lost" if lost else "client left"
                )
                nursery.cancel_scope.cancel()  # nobody is left to write to
            else:
                if room.close_code == CloseCode.TRY_AGAIN:
                    self._outbox.drain_nowait()
                self._outbox.close()  # the writer sends what is queued, then ends
                nursery.cancel_scope.deadline = trio.current_time() + teardown
        if client_gone:
            return
        if self._on_closing is not None:
            self._on_closing()
        with trio.move_on_after(teardown):
            try:
                await self._socket.close(room.close_code, room.close_reason)
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

    def _duration_limit(self) -> float | None:
        limits = [self._settings.max_session_s or None, self.grant.max_duration_s]
        present = [limit for limit in limits if limit]
        return min(present) if present else None

    # -- the operator's handles (admin.py) ----------------------------------------------

    def describe(self) -> dict[str, object]:
        room = self._room
        return {
            "session_id": self.session_id,
            "sub": self.grant.sub or None,
            "agent": room.agent.name,
            "age_s": round(time.time() - self.opened_at, 1),
            "model": self._model_name,
            "tts": self._tts_name,
            "tokens": room.spent_tokens,
            "cost_usd": round(room.spent_usd, 6),
            "muted": self._client.muted,
        }

    @property
    def responding(self) -> bool:
        """A response is in progress or on its way: asked for, written, voiced, or
        waiting on a tool call. A drain (drain.py) lets such a room finish it."""
        room = self._room
        return (
            room.text_pending
            or room.turns.responding()
            or self._tools.running
            or self._link.awaiting_model
        )

    def kick(self, reason: str) -> None:
        """End the session for the operator: `error` `kicked` with `reason`, close 4000."""
        log_event(log, "session_kicked", reason=reason)
        self.close(CloseCode.KICKED, reason)

    def set_muted(self, muted: bool) -> None:
        """Drop (or take again) the microphone audio; the client is told with `muted`."""
        if muted != self._client.muted:
            self._client.muted = muted
            log_event(log, "session_muted" if muted else "session_unmuted")
            self._outbox.urgent(event("muted", muted=muted))

    def close(self, code: int, reason: str) -> None:
        """Stop the session: cancel its work; the socket closes with `code`.

        The client first gets an `error` event saying why (except a client too slow
        to read it), so the reason survives even a transport that loses the Close.
        """
        self._room.close(code, reason)

    def _writer_stopped(self, exc: Exception) -> None:
        """The socket broke under the writer: the client is gone."""
        log_event(log, "writer_stopped", level=logging.DEBUG, error=repr(exc))
        self._room.stop_work()

    @property
    def _model_name(self) -> str:
        model = self._services.model
        return model.name if model is not None else "none"

    @property
    def _tts_name(self) -> str:
        tts = self._services.tts
        return tts.name if tts is not None else "none"

    # -- reading the client -----------------------------------------------------------

    async def _read_until_idle(self) -> None:
        """Read; close the room normally after `ws_idle_timeout_s` without input.

        Input is audio, text or a commit (the model link's clock of them); a response
        the user may still be hearing keeps the room open. The idle watch costs no
        task and nothing per frame: one cancel scope around the reader per idle
        period (a memory-channel receive loses nothing when cancelled). One coroutine
        reads and watches: every open room parks here, and each level of calls would
        hold a frame of its own.
        """
        idle = self._settings.ws_idle_timeout_s
        activity = self._link.activity
        receive = receiver_of(self._socket)
        limits, tally = self._limits, self._tally
        dispatch, refuse = self._client.dispatch, self._client.error
        deadline = activity.last + idle if idle else math.inf
        while True:
            with trio.move_on_at(deadline):
                while True:
                    data = await receive()
                    tally.frame_in(len(data))
                    try:
                        message = parse_client_message(data, limits)
                    except ProtocolError as exc:
                        refuse(exc.code, exc.message)
                        continue
                    dispatch(message)
            now = trio.current_time()
            if now >= activity.last + idle and self._room.turns.audible(now) is None:
                break
            deadline = max(activity.last + idle, now + min(idle, 1.0))
        log_event(log, "idle_timeout", idle_s=idle)
        metrics.count_error("idle_timeout")
        self._outbox.urgent(error_event("idle_timeout", f"no audio or text for {idle:g} s"))
        self.close(CloseCode.NORMAL, "idle")
