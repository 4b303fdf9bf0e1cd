"""`CartesiaTTS`: streaming text-to-speech over Cartesia's WebSocket API.

One session = one `CartesiaConnection` = at most one socket, opened on the first
`synthesize()` and reused for every later response. One response = one context whose
id is `{response_id}-{n}` (n counts contexts on this connection, so a retried response
never reuses an id). Text deltas are grouped by `TextAggregator` and pushed with
`continue: true`; the end of the text closes the context with `continue: false`.

Only one context is live per connection (a session voices one response at a time), so
`synthesize()` reads the socket itself (`voiceagent/provider_socket.py`: no reader task
between the socket and the audio): messages of older, cancelled contexts that are still
in flight are recognised by their context id and dropped. Between responses the task
that owns the socket reads it instead, so a ping is answered, a server's close is seen
before the next response needs the socket, and late audio of a cancelled context is
dropped there.

Cancellation: the caller's scope is cancelled (barge-in). The text pump and the reader
stop at once, nothing more reaches the sink, and a `cancel` message is sent shielded
with a short timeout. Errors: a provider `error` message, a refused handshake, a closed
socket or a silent server raise `TTSError`; a socket that may be broken is dropped so
the next response reconnects (with bounded backoff for transient failures). A
`TTSError`'s message is what the client sees: it never holds the URL (which may carry
the key as `?api_key=`), a host or a port; those go, redacted, into `detail`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from itertools import count

import trio

from voiceagent import metrics
from voiceagent.provider_socket import (
    HandshakeFailed,
    HandshakeRejected,
    ProviderSocket,
    SocketClosed,
    open_provider_socket,
)
from voiceagent.redact import redact_exception, redact_text, redact_url
from voiceagent.tts.base import TTS, AudioSink, TTSConnection, TTSError, WordTiming
from voiceagent.tts.cartesia import protocol as proto
from voiceagent.tts.cartesia.aggregator import TextAggregator
from voiceagent.tts.cartesia.config import DEFAULT_URL, CartesiaConfig

__all__ = ["DEFAULT_URL", "CartesiaConfig", "CartesiaConnection", "CartesiaTTS"]

log = logging.getLogger(__name__)


class CartesiaTTS(TTS):
    """The shared factory: one per app; `connect()` per session."""

    name = "cartesia"

    def __init__(self, config: CartesiaConfig) -> None:
        self.config = config.validate()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[CartesiaConnection]:
        """Cheap: no I/O until the first `synthesize()`. Exiting closes the socket."""
        async with trio.open_nursery() as nursery:
            conn = CartesiaConnection(self.config, nursery)
            try:
                yield conn
            finally:
                await conn.aclose()
                nursery.cancel_scope.cancel()


class _Watchdog:
    """A receive deadline the text pump can move while the reader is blocked."""

    def __init__(self) -> None:
        self.deadline = math.inf
        self.first_push_at: float | None = None  # for the first-audio latency metric
        self._scope: trio.CancelScope | None = None

    def set(self, deadline: float) -> None:
        self.deadline = deadline
        if self._scope is not None:
            self._scope.deadline = deadline

    async def receive(self, ws: ProviderSocket) -> str | bytes | None:
        """The next message, or None when the deadline passed."""
        with trio.CancelScope(deadline=self.deadline) as scope:
            self._scope = scope
            try:
                return await ws.receive()
            finally:
                self._scope = None
        return None


class CartesiaConnection(TTSConnection):
    """One session's link to Cartesia (see the module docstring)."""

    def __init__(self, config: CartesiaConfig, nursery: trio.Nursery) -> None:
        self._config = config
        self._settings = config.settings
        self._nursery = nursery  # owns the socket's task: the idle reader and the close
        self._ws: ProviderSocket | None = None
        self._ws_scope: trio.CancelScope | None = None
        self._idle_read: trio.CancelScope | None = None  # the owner reading between answers
        self._responses_waiting = 0
        self._contexts = count(1)
        self._closed = False
        self._one_at_a_time = trio.Lock()

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.closed is None

    async def aclose(self) -> None:
        """Close the socket; safe to call twice. The socket's task closes it, bounded
        and shielded, before the connection's nursery exits."""
        self._closed = True
        self._drop_socket()

    async def synthesize(
        self, text: trio.MemoryReceiveChannel[str], sink: AudioSink, *, response_id: str
    ) -> None:
        """Voice one response; returns when Cartesia says `done` for its context.

        On cancel: stops reading and pushing at once, sends `cancel` (shielded, bounded);
        late audio of this context never reaches the sink. On error: TTSError; the socket
        is dropped when it might be unusable (closed, silent, protocol violation).
        """
        if self._closed:
            raise TTSError("the TTS connection is closed", code="tts_closed")
        # One response at a time: a new one waits for the previous cancel to be sent, and
        # takes the socket's reading over from its owner (`_read_between_responses`).
        self._responses_waiting += 1
        if self._idle_read is not None:
            self._idle_read.cancel()
        try:
            await self._one_at_a_time.acquire()
        finally:
            self._responses_waiting -= 1
        try:
            await self._synthesize(text, sink, response_id)
        finally:
            self._one_at_a_time.release()

    async def _synthesize(
        self, text: trio.MemoryReceiveChannel[str], sink: AudioSink, response_id: str
    ) -> None:
        ctx = proto.ContextMachine(f"{response_id}-{next(self._contexts)}", self._settings)
        first_pushed = trio.Event()
        watchdog = _Watchdog()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    self._guarded, self._pump_text, text, ctx, first_pushed, watchdog
                )
                await first_pushed.wait()
                if ctx.sent_anything:
                    await self._guarded(self._read_audio, ctx, sink, watchdog)
        except BaseExceptionGroup as group:
            # Pump and reader share a nursery; each turns its own socket and protocol
            # failures into TTSError. Surface one plain exception to the caller; a group
            # made only of Cancelled re-raises as is. No local may keep the group or a
            # part of it: its traceback holds this frame, and the cycle would outlive the
            # room (the collector's work, ~100 objects per cancelled response).
            error = _surfaced(group)
            if error is None:
                raise
            try:
                raise error from None
            finally:
                error.__context__ = None  # it was `group`, which holds `error`: a cycle
                del error
        finally:
            if not ctx.finished:
                await self._send_cancel(ctx)  # cancelled, or failed before `done`

    async def _guarded(self, fn: Callable[..., Awaitable[None]], *args: object) -> None:
        """Run `fn`, turning socket and protocol failures into TTSError (socket dropped)."""
        try:
            await fn(*args)
        except SocketClosed as exc:
            self._drop_socket()
            raise TTSError(
                f"Cartesia closed the socket (code {exc.reason.code})",
                code="tts_closed",
                detail=redact_text(str(exc.reason)),
            ) from exc
        except proto.ProtocolError as exc:
            self._drop_socket()
            raise TTSError(
                "Cartesia sent a message we cannot read",
                code="tts_protocol",
                detail=redact_text(str(exc)),
            ) from exc

    # ------------------------------------------------------------------ text -> requests

    async def _pump_text(
        self,
        text: trio.MemoryReceiveChannel[str],
        ctx: proto.ContextMachine,
        first_pushed: trio.Event,
        watchdog: _Watchdog,
    ) -> None:
        aggregator = TextAggregator(min_first_words=self._config.min_first_words)
        idle = self._config.push_idle_ms / 1000
        while True:
            delta = None
            with trio.move_on_after(idle if aggregator.pending else math.inf):
                try:
                    delta = await text.receive()
                except trio.EndOfChannel:
                    break
            pushes = aggregator.stale() if delta is None else aggregator.feed(delta)
            for piece in pushes:
                await self._push(ctx, piece, more=True, watchdog=watchdog)
                first_pushed.set()
        rest = aggregator.finish()
        if ctx.sent_anything or rest.strip():
            await self._push(ctx, rest, more=False, watchdog=watchdog)
        # Not in a `finally`: after a failure the nursery cancels the waiting reader.
        first_pushed.set()  # also wakes the caller when the text was empty

    async def _push(
        self, ctx: proto.ContextMachine, transcript: str, *, more: bool, watchdog: _Watchdog
    ) -> None:
        first = not ctx.sent_anything
        message = proto.encode(ctx.push(transcript, more=more))
        if first:
            ws = await self._ensure_socket()
            try:
                await ws.send(message)
            except SocketClosed:
                # Closed by the server while idle: one reconnect, nothing was voiced yet.
                self._drop_socket()
                ws = await self._ensure_socket()
                await ws.send(message)
            delay = (self._config.max_buffer_delay_ms or 0) / 1000
            watchdog.first_push_at = trio.current_time()
            watchdog.set(watchdog.first_push_at + self._config.first_audio_timeout_s + delay)
        else:
            if self._ws is None:
                raise TTSError("the Cartesia socket was dropped", code="tts_closed")
            await self._ws.send(message)
            if not more and ctx.audio_bytes:
                watchdog.set(trio.current_time() + self._config.first_audio_timeout_s)

    async def _ensure_socket(self) -> ProviderSocket:
        if self.connected:
            assert self._ws is not None
            return self._ws
        self._drop_socket()
        cfg = self._config
        for attempt in range(cfg.connect_attempts):
            try:
                started = trio.current_time()
                self._ws, self._ws_scope = await self._nursery.start(self._own_socket)
                metrics.observe_provider("cartesia", "connect", trio.current_time() - started)
                return self._ws
            except trio.Cancelled as exc:
                # Cancelled mid-handshake: the frame of `nursery.start` can keep the
                # child task, whose outcome holds this exception, so a traceback through
                # it would be a reference cycle (~330 objects per room, measured on an
                # earlier Trio; Trio 0.35 leaves none either way). Re-raise
                # without it; tests/session/test_cyclic_garbage.py holds this path.
                raise exc.with_traceback(None) from None
            except HandshakeRejected as exc:
                raise _rejected(exc, cfg.url) from exc
            except (HandshakeFailed, OSError, ValueError, trio.TooSlowError) as exc:
                detail = f"{redact_url(cfg.url)}: {redact_exception(exc)}"
                if attempt + 1 == cfg.connect_attempts:
                    raise TTSError(
                        f"Cartesia cannot be reached ({cfg.connect_attempts} attempts)",
                        code="tts_unavailable",
                        detail=detail,
                    ) from exc
                backoff = min(0.1 * 2**attempt, 1.0)
                log.info("cartesia connect failed (%s); retrying in %.1fs", detail, backoff)
                await trio.sleep(backoff)
        raise AssertionError("unreachable")

    async def _own_socket(
        self,
        task_status: trio.TaskStatus[tuple[ProviderSocket, trio.CancelScope]],
    ) -> None:
        """Own one socket until its scope is cancelled: open it, read it between
        responses, close it (bounded, shielded) at the end.

        Handshake failures propagate to `_ensure_socket` (through `nursery.start`); once
        the socket is up, its failures end this task quietly: the next response sees the
        socket gone and opens another.
        """
        cfg = self._config
        with trio.CancelScope() as scope:
            with trio.fail_after(cfg.connect_timeout_s):
                ws = await open_provider_socket(
                    cfg.url, headers=cfg.handshake_headers(), max_message_bytes=4 * 1024 * 1024
                )
            task_status.started((ws, scope))
            try:
                await self._read_between_responses(ws)
            finally:
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    await ws.aclose()

    async def _read_between_responses(self, ws: ProviderSocket) -> None:
        """Read while no response does: answers pings, sees the server's close, and drops
        late messages (no context is live here, so everything read belongs to a finished
        one). A response takes the reading over by cancelling `_idle_read`."""
        while True:
            async with self._one_at_a_time:
                if self._responses_waiting:
                    continue  # releasing hands the lock to the waiting response
                with trio.CancelScope() as self._idle_read:
                    try:
                        await ws.receive()
                    except SocketClosed as exc:
                        log.debug("cartesia socket ended while idle: %s", exc.reason)
                        return
                    finally:
                        self._idle_read = None

    def _drop_socket(self) -> None:
        """Forget the socket now; its owner task closes it in the background, bounded."""
        self._ws = None
        scope, self._ws_scope = self._ws_scope, None
        if scope is not None:
            scope.cancel()

    # ------------------------------------------------------------------ responses -> sink

    async def _read_audio(
        self, ctx: proto.ContextMachine, sink: AudioSink, watchdog: _Watchdog
    ) -> None:
        ws = self._ws
        assert ws is not None
        odd = b""  # a chunk may in theory end mid-sample; keep samples whole
        while not ctx.finished:
            raw = await watchdog.receive(ws)
            if raw is None:
                self._drop_socket()
                raise TTSError("Cartesia sent no audio in time", code="tts_timeout")
            response = proto.parse_response(raw)
            if response is None or not ctx.accepts(response):
                if isinstance(response, proto.ErrorResponse) and response.context_id is None:
                    raise _provider_error(response)
                continue  # late traffic of a cancelled context, or a type we do not use
            ctx.receive(response)
            if isinstance(response, proto.AudioChunk):
                if watchdog.first_push_at is not None:
                    waited = trio.current_time() - watchdog.first_push_at
                    metrics.observe_provider("cartesia", "first_audio", waited)
                    watchdog.first_push_at = None
                pcm = odd + response.audio
                odd = pcm[len(pcm) & ~1 :]
                if len(pcm) > 1:
                    await sink.audio(pcm[: len(pcm) & ~1])
                # Audio flows: only a silent end (text complete) is a stall from now on.
                # Armed after the sink returns, so a slow client is not a dead server.
                watchdog.set(
                    trio.current_time() + self._config.first_audio_timeout_s
                    if ctx.state is proto.ContextState.CLOSED
                    else math.inf
                )
            elif isinstance(response, proto.WordTimestamps):
                sink.words(_word_timings(response))
            elif isinstance(response, proto.ErrorResponse):
                raise _provider_error(response)

    async def _send_cancel(self, ctx: proto.ContextMachine) -> None:
        message = ctx.cancel()
        ws = self._ws
        if message is None or ws is None or ws.closed is not None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(0.5) as scope:
            try:
                await ws.send(proto.encode(message))
            except SocketClosed:
                self._drop_socket()
        if scope.cancelled_caught:
            self._drop_socket()


