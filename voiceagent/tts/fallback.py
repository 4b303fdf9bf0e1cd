"""`FallbackTTS`: voice a response with a primary TTS, or with a fallback if it fails early.

Rules:
- Each response tries the primary first (a failure does not stick: the next response
  tries it again; the primary's own reconnect logic bounds the cost). With
  `primary_cooldown_s` > 0, responses within that time after a primary failure go
  straight to the fallback, so a silent primary does not cost its timeout every turn.
- The primary failing with `TTSError` BEFORE any audio of the response reached the sink
  switches to the fallback, which voices the whole text: everything read so far
  (replayed from a per-response tape) and then the rest as it arrives.
- Once audio was delivered, a failure is re-raised: switching voices mid-sentence, or
  repeating words the user already heard, is worse than stopping.
- `on_fallback(error)` is called once per switch, so the session can tell the client.
  The factory's callback is the default; a session may set `connection.on_fallback`
  after `connect()` to route the error to its own client.

The tape holds the text of one response only (bounded by what the model writes for one
answer). On cancel, both voices stop with the caller's scope; nothing is buffered past it.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import trio

from voiceagent.tts.base import TTS, AudioSink, TTSConnection, TTSError, WordTiming


class FallbackTTS(TTS):
    def __init__(
        self,
        primary: TTS,
        fallback: TTS,
        *,
        on_fallback: Callable[[TTSError], None] | None = None,
        primary_cooldown_s: float = 0.0,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.on_fallback = on_fallback
        self.primary_cooldown_s = primary_cooldown_s
        self.name = primary.name

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[FallbackConnection]:
        """Enters both connections (each is cheap until it synthesizes)."""
        # Nested, not an AsyncExitStack: its exit keeps the exception it unwinds with
        # in its own frame, a reference cycle when the room is cancelled.
        async with self.primary.connect() as primary, self.fallback.connect() as fallback:
            yield FallbackConnection(
                primary, fallback, self.on_fallback, cooldown_s=self.primary_cooldown_s
            )


class _Tape:
    """The text of one response, recorded once and replayable to each voice."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.ended = False
        self._changed = trio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def record(self, text: trio.MemoryReceiveChannel[str]) -> None:
        try:
            async for delta in text:
                self.parts.append(delta)
                self._notify()
        finally:
            self.ended = True
            self._notify()

    async def play(self, send: trio.MemorySendChannel[str]) -> None:
        """Send everything recorded so far as one delta, then follow the recording."""
        async with send:
            sent = 0
            while True:
                if sent < len(self.parts):
                    chunk = "".join(self.parts[sent:])
                    sent = len(self.parts)
                    await send.send(chunk)
                elif self.ended:
                    return
                else:
                    await self._changed.wait()


class _WatchedSink:
    def __init__(self, sink: AudioSink) -> None:
        self._sink = sink
        self.delivered = False

    async def audio(self, pcm: bytes) -> None:
        if pcm:
            self.delivered = True
        await self._sink.audio(pcm)

    def words(self, timings: Sequence[WordTiming]) -> None:
        self._sink.words(timings)


class FallbackConnection(TTSConnection):
    def __init__(
        self,
        primary: TTSConnection,
        fallback: TTSConnection,
        on_fallback: Callable[[TTSError], None] | None,
        *,
        cooldown_s: float = 0.0,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        #: per-session hook (a session sets it after `connect()` to emit its own error event)
        self.on_fallback = on_fallback
        self._cooldown_s = cooldown_s
        self._primary_failed_at = -math.inf

    async def synthesize(
        self, text: trio.MemoryReceiveChannel[str], sink: AudioSink, *, response_id: str
    ) -> None:
        """Primary first; fallback if the primary fails before its first audio byte.

        On cancel: both the recorder and the active voice stop with the caller's scope.
        On error: a TTSError after audio was delivered, or from the fallback, propagates.
        """
        tape = _Tape()
        watched = _WatchedSink(sink)
        cooling = trio.current_time() < self._primary_failed_at + self._cooldown_s
        with _Unwrapped():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(tape.record, text)
                if cooling or not await self._primary_voiced(tape, watched, response_id):
                    await self._voice(self._fallback, tape, watched, f"{response_id}-fallback")
                nursery.cancel_scope.cancel()  # the recorder, if the voice ended first

    async def _primary_voiced(self, tape: _Tape, sink: _WatchedSink, response_id: str) -> bool:
        """True when the primary voiced the response; False when it failed before audio."""
        try:
            await self._voice(self._primary, tape, sink, response_id)
        except TTSError as error:
            self._primary_failed_at = trio.current_time()
            if sink.delivered:
                raise
            if self.on_fallback is not None:
                self.on_fallback(error)
            return False
        return True

    @staticmethod
    async def _voice(conn: TTSConnection, tape: _Tape, sink: AudioSink, response_id: str) -> None:
        send, receive = trio.open_memory_channel[str](16)
        try:
            with _Unwrapped():
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(tape.play, send)
                    await conn.synthesize(receive, sink, response_id=response_id)
                    nursery.cancel_scope.cancel()  # the voice is done; stop feeding it
        finally:
            receive.close()


class _Unwrapped:
    """Re-raise a nursery's single real failure as itself (Cancelled groups pass as is).

    A class, not a `@contextmanager`: the generator's `__exit__` frame would keep the
    group on the traceback of the failure it raises, a reference cycle.
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, group: BaseException | None, tb: object) -> bool:
        if not isinstance(group, BaseExceptionGroup):
            return False
        first = _first_failure(group)
        del group, tb  # no local may keep the group (its traceback holds this frame)
        if first is None:
            return False  # only Cancelled: the group goes on as it is
        try:
            raise first from None
        finally:
            first.__context__ = None  # the group, which holds `first`: a cycle
            del first


def _first_failure(group: BaseExceptionGroup) -> BaseException | None:
    """The group's first failure that is not Cancelled; None when there is none."""
    others = group.split(trio.Cancelled)[1]
    first: BaseException | None = others
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
