"""A local Cartesia TTS WebSocket server (`python -m voiceagent.emulators cartesia`).

It speaks the protocol of `wss://api.cartesia.ai/tts/websocket` (docs/architecture.md,
"Cartesia TTS WebSocket"):
the documented auth forms (`api_key` / `access_token` query, `X-API-Key`, Bearer) and
version forms (`cartesia_version` query, `Cartesia-Version` header); requests validated
by the same sans-I/O code the client uses (`voiceagent.tts.cartesia.protocol`), with
errors in Cartesia's shape; many contexts per socket; `chunk`, `timestamps`,
`phoneme_timestamps`, `flush_done` and `done`; `cancel` stops a context for good.

Theory of operation, per socket:
- the handler task reads client messages and routes them to contexts;
- each context has a worker task (a child of the socket's nursery) that turns its
  inputs into audio, paced at `realtime_factor` after `first_chunk_latency_ms`;
- one writer task sends everything; it drops messages of contexts cancelled after the
  messages were queued, so nothing of a cancelled context leaves after the cancel.
Faults: refused handshakes (429), an error after N chunks, closing idle sockets, and
silent sockets (accepted, never answered). Everything is bounded: contexts per socket,
queued inputs per context, queued outbound messages, the request log.
"""

from __future__ import annotations

import argparse
import base64
import logging
import math
import sys
from collections import deque
from dataclasses import dataclass, field
from itertools import count
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest, serve_websocket

from voiceagent.emulators.cartesia_audio import (
    LocalSpeechVoice,
    ToneVoice,
    VoiceSource,
    bytes_per_sample,
    encode_samples,
)
from voiceagent.tts.cartesia import protocol as proto

log = logging.getLogger(__name__)

PATH = "/tts/websocket"


@dataclass(frozen=True, slots=True)
class CartesiaEmulatorConfig:
    #: the accepted key (None: any non-empty credential is accepted)
    api_key: str | None = None
    #: wall-clock seconds per second of audio (0.25 = 4x faster than real time; 0 = no pacing)
    realtime_factor: float = 0.25
    #: delay before the first chunk of every generation
    first_chunk_latency_ms: float = 90.0
    chunk_ms: int = 100
    #: "tone" (cheap, deterministic) or "local" (real speech from the local voice)
    voice: str = "tone"
    max_contexts_per_socket: int = 32
    max_inputs_per_context: int = 256
    #: the first N handshakes are refused with `reject_status` (-1: all of them)
    reject_handshakes: int = 0
    reject_status: int = 429
    #: every context fails with an error message after this many chunks (None: never)
    error_after_chunks: int | None = None
    #: close a socket after this many seconds without traffic (Cartesia: 300)
    idle_close_s: float | None = 300.0
    #: the first N accepted sockets never answer (-1: all of them)
    silent_connections: int = 0


@dataclass
class EmulatorLog:
    """What the emulator saw and sent (bounded), for tests and debugging."""

    limit: int = 10_000
    handshakes: deque[dict[str, Any]] = field(default_factory=deque)
    requests: deque[tuple[int, Any]] = field(default_factory=deque)
    responses: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    #: ("in" | "out", context_id, kind) in the order the emulator handled them
    timeline: deque[tuple[str, str | None, str]] = field(default_factory=deque)
    accepted: int = 0
    refused: int = 0
    idle_closed: int = 0

    def add(self, queue: deque, item: Any) -> None:
        queue.append(item)
        while len(queue) > self.limit:
            queue.popleft()

    def requests_for(self, context_id: str) -> list[dict[str, Any]]:
        return [
            r for _, r in self.requests if isinstance(r, dict) and r.get("context_id") == context_id
        ]


@dataclass
class _Counters:
    handshakes: int = 0
    sockets: int = 0


