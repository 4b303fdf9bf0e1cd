"""One emulated Cartesia socket over an accepted WebSocket: the thin Trio shell.

The protocol is decided by `cartesia_server.CartesiaServer` (sans-I/O); this module only
moves things and keeps time:

- the reader task logs each client message, feeds it to the server and performs the
  outputs in order: a `Reply` is queued for the writer; `StartContext` starts the
  context's worker; `Feed` queues an input for it without waiting (a full queue is the
  server's `overflow`); `StopContext` cancels the worker;
- each context's worker (a child of the socket's nursery) waits for inputs, or for the
  buffer delay (`ContextText.deadline`), renders text with the voice and sends the
  chunks paced at `realtime_factor` after `first_chunk_latency_ms`;
- one writer task sends everything; it drops messages of contexts that ended after the
  messages were queued, so nothing of a cancelled context leaves after the cancel;
- an idle watch closes the socket after `idle_close_s` without traffic (with no live
  context, nothing queued and no send in progress); it counts a close it has sent.
A silent socket (a fault) logs what it receives and never answers. When the client
closes, the nursery is cancelled: every worker stops where it is.
"""

from __future__ import annotations

from typing import Any

import orjson
import trio

from voiceagent.emulators.cartesia_audio import VoiceSource
from voiceagent.emulators.cartesia_config import CartesiaEmulatorConfig, EmulatorLog
from voiceagent.emulators.cartesia_server import (
    CartesiaServer,
    Complete,
    ContextText,
    EmulatedContext,
    Feed,
    InjectedFailure,
    Output,
    Reply,
    StartContext,
    StopContext,
    Voice,
)
from voiceagent.provider_socket import ProviderSocket, SocketClosed
from voiceagent.tts.cartesia import protocol as proto

#: messages queued for the writer before the senders wait
OUTBOX_SIZE = 64


class _Worker:
    """The Trio side of one context: its input queue and the scope its worker runs in."""

    def __init__(self, capacity: int) -> None:
        self.inputs_send, self.inputs = trio.open_memory_channel[proto.InputRequest](capacity)
        self.scope = trio.CancelScope()


class CartesiaEmulatorConnection:
    def __init__(
        self,
        ws: ProviderSocket,
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
        self.server = CartesiaServer(config, number)
        self.workers: dict[EmulatedContext, _Worker] = {}
        self.out_send, self.out = trio.open_memory_channel[Reply](OUTBOX_SIZE)
        self.last_activity = trio.current_time()
        self.sending = False  # the writer is in a send

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            nursery.start_soon(self._writer)
            if self.config.idle_close_s:
                nursery.start_soon(self._idle_watch, self.config.idle_close_s)
            try:
                while True:
                    raw = await self.ws.receive()  # no reader task in between
                    self.last_activity = trio.current_time()
                    await self._on_message(raw)
            except SocketClosed:
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
        await self._perform(self.server.receive(raw))

    async def _perform(self, outputs: list[Output]) -> None:
        for output in outputs:
            if isinstance(output, Reply):
                await self.out_send.send(output)
            elif isinstance(output, StartContext):
                worker = _Worker(self.config.max_inputs_per_context)
                self.workers[output.context] = worker
                self.nursery.start_soon(self._run_context, output.context, worker)
            elif isinstance(output, Feed):
                try:
                    self.workers[output.context].inputs_send.send_nowait(output.request)
                except trio.WouldBlock:
                    await self._perform(self.server.overflow(output.context))
            elif isinstance(output, StopContext):
                self._stop(output)

    def _stop(self, stop: StopContext) -> None:
        worker = self.workers.pop(stop.context, None)
        if worker is not None:
            worker.scope.cancel()

    # ---------------------------------------------------------------- generation

    async def _run_context(self, ctx: EmulatedContext, worker: _Worker) -> None:
        """Turn a context's inputs into audio, in order, until `continue: false`.

        Cancelled through `worker.scope` by `cancel`, errors or the socket closing.
        """
        text = ContextText(ctx)
        try:
            with worker.scope:
                while True:
                    request = None
                    with trio.move_on_at(text.deadline()):
                        request = await worker.inputs.receive()
                    if request is None:  # the buffer delay elapsed
                        steps: list[Voice | Reply | Complete] = [text.expired()]
                    else:
                        steps = text.add(request, trio.current_time())
                    for step in steps:
                        if isinstance(step, Voice):
                            await self._generate(ctx, step)
                        elif isinstance(step, Reply):
                            await self.out_send.send(step)
                        else:
                            self.server.completed(ctx)
                            return
        finally:
            if self.workers.get(ctx) is worker:
                del self.workers[ctx]

    async def _generate(self, ctx: EmulatedContext, step: Voice) -> None:
        """Voice `step.text` into paced chunks (nothing for blank text)."""
        if not step.text.strip():
            return
        rendering = await self.voice.render(step.text, ctx.first.sample_rate)
        voicing = self.server.voicing(ctx, rendering, step.flush_id)
        for reply in voicing.header:
            await self.out_send.send(reply)
        start = trio.current_time() + self.config.first_chunk_latency_ms / 1000
        for i in range(len(voicing.pieces)):
            await trio.sleep_until(start + i * voicing.interval_s)
            chunk = self.server.chunk(ctx, voicing, i)
            if isinstance(chunk, InjectedFailure):
                await self.out_send.send(chunk.reply)
                self._stop(self.server.end(ctx))  # last: it cancels the scope we run in
                return
            await self.out_send.send(chunk)

    # ---------------------------------------------------------------- outbound

    async def _writer(self) -> None:
        async for reply in self.out:
            if reply.context is not None and reply.context.cancelled:
                continue  # queued before the cancel: never sent after it
            message = reply.message
            self.record.add(self.record.responses, (self.number, message))
            self.record.add(
                self.record.timeline, ("out", message.get("context_id"), message["type"])
            )
            self.last_activity = trio.current_time()
            self.sending = True
            try:
                await self.ws.send(orjson.dumps(message).decode())
            except SocketClosed:
                return
            finally:
                self.sending = False

    def _quiet(self) -> bool:
        """No live context, nothing queued and nothing being written (a client that
        reads slowly holds the writer in a send long after the audio was made)."""
        queued = self.out.statistics().current_buffer_used
        return not self.server.contexts and not queued and not self.sending

    async def _idle_watch(self, idle_s: float) -> None:
        while True:
            await trio.sleep_until(self.last_activity + idle_s)
            if trio.current_time() < self.last_activity + idle_s:
                continue  # traffic since
            if self._quiet():
                with trio.move_on_after(1.0) as closing:
                    await self.ws.send_close(1000, "idle timeout")  # the reader sees the end
                if not closing.cancelled_caught:
                    self.record.idle_closed += 1
                    return
            self.last_activity = trio.current_time()
