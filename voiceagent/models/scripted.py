"""A deterministic, scripted `RealtimeModel` for tests and demos of the session runtime.

It speaks the same event vocabulary as the real providers with none of their
uncertainty: replies are looked up by keyword, streamed word by word with a fixed
delay, and tool calls are made when a script says so. Audio input runs through a tiny
energy VAD (speech = mean |sample| above a threshold) so spoken turns and model-side
barge-in can be exercised without a speech engine. Spoken turns are transcribed as
the next of `spoken` (else "(spoken)"); once the session asks (`hold_spoken_turns`,
refused when `hold_turns` is False) a turn its VAD ends waits for `answer_input()`,
as the real providers do when the session decides turns (a manual commit is answered
at once).

It records what it was told (`ScriptedModel.log`): texts, tool outputs, agent
switches and what the user heard of interrupted responses, so tests can assert the
conversation the model kept.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from voiceagent.conversation import AgentSetup, ConversationItem, Heard
from voiceagent.events import (
    AudioDelta,
    FunctionCall,
    InputCommitted,
    ModelEvent,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptCompleted,
    Usage,
)
from voiceagent.models.base import (
    ModelClosed,
    ModelConnection,
    ModelConnectionError,
    OutputMode,
    RealtimeModel,
)
from voiceagent.pcm import SAMPLE_RATE, pcm_ms

EVENT_CAPACITY = 256


@dataclass(frozen=True, slots=True)
class ScriptedReply:
    """What to answer: `text`, or tool `calls` first and then `after_tools`."""

    text: str = ""
    calls: tuple[tuple[str, str], ...] = ()
    after_tools: str | None = None  # None: "Done: <first tool output>"


@dataclass(slots=True)
class ScriptedModel(RealtimeModel):
    replies: Mapping[str, ScriptedReply] = field(default_factory=dict)
    default: ScriptedReply = field(default_factory=lambda: ScriptedReply("I heard you."))
    delta_delay: float = 0.0  # seconds between streamed words
    vad_threshold: float = 500.0  # mean |sample| that counts as speech
    silence_ms: int = 300  # silence that ends a spoken turn
    fail_connects: int = 0  # refuse this many connects first (fault injection)
    drop_after_deltas: int | None = None  # drop the connection mid-response
    audio_delay: float = 0.0  # a slow provider: each audio append takes this long
    hold_turns: bool = True  # VAD-ended turns may wait for answer_input()
    spoken: list[str] = field(default_factory=list)  # transcripts of the next spoken turns
    transcript_delay: float = 0.0  # a slow transcriber: held turns' transcripts come late
    name: str = "scripted"
    offline_brain: bool = False
    log: list[tuple[str, Any]] = field(default_factory=list)
    connects: int = 0

    def reply_for(self, text: str) -> ScriptedReply:
        lowered = text.lower()
        for keyword, reply in self.replies.items():
            if keyword.lower() in lowered:
                return reply
        return self.default

    @asynccontextmanager
    async def connect(
        self, setup: AgentSetup, *, output: OutputMode
    ) -> AsyncIterator[ModelConnection]:
        self.connects += 1
        if self.fail_connects > 0:
            self.fail_connects -= 1
            raise ModelConnectionError("scripted connect failure", code="model_unavailable")
        self.log.append(("connect", setup.agent_name))
        async with trio.open_nursery() as nursery:
            conn = _ScriptedConnection(self, setup, output, nursery)
            try:
                yield conn
            finally:
                conn.closed = True
                nursery.cancel_scope.cancel()


class _ScriptedConnection(ModelConnection):
    def __init__(
        self, model: ScriptedModel, setup: AgentSetup, output: OutputMode, nursery: trio.Nursery
    ) -> None:
        self._model = model
        self.setup = setup
        self._output = output
        self._nursery = nursery
        self._tx, self._rx = trio.open_memory_channel[ModelEvent](EVENT_CAPACITY)
        self._ids = itertools.count(1)
        self._response_scope: trio.CancelScope | None = None
        self._pending_calls: set[str] = set()
        self._after_tools: str | None = None
        self._tool_outputs: list[str] = []
        self._speaking = False
        self._silence_ms = 0
        self._audio_ms = 0
        self._deltas_sent = 0
        self._held: dict[str, str] = {}  # item id -> transcript, waiting for answer_input
        self._speech_item: str | None = None
        self.closed = False

    def hold_spoken_turns(self) -> bool:
        self.holds_spoken_turns = self._model.hold_turns
        return self.holds_spoken_turns

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids)}"

    def _check_open(self) -> None:
        if self.closed:
            raise ModelClosed()

    # -- input ------------------------------------------------------------------------

    async def send_audio(self, pcm: bytes) -> None:
        self._check_open()
        if self._model.audio_delay:
            await trio.sleep(self._model.audio_delay)
        samples = np.frombuffer(pcm, dtype="<i2")
        duration_ms = pcm_ms(len(pcm))
        loud = bool(samples.size) and float(np.abs(samples.astype(np.int32)).mean()) > (
            self._model.vad_threshold
        )
        self._audio_ms += duration_ms
        self._model.log.append(("audio_ms", duration_ms))
        if loud:
            self._silence_ms = 0
            if not self._speaking:
                self._speaking = True
                self._speech_item = self._id("item")
                await self._tx.send(SpeechStarted(self._audio_ms - duration_ms, self._speech_item))
        elif self._speaking:
            self._silence_ms += duration_ms
            if self._silence_ms >= self._model.silence_ms:
                self._speaking = False
                # The speech ended when the silence began.
                ended = self._audio_ms - self._silence_ms
                await self._tx.send(SpeechStopped(ended, self._speech_item))
                await self._user_turn(self._transcript(), hold=self.holds_spoken_turns)

    async def commit_audio(self) -> None:
        self._check_open()
        self._model.log.append(("commit", self._audio_ms))
        self._speaking = False
        await self._user_turn(self._transcript(), hold=False)

    def _transcript(self) -> str:
        return self._model.spoken.pop(0) if self._model.spoken else "(spoken)"

    async def _user_turn(self, transcript: str, *, hold: bool) -> None:
        item_id = self._speech_item or self._id("item")
        self._speech_item = None
        if hold:  # before the events: the answer may come back before they are sent
            self._held[item_id] = transcript
        await self._tx.send(InputCommitted(item_id))
        if hold and self._model.transcript_delay:
            self._nursery.start_soon(self._late_transcript, item_id, transcript)
            return
        await self._tx.send(TranscriptCompleted(item_id, transcript))
        if hold:
            return
        self._model.log.append(("user", transcript))
        self._respond(self._model.reply_for(transcript))

    async def _late_transcript(self, item_id: str, transcript: str) -> None:
        await trio.sleep(self._model.transcript_delay)
        await self._tx.send(TranscriptCompleted(item_id, transcript))

    async def answer_input(self, item_id: str, respond: bool) -> None:
        self._check_open()
        transcript = self._held.pop(item_id, None)
        if transcript is None:
            return
        if respond:
            self._model.log.append(("user", transcript))
            self._respond(self._model.reply_for(transcript))
        else:
            self._model.log.append(("dropped", transcript))

    async def send_text(self, text: str) -> None:
        self._check_open()
        self._model.log.append(("user", text))
        self._respond(self._model.reply_for(text))

    async def send_tool_result(self, call_id: str, output: str, *, respond: bool = True) -> None:
        self._check_open()
        self._model.log.append(("tool", (call_id, output)))
        self._pending_calls.discard(call_id)
        self._tool_outputs.append(output)
        if respond and not self._pending_calls:
            text = self._after_tools
            if text is None:
                text = f"Done: {self._tool_outputs[0]}"
            self._tool_outputs = []
            self._respond(ScriptedReply(text))

    async def update_agent(self, setup: AgentSetup) -> None:
        self._check_open()
        self.setup = setup
        self._model.log.append(("agent", setup.agent_name))

    async def add_history(self, items: Sequence[ConversationItem]) -> None:
        self._check_open()
        self._model.log.append(("history", list(items)))

    async def cancel_response(self, heard: Heard) -> None:
        self._check_open()
        self._model.log.append(("heard", heard))
        if self._response_scope is not None:
            self._response_scope.cancel()

    def __aiter__(self) -> AsyncIterator[ModelEvent]:
        return self._rx.__aiter__()

    # -- output -----------------------------------------------------------------------

    def _respond(self, reply: ScriptedReply) -> None:
        if self._response_scope is not None:
            self._response_scope.cancel()  # one response at a time, like the real APIs
        scope = trio.CancelScope()
        self._response_scope = scope
        self._nursery.start_soon(self._stream_reply, reply, scope)

    async def _stream_reply(self, reply: ScriptedReply, scope: trio.CancelScope) -> None:
        response_id = self._id("resp")
        item_id = self._id("item")
        send = self._tx.send
        status = "completed"
        await send(ResponseStarted(response_id))
        with scope:
            if reply.calls:
                self._after_tools = reply.after_tools
                for name, arguments in reply.calls:
                    call_id = self._id("call")
                    self._pending_calls.add(call_id)
                    await send(FunctionCall(response_id, item_id, call_id, name, arguments))
            else:
                await self._stream_text(response_id, item_id, reply.text)
        if scope.cancelled_caught:
            status = "cancelled"
        if self._response_scope is scope:
            self._response_scope = None
        words = len(reply.text.split())
        await send(ResponseDone(response_id, status, Usage(input_tokens=10, output_tokens=words)))

    async def _stream_text(self, response_id: str, item_id: str, text: str) -> None:
        words = text.split(" ")
        for index, word in enumerate(words):
            delta = word if index == len(words) - 1 else word + " "
            if self._model.delta_delay:
                await trio.sleep(self._model.delta_delay)
            self._deltas_sent += 1
            drop_after = self._model.drop_after_deltas
            if drop_after is not None and self._deltas_sent > drop_after:
                raise ModelConnectionError("scripted drop mid-response", code="model_dropped")
            await self._tx.send(TextDelta(response_id, item_id, delta))
            if self._output == "audio":
                await self._tx.send(AudioDelta(response_id, item_id, tone(len(word) * 60)))
        await self._tx.send(TextDone(response_id, item_id, text))


def tone(duration_ms: int, frequency: float = 440.0, amplitude: int = 3000) -> bytes:
    """A sine tone as PCM16 LE mono 24 kHz (stand-in speech for scripted voices)."""
    count = duration_ms * SAMPLE_RATE // 1000
    t = np.arange(count) / SAMPLE_RATE
    wave = amplitude * np.sin(2 * math.pi * frequency * t)
    return wave.astype("<i2").tobytes()


def words_of(texts: Sequence[str]) -> list[str]:
    return [word for text in texts for word in text.split()]
