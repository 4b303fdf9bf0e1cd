"""Voicing responses: one TTS connection per session, one `speak` task per response.

Rules:
1. The TTS connection is opened on first use by a holder task in the session's work
   and lives until the session ends.
2. Each response with a voice gets a text channel (`TEXT_TO_TTS_CAPACITY` deltas) and
   a `speak` task inside the response's own cancel scope; a barge-in cancels that
   scope. Responses speak one after another, in the order they started (the speaker
   lock), so "let me check" is never talked over by the answer that follows it.
3. Audio leaves through `send_audio`, tagged with its response's epoch: the first
   chunk is preceded by `audio_start`; chunks are `WS_TTS_CHUNK_BYTES` at most.
   While the outbox is paused (the user's speech is being judged) a TTS's audio
   waits: the voice keeps its place and nothing piles up. The model's own audio is
   not held back here (its events carry the transcripts that end the pause); the
   outbox holds it instead.
4. A TTS failure is an `error` event for the client; the response's text has reached
   it already, so the session goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import trio

from voiceagent import metrics
from voiceagent.logs import log_event
from voiceagent.pcm import SAMPLE_RATE
from voiceagent.protocol import chunk_pcm, error_event, event
from voiceagent.session.room import Room
from voiceagent.session.turns import Response
from voiceagent.tts.base import TTSConnection, TTSError, WordTiming

log = logging.getLogger("voiceagent.session")

TEXT_TO_TTS_CAPACITY = 1024

Finish = Callable[[Response], Awaitable[None]]


class Speaker:
    def __init__(self, room: Room) -> None:
        self._room = room
        self._lock: trio.Lock | None = None  # made when the room first speaks
        self._conn: TTSConnection | None = None
        self._ready: trio.Event | None = None

    @property
    def enabled(self) -> bool:
        return self._room.services.tts is not None and self._room.work is not None

    def start(self, response: Response, finish: Finish) -> None:
        """Give `response` a voice: its text goes into `response.text_tx` (rule 2)."""
        assert self._room.work is not None
        text_tx, text_rx = trio.open_memory_channel[str](TEXT_TO_TTS_CAPACITY)
        response.text_tx = text_tx
        response.tts_scope = trio.CancelScope()
        self._room.work.start_soon(self._speak, response, text_rx, finish)

    def say(self, response: Response, line: str, finish: Finish) -> None:
        """Voice one known line as `response` (e.g. a guardrail's safe line)."""
        assert self._room.work is not None
        text_tx, text_rx = trio.open_memory_channel[str](1)
        text_tx.send_nowait(line)
        text_tx.close()
        response.tts_scope = trio.CancelScope()
        self._room.work.start_soon(self._speak, response, text_rx, finish)

    async def _speak(
        self, response: Response, text: trio.MemoryReceiveChannel[str], finish: Finish
    ) -> None:
        """Voice one response, after the ones before it, inside its cancel scope."""
        assert response.tts_scope is not None
        if self._lock is None:
            self._lock = trio.Lock()  # responses speak one after another, in order
        with response.tts_scope:
            async with self._lock:
                conn = await self._connection()
                sink = _ResponseSink(self, response)
                try:
                    await conn.synthesize(text, sink, response_id=response.response_id)
                except TTSError as exc:
                    metrics.count_error(exc.code)
                    log_event(
                        log,
                        "tts_failed",
                        level=logging.WARNING,
                        code=exc.code,
                        error=str(exc),
                        detail=exc.detail,
                    )
                    await self._room.put(error_event(exc.code, f"{self._tts_name}: {exc}"))
        response.speech_done = True
        # An interrupted response is reported too: its turn had a first audio, and a
        # turn's figures must not leave out the turns the user cut short.
        if response.model_done:
            await finish(response)

    @property
    def _tts_name(self) -> str:
        tts = self._room.services.tts
        return tts.name if tts is not None else "none"

    async def _connection(self) -> TTSConnection:
        """The session's TTS connection, opened on first use by a holder task."""
        if self._ready is None:
            assert self._room.work is not None
            self._ready = trio.Event()
            self._room.work.start_soon(self._hold)
        await self._ready.wait()
        assert self._conn is not None
        return self._conn

    async def _hold(self) -> None:
        tts = self._room.services.tts
        assert tts is not None and self._ready is not None
        async with tts.connect() as conn:
            hooked = hasattr(conn, "on_fallback")
            if hooked:
                conn.on_fallback = self._fell_back  # FallbackTTS: tell the client
            self._conn = conn
            self._ready.set()
            try:
                await trio.sleep_forever()  # until the session's work is cancelled
            finally:
                if hooked:  # our bound method: the connection must not keep it (a cycle)
                    conn.on_fallback = None

    def _fell_back(self, error: TTSError) -> None:
        metrics.count_error(error.code)
        log_event(
            log,
            "tts_fallback",
            level=logging.WARNING,
            code=error.code,
            error=str(error),
            detail=error.detail,
        )
        self._room.outbox.urgent(error_event(error.code, f"{error}; speaking with the local voice"))

    async def send_audio(self, response: Response, pcm: bytes) -> None:
        """Queue one piece of `response`'s audio for the client (rule 3)."""
        if response.interrupted or not pcm:
            return
        room = self._room
        arrived = trio.current_time()
        timer = response.timer
        if response.first_audio_at is None:
            response.first_audio_at = arrived
            if timer is not None:
                timer.tts_first_audio()
            await room.put(
                event("audio_start", response_id=response.response_id, sample_rate=SAMPLE_RATE),
                epoch=response.epoch,
            )
        if room.recorder is not None:
            room.recorder.agent(response.response_id, pcm, arrived)
        for chunk in chunk_pcm(pcm, room.settings.ws_tts_chunk_bytes):
            await room.put(chunk, epoch=response.epoch, arrived=arrived)
            if response.interrupted:
                return
            response.audio_bytes += len(chunk)
        if timer is not None:
            timer.first_audio_sent()


class _ResponseSink:
    """Where a TTS delivers one response's audio and word timings."""

    __slots__ = ("_response", "_speaker")

    def __init__(self, speaker: Speaker, response: Response) -> None:
        self._speaker = speaker
        self._response = response

    async def audio(self, pcm: bytes) -> None:
        outbox = self._speaker._room.outbox
        if outbox.paused:
            await outbox.wait_unpaused()  # rule 3; a barge-in cancels this wait
        await self._speaker.send_audio(self._response, pcm)

    def words(self, timings: Iterable[Any]) -> None:
        self._response.words.extend(
            t if isinstance(t, WordTiming) else WordTiming(*t) for t in timings
        )
