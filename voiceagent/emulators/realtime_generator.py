"""The response generator: one response's output, produced from the brain's reply.

The shell runs `ResponseGenerator.run(response)` in one task per response, under that
response's cancel scope. It sends ``response.created`` and ``rate_limits.updated``, asks
the brain (`realtime_parts.ask_brain`) with the session as an `AgentSetup` and a snapshot
of the conversation, then produces the output items: one function call per call the
brain makes (when the response has tools), else one assistant message, text or audio.
It builds every event with the pure steps of `realtime_responses`; its own part is the
timing and the faults (`realtime_config`):

- Pacing: `first_token_s` before the first output; text deltas ``1 / tokens_per_s``
  apart (0 = unpaced); audio in `audio_chunk_ms` chunks (at least 20 ms), each due its
  own length times `audio_rtf` after the one before, the transcript words spread over
  the chunks. Each delta has a deadline on one schedule that starts with the output, as
  a remote service keeps its own clock: a late wake-up or a slow send on this machine
  does not push the deltas after it later (they catch up), so a loaded emulator does
  not slow the answer down by more than it is late once.
- Faults, counted in deltas of response number n: `error_on_response` sends an ``error``
  event instead of output (the response then fails); after `after_deltas` deltas,
  `drop_on_response` calls `drop` (the shell closes the TCP stream and ends the
  session) and `stall_on_response` waits forever (until cancelled).

Cancellation may come at any await. There is nothing to clean up: the open item and
the text said so far stay as they are, and the tail (built once, see
`realtime_responses`) reports them. An exception from the brain is not caught: it ends
the session, loudly (a broken test brain is a bug to see, not a protocol event).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from voiceagent.emulators import realtime_responses as steps
from voiceagent.emulators.realtime_config import EmulatorConfig
from voiceagent.emulators.realtime_items import WireItem, assistant_message, function_call_item
from voiceagent.emulators.realtime_parts import Brain, ask_brain, speech_ms, synthetic_voice, tokens
from voiceagent.emulators.realtime_responses import ResponseState
from voiceagent.emulators.realtime_server import RealtimeServer

Emit = Callable[[dict[str, Any]], Awaitable[None]]


class ResponseGenerator:
    """Produces responses for one session; see the module docstring."""

    def __init__(
        self,
        server: RealtimeServer,
        config: EmulatorConfig,
        brain: Brain,
        emit: Emit,
        drop: Callable[[], Awaitable[None]],
    ) -> None:
        self.server = server
        self.config = config
        self.brain = brain
        self.emit = emit
        self.drop = drop

    async def _send(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            await self.emit(event)

    async def run(self, r: ResponseState) -> None:
        """Send the response up to (not including) its tail."""
        server, config = self.server, self.config
        await self.emit(steps.created(server, r))
        await self.emit(
            steps.rate_limits_event(
                config.rate_limit_requests, config.rate_limit_tokens, server.responses
            )
        )
        if config.faults.error_on_response == r.number:
            await self.emit(steps.SERVER_ERROR_EVENT)
            r.cancel_reason = "error"
            return
        setup = server.session.agent_setup(r.instructions, r.tools)
        reply = await ask_brain(self.brain, setup, server.conversation.history())
        if config.first_token_s > 0:
            await trio.sleep(config.first_token_s)
        if reply.calls and setup.tools:
            for name, arguments in reply.calls:
                await self._function_call(r, name, arguments)
        else:
            await self._message(r, reply.text)

    async def _fault_point(self, r: ResponseState) -> None:
        """Count a delta; drop or stall here when a fault says so."""
        r.deltas += 1
        faults = self.config.faults
        if r.deltas != faults.after_deltas:
            return
        if faults.drop_on_response == r.number:
            await self.drop()
        if faults.stall_on_response == r.number:
            await trio.sleep_forever()

    async def _function_call(self, r: ResponseState, name: str, arguments: str) -> None:
        server = self.server
        item = function_call_item(server.new_id("item"), name, server.new_id("call"))
        await self._send(steps.open_output(server, r, item))
        base = steps.item_base(r, item)
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            if piece:
                item.item.arguments = (item.item.arguments or "") + piece
                await self.emit(
                    {"type": "response.function_call_arguments.delta", **base, "delta": piece}
                )
                await self._fault_point(r)
        await self._send(steps.close_function_call(server, r, item, "completed"))
        r.output_chars += len(arguments)

    async def _message(self, r: ResponseState, text: str) -> None:
        server = self.server
        audio = r.modalities == ["audio"]
        item = assistant_message(server.new_id("item"))
        await self._send(steps.open_output(server, r, item))
        await self.emit(steps.add_part(r, item, audio))
        base = steps.item_base(r, item)
        words = tokens(text)
        if audio:
            await self._speak(r, item, base, words)
        else:
            stem = steps.names(server.flavor)["text"]
            gap = 1.0 / self.config.tokens_per_s if self.config.tokens_per_s > 0 else 0.0
            start = trio.current_time()
            for n, word in enumerate(words, 1):
                if gap:
                    await trio.sleep_until(start + n * gap)
                item.add_text(0, word)
                r.output_chars += len(word)
                await self.emit({"type": stem + ".delta", **base, "delta": word})
                await self._fault_point(r)
        await self._send(steps.close_message(server, r, item, "completed"))

    async def _speak(
        self, r: ResponseState, item: WireItem, base: dict[str, Any], words: list[str]
    ) -> None:
        """Audio chunks paced by `audio_rtf`, with the transcript spread over them."""
        stems = steps.names(self.server.flavor)
        total_ms = speech_ms("".join(words))
        chunk_ms = max(20, self.config.audio_chunk_ms)
        chunks = max(1, math.ceil(total_ms / chunk_ms))
        said = 0
        due = trio.current_time()
        for n in range(chunks):
            ms = min(chunk_ms, total_ms - n * chunk_ms)
            target = len(words) * (n + 1) // chunks
            for word in words[said:target]:
                item.add_text(0, word)
                r.output_chars += len(word)
                await self.emit({"type": stems["transcript"] + ".delta", **base, "delta": word})
            said = target
            pcm = synthetic_voice(ms)
            if self.config.audio_rtf > 0:
                due += ms / 1000.0 * self.config.audio_rtf
                await trio.sleep_until(due)
            item.audio_ms += ms
            r.output_audio_ms += ms
            delta = base64.b64encode(pcm).decode()
            await self.emit({"type": stems["audio"] + ".delta", **base, "delta": delta})
            await self._fault_point(r)
