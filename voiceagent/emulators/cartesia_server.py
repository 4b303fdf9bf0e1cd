"""The server half of the Cartesia TTS WebSocket, sans-I/O: requests in, messages out.

Rules of this module:

- No sockets, no clocks, no tasks. `CartesiaServer.receive(raw)` validates one client
  message (`protocol.parse_request`, the code the client uses too) and returns its
  *outputs*, to be performed in order by the shell (`cartesia_connection`): `Reply`
  (queue this message for the writer), `StartContext` (start a worker for this new
  context), `Feed` (queue this input for the context's worker; when that queue is full
  call `overflow`), `StopContext` (cancel that context's worker).
- A `Reply` names its context: the writer drops it when that context has ended by the
  time it would be sent, so nothing of a cancelled context leaves after the cancel.
  Errors are not tied to a context and always go out.
- A refused request is answered by one `error` message in Cartesia's shape and ends
  its context (if it has one); the socket goes on. Bounded: contexts per socket
  (`max_contexts_per_socket`, else a 429 error), the ids of finished contexts kept to
  refuse their reuse (256).
- Per context, `ContextText` decides when the buffered text is voiced, like the real
  server: at once without `max_buffer_delay_ms`; with it, on a finished sentence or a
  long phrase, or when the delay has passed (`deadline`); always on `flush` and on
  `continue: false`. `CartesiaServer.voicing` turns one rendering into its messages:
  word (and phoneme) timestamps first, then the audio in `chunk_ms` pieces, each built
  by `chunk` just before it is sent, which also injects `error_after_chunks` failures.
"""

from __future__ import annotations

import base64
import math
from collections import deque
from dataclasses import dataclass
from itertools import count

from voiceagent.emulators.cartesia_audio import Rendering, bytes_per_sample, encode_samples
from voiceagent.emulators.cartesia_config import CartesiaEmulatorConfig
from voiceagent.tts.cartesia import protocol as proto

#: ids of finished contexts remembered per socket, to refuse their reuse
FINISHED_KEPT = 256


@dataclass(eq=False, slots=True)
class EmulatedContext:
    """One context as the server tracks it (compared by identity: ids can come back)."""

    id: str
    first: proto.InputRequest  # its locked fields, output format and options
    closed: bool = False  # continue:false received
    cancelled: bool = False  # cancelled or failed: nothing more may be sent
    flushes: int = 0
    chunks: int = 0
    elapsed_s: float = 0.0  # audio produced so far (word timestamps continue from here)


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `message`; dropped when `context` (None: no context) has ended by then."""

    context: EmulatedContext | None
    message: dict


@dataclass(frozen=True, slots=True)
class StartContext:
    context: EmulatedContext


@dataclass(frozen=True, slots=True)
class Feed:
    context: EmulatedContext
    request: proto.InputRequest


@dataclass(frozen=True, slots=True)
class StopContext:
    context: EmulatedContext


Output = Reply | StartContext | Feed | StopContext


@dataclass(frozen=True, slots=True)
class Voice:
    """Voice `text` (a `ContextText` step); chunks carry `flush_id` when not None."""

    text: str
    flush_id: int | None


@dataclass(frozen=True, slots=True)
class Complete:
    """The context is done (its `done` message is queued): `CartesiaServer.completed`."""


@dataclass(frozen=True, slots=True)
class Voicing:
    """One rendering of a context's text, ready to send: `header`, then one chunk a piece."""

    header: tuple[Reply, ...]
    pieces: tuple[bytes, ...]
    flush_id: int | None
    step_ms: float  # the `step_time` every chunk reports
    interval_s: float  # wall-clock seconds from one chunk to the next


@dataclass(frozen=True, slots=True)
class InjectedFailure:
    """Send `reply` (an error), then end the context: `error_after_chunks` was reached."""

    reply: Reply