async def serve_cartesia(
    host: str,
    port: int,
    config: CartesiaEmulatorConfig,
    *,
    log_to: EmulatorLog | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `await nursery.start(serve_cartesia, ...)` gives the port."""
    voice: VoiceSource = LocalSpeechVoice() if config.voice == "local" else ToneVoice()
    counters = _Counters()
    record = log_to if log_to is not None else EmulatorLog(limit=1000)

    async def handler(request: WebSocketRequest) -> None:
        await _handle(request, config, voice, counters, record)

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, host, port, None)
        task_status.started(server.port)


def _first(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


async def _handle(
    request: WebSocketRequest,
    config: CartesiaEmulatorConfig,
    voice: VoiceSource,
    counters: _Counters,
    record: EmulatorLog,
) -> None:
    url = urlsplit(request.path)
    query = parse_qs(url.query)
    headers = {k.decode().lower(): v.decode() for k, v in request.headers}
    record.add(record.handshakes, {"path": request.path, "headers": headers})
    counters.handshakes += 1
    if url.path.rstrip("/") != PATH:
        await _refuse(request, record, 404, "Not found", f"no route {url.path}")
        return
    if config.reject_handshakes < 0 or counters.handshakes <= config.reject_handshakes:
        await _refuse(
            request, record, config.reject_status, "Too many requests", "concurrency limit reached"
        )
        return
    bearer = headers.get("authorization", "")
    keys = [
        _first(query, "api_key"),
        headers.get("x-api-key"),
        bearer[7:] if bearer.lower().startswith("bearer ") else None,
    ]
    # Access tokens are short-lived and minted by Cartesia; the emulator cannot verify
    # one, so any non-empty token is accepted.
    token = _first(query, "access_token")
    ok = any(k and (config.api_key is None or k == config.api_key) for k in keys) or bool(token)
    if not ok:
        await _refuse(request, record, 401, "Unauthorized", "missing or invalid credentials")
        return
    # The query wins over the header when both are present.
    version = _first(query, "cartesia_version") or headers.get("cartesia-version")
    if not version:
        await _refuse(request, record, 400, "Bad request", "missing Cartesia-Version")
        return
    ws = await request.accept()
    counters.sockets += 1
    record.accepted += 1
    silent = config.silent_connections < 0 or counters.sockets <= config.silent_connections
    await _Socket(ws, config, voice, record, counters.sockets, silent=silent).run()


async def _refuse(
    request: WebSocketRequest, record: EmulatorLog, status: int, title: str, message: str
) -> None:
    record.refused += 1
    body = orjson.dumps({"title": title, "message": message, "status_code": status})
    await request.reject(status, extra_headers=[(b"content-type", b"application/json")], body=body)


class _Context:
    def __init__(self, context_id: str, first: proto.InputRequest, capacity: int) -> None:
        self.id = context_id
        self.locked = first.locked
        self.first = first
        self.closed = False  # continue:false received
        self.cancelled = False  # cancelled or failed: nothing more may be sent
        self.flushes = 0
        self.chunks = 0
        self.elapsed_s = 0.0  # audio produced so far (word timestamps continue from here)
        self.inputs_send, self.inputs = trio.open_memory_channel[proto.InputRequest](capacity)
        self.scope = trio.CancelScope()


class _Socket:
    def __init__(
        self,
        ws: WebSocketConnection,
        config: CartesiaEmulatorConfig,
        voice: VoiceSource,
        record: EmulatorLog,
        number: int,
        *,
        silent: bool,
    ) -> None:
        self.ws = ws
        self.config = config
        self.voice = voice
        self.record = record
        self.number = number
        self.silent = silent
        self.contexts: dict[str, _Context] = {}
        self.finished: deque[str] = deque(maxlen=256)
        self.out_send, self.out = trio.open_memory_channel[tuple[_Context | None, dict]](64)
        self.last_activity = trio.current_time()
        self.request_ids = count(1)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._writer)
            if self.config.idle_close_s:
                nursery.start_soon(self._idle_watch, self.config.idle_close_s)
            try:
                while True:
                    raw = await self.ws.get_message()
                    self.last_activity = trio.current_time()
                    await self._on_message(raw)
            except ConnectionClosed:
                pass
            finally:
                nursery.cancel_scope.cancel()

    # ---------------------------------------------------------------- inbound

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            logged: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            logged = raw
        self.record.add(self.record.requests, (self.number, logged))
        if isinstance(logged, dict):
            kind = "cancel" if "cancel" in logged else "input"
            self.record.add(self.record.timeline, ("in", logged.get("context_id"), kind))
        if self.silent:
            return
        try:
            request = proto.parse_request(raw)
        except proto.RequestInvalid as exc:
            ctx = self.contexts.get(exc.context_id or "")
            if ctx is not None:
                self._end(ctx)
            await self._send(None, proto.error_message(exc.context_id, str(exc)))
            return
        if isinstance(request, proto.CancelRequest):
            ctx = self.contexts.get(request.context_id)
            if ctx is not None:
                self._end(ctx)
            return
        await self._on_input(request)

    async def _on_input(self, request: proto.InputRequest) -> None:
        ctx = self.contexts.get(request.context_id)
        if ctx is None:
            if request.context_id in self.finished:
                await self._fail(None, request.context_id, "Context has closed")
                return
            if len(self.contexts) >= self.config.max_contexts_per_socket:
                await self._fail(
                    None, request.context_id, "too many concurrent contexts", status=429
                )
                return
            ctx = _Context(request.context_id, request, self.config.max_inputs_per_context)
            self.contexts[ctx.id] = ctx
            self.nursery.start_soon(self._run_context, ctx)
        elif ctx.closed:
            await self._fail(ctx, ctx.id, "Context has closed")
            return
        elif request.locked != ctx.locked:
            await self._fail(
                ctx,
                ctx.id,
                "every field except transcript, continue and flush must stay the same "
                "across the inputs of a context",
            )
            return
        try:
            ctx.inputs_send.send_nowait(request)
        except trio.WouldBlock:
            await self._fail(ctx, ctx.id, "too many pending inputs for this context")
            return
        if not request.more:
            ctx.closed = True

    def _end(self, ctx: _Context) -> None:
        """Stop a context for good: its worker stops and nothing more of it is sent."""
        ctx.cancelled = True
        ctx.scope.cancel()
        self.contexts.pop(ctx.id, None)
        self.finished.append(ctx.id)

    async def _fail(
        self, ctx: _Context | None, context_id: str, message: str, *, status: int = 400
    ) -> None:
        if ctx is not None:
            self._end(ctx)
        title = "Too many requests" if status == 429 else "Invalid request"
        code = "rate_limited" if status == 429 else "invalid_request"
        await self._send(
            None,
            proto.error_message(
                context_id,
                message,
                status_code=status,
                title=title,
                error_code=code,
                request_id=f"emu-{self.number}-{next(self.request_ids)}",
            ),
        )

    # ---------------------------------------------------------------- generation

    async def _run_context(self, ctx: _Context) -> None:
        """Turn a context's inputs into audio, in order, until `continue: false`.

        With `max_buffer_delay_ms` the text waits for a finished sentence (or a long
        phrase) or for the delay, like the real server; without it every input is voiced
        at once. Cancelled through `ctx.scope` by `cancel`, errors or the socket closing.
        """
        with ctx.scope:
            delay_s = (ctx.first.max_buffer_delay_ms or 0) / 1000
            text = ""
            since = math.inf
            while True:
                request = None
                with trio.move_on_at(since + delay_s if text.strip() else math.inf):
                    request = await ctx.inputs.receive()
                if request is None:  # the buffer delay elapsed
                    text, since = await self._generate(ctx, text, None), math.inf
                    continue
                text += request.transcript
                tag = ctx.flushes + 1 if request.flush or ctx.flushes else None
                if request.flush:
                    text, since = await self._generate(ctx, text, tag), math.inf
                    ctx.flushes += 1
                    await self._send(ctx, proto.flush_done_message(ctx.id, ctx.flushes))
                elif not request.more:
                    await self._generate(ctx, text, tag)
                    await self._send(ctx, proto.done_message(ctx.id))
                    self.contexts.pop(ctx.id, None)
                    self.finished.append(ctx.id)
                    return
                elif delay_s == 0 or _enough_context(text):
                    text, since = await self._generate(ctx, text, tag), math.inf
                elif since == math.inf:
                    since = trio.current_time()

    async def _generate(self, ctx: _Context, text: str, flush_id: int | None) -> str:
        """Voice `text` into paced chunks; returns the (now empty) text buffer."""
        if not text.strip():
            return ""
        first = ctx.first
        rendering = await self.voice.render(text, first.sample_rate)
        offset = ctx.elapsed_s
        if first.add_timestamps and rendering.words:
            await self._send(
                ctx,
                proto.timestamps_message(
                    ctx.id,
                    rendering.words,
                    [round(offset + s, 4) for s in rendering.start],
                    [round(offset + e, 4) for e in rendering.end],
                    flush_id,
                ),
            )
        if first.add_phoneme_timestamps and rendering.words:
            await self._send(ctx, _letters_as_phonemes(ctx.id, rendering, offset))
        data = encode_samples(rendering.samples, first.encoding)
        step = max(1, int(first.sample_rate * self.config.chunk_ms / 1000)) * bytes_per_sample(
            first.encoding
        )
        chunk_s = self.config.chunk_ms / 1000
        start = trio.current_time() + self.config.first_chunk_latency_ms / 1000
        for i, at in enumerate(range(0, len(data), step)):
            await trio.sleep_until(start + i * chunk_s * self.config.realtime_factor)
            if self.config.error_after_chunks is not None and (
                ctx.chunks >= self.config.error_after_chunks
            ):
                await self._send(
                    None,
                    proto.error_message(
                        ctx.id,
                        "injected failure",
                        status_code=500,
                        title="Internal server error",
                        error_code="internal_error",
                    ),
                )
                self._end(ctx)  # last: it cancels the scope this task runs in
                return ""
            piece = data[at : at + step]
            step_ms = chunk_s * self.config.realtime_factor * 1000 or 1.0
            b64 = base64.b64encode(piece).decode()
            await self._send(ctx, proto.chunk_message(ctx.id, b64, step_ms, flush_id))
            ctx.chunks += 1
        ctx.elapsed_s += len(rendering.samples) / first.sample_rate
        return ""

    # ---------------------------------------------------------------- outbound

    async def _send(self, ctx: _Context | None, message: dict) -> None:
        await self.out_send.send((ctx, message))

    async def _writer(self) -> None:
        async for ctx, message in self.out:
            if ctx is not None and ctx.cancelled:
                continue  # queued before the cancel: never sent after it
            self.record.add(self.record.responses, (self.number, message))
            self.record.add(
                self.record.timeline, ("out", message.get("context_id"), message["type"])
            )
            self.last_activity = trio.current_time()
            try:
                await self.ws.send_message(orjson.dumps(message).decode())
            except ConnectionClosed:
                return

    async def _idle_watch(self, idle_s: float) -> None:
        while True:
            await trio.sleep_until(self.last_activity + idle_s)
            if trio.current_time() >= self.last_activity + idle_s and not self.contexts:
                self.record.idle_closed += 1
                with trio.move_on_after(1.0):
                    await self.ws.aclose(1000, "idle timeout")
                return
            if self.contexts:
                self.last_activity = trio.current_time()


def _enough_context(text: str) -> bool:
    """Server-side buffering: a finished sentence or a long phrase is worth voicing."""
    stripped = text.rstrip()
    return stripped.endswith((".", "!", "?")) or len(stripped.split()) >= 12


def _letters_as_phonemes(context_id: str, rendering: Any, offset: float) -> dict:
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m voiceagent.emulators cartesia",
        description="Local Cartesia TTS WebSocket server (ws://HOST:PORT/tts/websocket).",
    )
    d = CartesiaEmulatorConfig()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--api-key", default=None, help="accepted key (default: any)")
    p.add_argument("--realtime-factor", type=float, default=d.realtime_factor)
    p.add_argument("--first-chunk-ms", type=float, default=d.first_chunk_latency_ms)
    p.add_argument("--chunk-ms", type=int, default=d.chunk_ms)
    p.add_argument("--voice", choices=("tone", "local"), default=d.voice)
    p.add_argument("--reject-handshakes", type=int, default=0, help="refuse the first N (-1 all)")
    p.add_argument("--reject-status", type=int, default=d.reject_status)
    p.add_argument("--error-after-chunks", type=int, default=None)
    p.add_argument("--idle-close-s", type=float, default=d.idle_close_s)
    p.add_argument("--silent-connections", type=int, default=0, help="first N never answer")
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    config = CartesiaEmulatorConfig(
        api_key=args.api_key,
        realtime_factor=args.realtime_factor,
        first_chunk_latency_ms=args.first_chunk_ms,
        chunk_ms=args.chunk_ms,
        voice=args.voice,
        reject_handshakes=args.reject_handshakes,
        reject_status=args.reject_status,
        error_after_chunks=args.error_after_chunks,
        idle_close_s=args.idle_close_s or None,
        silent_connections=args.silent_connections,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_cartesia, args.host, args.port, config)
            print(f"cartesia emulator listening on ws://{args.host}:{port}{PATH}", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
