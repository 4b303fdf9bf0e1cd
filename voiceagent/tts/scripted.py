"""A deterministic `TTS` for tests: each word becomes a short tone, with word timings.

`realtime_factor` paces the audio (1.0 = as fast as it would play, 0 = no pacing), so
tests can interrupt a response while its audio is still being produced. It records
which responses were cancelled mid-synthesis (`cancelled`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from voiceagent.models.scripted import tone
from voiceagent.tts.base import TTS, AudioSink, TTSConnection, TTSError, WordTiming

CHUNK_MS = 40


@dataclass(slots=True)
class ScriptedTTS(TTS):
    ms_per_char: int = 60
    realtime_factor: float = 0.0
    fail: bool = False  # raise TTSError instead of speaking (fault injection)
    name: str = "scripted"
    cancelled: list[str] = field(default_factory=list)
    spoken: list[str] = field(default_factory=list)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[TTSConnection]:
        yield _ScriptedTTSConnection(self)


class _ScriptedTTSConnection(TTSConnection):
    def __init__(self, tts: ScriptedTTS) -> None:
        self._tts = tts

    async def synthesize(
        self, text: trio.MemoryReceiveChannel[str], sink: AudioSink, *, response_id: str
    ) -> None:
        tts = self._tts
        if tts.fail:
            raise TTSError("scripted TTS failure", code="tts_failed")
        clock_s = 0.0
        words: list[str] = []
        try:
            async for delta in text:
                for word in delta.split():
                    words.append(word)
                    duration_ms = max(CHUNK_MS, len(word) * tts.ms_per_char)
                    sink.words([WordTiming(word, clock_s, clock_s + duration_ms / 1000)])
                    clock_s += duration_ms / 1000
                    audio = tone(duration_ms)
                    for start in range(0, len(audio), CHUNK_MS * 48):
                        if tts.realtime_factor:
                            await trio.sleep(CHUNK_MS / 1000 * tts.realtime_factor)
                        await sink.audio(audio[start : start + CHUNK_MS * 48])
        except trio.Cancelled:
            tts.cancelled.append(response_id)
            raise
        tts.spoken.append(" ".join(words))