def _word_timings(ts: proto.WordTimestamps) -> Sequence[WordTiming]:
    return [WordTiming(w, s, e) for w, s, e in zip(ts.words, ts.start, ts.end, strict=True)]


def _provider_error(error: proto.ErrorResponse) -> TTSError:
    # The provider's own words ("voice not found") help the user; URLs in them do not.
    code = "rate_limited" if error.status_code == 429 else "tts_provider_error"
    return TTSError(f"Cartesia error: {redact_text(error.describe())}", code=code)


def _rejected(exc: HandshakeRejected, url: str) -> TTSError:
    status = exc.status_code
    body = redact_text(exc.body[:200].decode(errors="replace"))
    detail = f"{redact_url(url)}: HTTP {status}" + (f": {body}" if body else "")
    if status == 429:
        return TTSError(
            "Cartesia refused the socket: too many requests (429)",
            code="rate_limited",
            detail=detail,
        )
    if status in (401, 403):
        return TTSError(
            f"Cartesia refused the credentials ({status})", code="tts_unauthorized", detail=detail
        )
    return TTSError(f"Cartesia refused the socket ({status})", code="tts_rejected", detail=detail)


def _surfaced(group: BaseExceptionGroup) -> BaseException | None:
    """The one exception to raise for `group`: its first TTSError, else its first
    other failure; None when it holds only Cancelled."""
    others = group.split(trio.Cancelled)[1]
    if others is None:
        return None
    return _first(others.subgroup(TTSError) or others)


def _first(group: BaseExceptionGroup) -> BaseException:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first