class CartesiaServer:
    """The protocol state of one socket: its contexts and what each request means."""

    def __init__(self, config: CartesiaEmulatorConfig, number: int) -> None:
        self.config = config
        self.number = number  # the socket's number, in error request ids
        self.contexts: dict[str, EmulatedContext] = {}
        self.finished: deque[str] = deque(maxlen=FINISHED_KEPT)
        self._request_ids = count(1)

    def receive(self, raw: str | bytes) -> list[Output]:
        try:
            request = proto.parse_request(raw)
        except proto.RequestInvalid as exc:
            ctx = self.contexts.get(exc.context_id or "")
            ended = [self.end(ctx)] if ctx is not None else []
            return [*ended, Reply(None, proto.error_message(exc.context_id, str(exc)))]
        if isinstance(request, proto.CancelRequest):
            ctx = self.contexts.get(request.context_id)
            return [self.end(ctx)] if ctx is not None else []
        return self._input(request)

    def _input(self, request: proto.InputRequest) -> list[Output]:
        ctx = self.contexts.get(request.context_id)
        started: list[Output] = []
        if ctx is None:
            if request.context_id in self.finished:
                return self._fail(None, request.context_id, "Context has closed")
            if len(self.contexts) >= self.config.max_contexts_per_socket:
                return self._fail(
                    None, request.context_id, "too many concurrent contexts", status=429
                )
            ctx = EmulatedContext(request.context_id, request)
            self.contexts[ctx.id] = ctx
            started.append(StartContext(ctx))
        elif ctx.closed:
            return self._fail(ctx, ctx.id, "Context has closed")
        elif request.locked != ctx.first.locked:
            return self._fail(
                ctx,
                ctx.id,
                "every field except transcript, continue and flush must stay the same "
                "across the inputs of a context",
            )
        if not request.more:
            ctx.closed = True
        return [*started, Feed(ctx, request)]

    def overflow(self, ctx: EmulatedContext) -> list[Output]:
        """The context's input queue was full (`max_inputs_per_context`): it fails."""
        return self._fail(ctx, ctx.id, "too many pending inputs for this context")

    def end(self, ctx: EmulatedContext) -> StopContext:
        """Stop a context for good: its worker stops and nothing more of it is sent."""
        ctx.cancelled = True
        self.completed(ctx)
        return StopContext(ctx)

    def completed(self, ctx: EmulatedContext) -> None:
        """The context is over; its id may not start a new context."""
        if self.contexts.get(ctx.id) is ctx:
            del self.contexts[ctx.id]
        self.finished.append(ctx.id)

    def _fail(
        self, ctx: EmulatedContext | None, context_id: str, message: str, *, status: int = 400
    ) -> list[Output]:
        ended: list[Output] = [self.end(ctx)] if ctx is not None else []
        title = "Too many requests" if status == 429 else "Invalid request"
        code = "rate_limited" if status == 429 else "invalid_request"
        error = proto.error_message(
            context_id,
            message,
            status_code=status,
            title=title,
            error_code=code,
            request_id=f"emu-{self.number}-{next(self._request_ids)}",
        )
        return [*ended, Reply(None, error)]

    # ---------------------------------------------------------------- generation

    def voicing(self, ctx: EmulatedContext, rendering: Rendering, flush_id: int | None) -> Voicing:
        """The messages of one rendering of `ctx`'s text; its audio counts as produced."""
        first = ctx.first
        offset = ctx.elapsed_s
        header: list[Reply] = []
        if first.add_timestamps and rendering.words:
            message = proto.timestamps_message(
                ctx.id,
                rendering.words,
                [round(offset + s, 4) for s in rendering.start],
                [round(offset + e, 4) for e in rendering.end],
                flush_id,
            )
            header.append(Reply(ctx, message))
        if first.add_phoneme_timestamps and rendering.words:
            header.append(Reply(ctx, _letters_as_phonemes(ctx.id, rendering, offset)))
        data = encode_samples(rendering.samples, first.encoding)
        step = max(1, int(first.sample_rate * self.config.chunk_ms / 1000))
        step *= bytes_per_sample(first.encoding)
        interval_s = self.config.chunk_ms / 1000 * self.config.realtime_factor
        ctx.elapsed_s += len(rendering.samples) / first.sample_rate
        return Voicing(
            header=tuple(header),
            pieces=tuple(data[at : at + step] for at in range(0, len(data), step)),
            flush_id=flush_id,
            step_ms=interval_s * 1000 or 1.0,
            interval_s=interval_s,
        )

    def chunk(self, ctx: EmulatedContext, voicing: Voicing, index: int) -> Reply | InjectedFailure:
        """The message of piece `index`, built now (or the injected failure)."""
        limit = self.config.error_after_chunks
        if limit is not None and ctx.chunks >= limit:
            error = proto.error_message(
                ctx.id,
                "injected failure",
                status_code=500,
                title="Internal server error",
                error_code="internal_error",
            )
            return InjectedFailure(Reply(None, error))
        ctx.chunks += 1
        b64 = base64.b64encode(voicing.pieces[index]).decode()
        return Reply(ctx, proto.chunk_message(ctx.id, b64, voicing.step_ms, voicing.flush_id))


class ContextText:
    """The text a context has been given and not yet voiced, and when to voice it."""

    def __init__(self, ctx: EmulatedContext) -> None:
        self.ctx = ctx
        self.delay_s = (ctx.first.max_buffer_delay_ms or 0) / 1000
        self.text = ""
        self.since = math.inf  # when the buffered text started waiting

    def deadline(self) -> float:
        """When the buffered text is voiced even without more input (inf: never)."""
        return self.since + self.delay_s if self.text.strip() else math.inf

    def expired(self) -> Voice:
        """The buffer delay has passed: voice what is buffered."""
        return self._take(None)

    def add(self, request: proto.InputRequest, now: float) -> list[Voice | Reply | Complete]:
        """One input of the context, at time `now`: what to do, in order."""
        ctx = self.ctx
        self.text += request.transcript
        flush_id = ctx.flushes + 1 if request.flush or ctx.flushes else None
        if request.flush:
            voice = self._take(flush_id)
            ctx.flushes += 1
            return [voice, Reply(ctx, proto.flush_done_message(ctx.id, ctx.flushes))]
        if not request.more:
            return [self._take(flush_id), Reply(ctx, proto.done_message(ctx.id)), Complete()]
        if self.delay_s == 0 or enough_context(self.text):
            return [self._take(flush_id)]
        if self.since == math.inf:
            self.since = now
        return []

    def _take(self, flush_id: int | None) -> Voice:
        text, self.text, self.since = self.text, "", math.inf
        return Voice(text, flush_id)


def enough_context(text: str) -> bool:
    """Server-side buffering: a finished sentence or a long phrase is worth voicing."""
    stripped = text.rstrip()
    return stripped.endswith((".", "!", "?")) or len(stripped.split()) >= 12


def _letters_as_phonemes(context_id: str, rendering: Rendering, offset: float) -> dict:
    phonemes: list[str] = []
    start: list[float] = []
    end: list[float] = []
    for word, s, e in zip(rendering.words, rendering.start, rendering.end, strict=True):
        step = (e - s) / max(len(word), 1)
        for i, letter in enumerate(word):
            phonemes.append(letter)
            start.append(round(offset + s + i * step, 4))
            end.append(round(offset + s + (i + 1) * step, 4))
    return proto.phoneme_timestamps_message(context_id, phonemes, start, end)
