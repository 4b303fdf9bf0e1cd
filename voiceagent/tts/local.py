"""The local voice: piper for English, espeak-ng for other languages and as fallback.

Text streams in from the model; it is cut into sentences as soon as a sentence ends
(`.`, `!`, `?`, `;`, `:`, `…`, a newline, or a long run without punctuation), each
sentence is synthesised in a worker thread, and its audio goes to the sink in
`chunk_ms` pieces. Two tasks share the work so the next sentence is synthesised while
the previous one is being delivered.

Sharing: the voice model is loaded once per process (`warm_up()` or the first
sentence) and used by every session. A process-wide `CapacityLimiter` caps how many
sentences synthesise at once (piper: `synthesis_threads`; espeak-ng: 1, it is not
re-entrant).

Cancellation: cancelling `synthesize()` stops delivery at the next checkpoint; a
synthesis call already running in its thread is abandoned (it finishes in the
background and its audio is dropped). Nothing reaches the sink after cancellation.
Errors: an engine failure raises `TTSError`; an unknown language raises `TTSError`
with code "tts_unavailable".
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

from voiceagent.speech.voices import OUTPUT_SAMPLE_RATE, Voice, VoiceUnavailable, load_voice
from voiceagent.tts.base import TTS, AudioSink, TTSConnection, TTSError, WordTiming

_SENTENCE_END = re.compile(r"(?<=[.!?;:\u2026])\s+|\n+")
_BYTES_PER_MS = OUTPUT_SAMPLE_RATE * 2 // 1000


@dataclass(frozen=True, slots=True)
class LocalVoiceConfig:
    """Local voice settings (env: VOICEAGENT_LANGUAGE picks `language`)."""

    language: str = "en"
    #: use piper for English when installed (False: always espeak-ng)
    prefer_piper: bool = True
    #: audio is handed to the sink in pieces of this length
    chunk_ms: int = 100
    #: sentences synthesised at once in this process (piper; espeak-ng is always 1)
    synthesis_threads: int = 2
    #: a sentence longer than this is cut at a word boundary (keeps first audio early)
    max_sentence_chars: int = 240

    def __post_init__(self) -> None:
        if self.chunk_ms < 10:
            raise ValueError("chunk_ms must be >= 10")
        if self.synthesis_threads < 1:
            raise ValueError("synthesis_threads must be >= 1")
        if self.max_sentence_chars < 20:
            raise ValueError("max_sentence_chars must be >= 20")


class SentenceSplitter:
    """Accumulates streamed text and hands out complete sentences (pure, no I/O)."""

    def __init__(self, max_chars: int = 240) -> None:
        self._buffer = ""
        self._max_chars = max_chars

    def push(self, text: str) -> list[str]:
        """Add text; return the sentences it completed."""
        self._buffer += text
        sentences: list[str] = []
        while True:
            match = _SENTENCE_END.search(self._buffer)
            if match is None:
                break
            sentence, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            if sentence.strip():
                sentences.append(sentence.strip())
        while len(self._buffer) > self._max_chars:
            cut = self._buffer.rfind(" ", 0, self._max_chars)
            cut = cut if cut > 0 else self._max_chars
            sentence, self._buffer = self._buffer[:cut], self._buffer[cut:]
            if sentence.strip():
                sentences.append(sentence.strip())
        return sentences

    def flush(self) -> str | None:
        """The unfinished rest (when the text is complete), or None."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None


def estimate_word_timings(sentence: str, start: float, duration: float) -> list[WordTiming]:
    """Spread `duration` over the words by character count.

    The engines give no word alignment; this estimate is good enough to tell which
    words of a reply were heard before a barge-in.
    """
    words = sentence.split()
    total = sum(len(word) for word in words)
    if not words or total == 0 or duration <= 0:
        return []
    timings: list[WordTiming] = []
    at = start
    for word in words:
        length = duration * len(word) / total
        timings.append(WordTiming(word=word, start=at, end=at + length))
        at += length
    return timings


# One limiter per engine per process. Limiters belong to one Trio run, so they live in
# a RunVar (tests start many runs in one process; an app has one).
_LIMITERS: trio.lowlevel.RunVar[dict[str, trio.CapacityLimiter]] = trio.lowlevel.RunVar(
    "local_voice_limiters"
)


def _limiter_for(voice: Voice, threads: int) -> trio.CapacityLimiter:
    try:
        limiters = _LIMITERS.get()
    except LookupError:
        limiters = {}
        _LIMITERS.set(limiters)
    if voice.name not in limiters:
        # espeak-ng is not re-entrant: one sentence at a time, whatever the setting.
        limiters[voice.name] = trio.CapacityLimiter(1 if voice.name == "espeak-ng" else threads)
    return limiters[voice.name]


class LocalVoiceTTS(TTS):
    """The embedded local voice; one per app, shared by all sessions."""

    name = "local"

    def __init__(
        self, config: LocalVoiceConfig | None = None, *, voice: Voice | None = None
    ) -> None:
        """`voice` replaces the engine chosen from `config` (any `Voice`: a wrapper that
        measures, another engine); by default the process's shared voice is used."""
        self.config = config or LocalVoiceConfig()
        self._voice = voice

    async def voice(self) -> Voice:
        """The shared voice, loaded in a thread on first use (the wait is cancellable).

        Raises `TTSError` (code "tts_unavailable") when no engine can speak the language.
        """
        if self._voice is None:
            config = self.config
            try:
                self._voice = await trio.to_thread.run_sync(
                    lambda: load_voice(config.language, prefer_piper=config.prefer_piper),
                    abandon_on_cancel=True,
                )
            except VoiceUnavailable as exc:
                raise TTSError(str(exc), code="tts_unavailable") from exc
        return self._voice

    async def warm_up(self) -> None:
        """Load the voice and synthesise one word (call at app startup; ~2-3 s for piper)."""
        voice = await self.voice()
        await trio.to_thread.run_sync(voice.synthesize, "Ready.", abandon_on_cancel=True)

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[TTSConnection]:
        yield _LocalVoiceConnection(self)


class _LocalVoiceConnection(TTSConnection):
    def __init__(self, tts: LocalVoiceTTS) -> None:
        self._tts = tts

    async def synthesize(
        self, text: trio.MemoryReceiveChannel[str], sink: AudioSink, *, response_id: str
    ) -> None:
        config = self._tts.config
        voice = await self._tts.voice()
        limiter = _limiter_for(voice, config.synthesis_threads)
        send_audio, receive_audio = trio.open_memory_channel[tuple[str, bytes]](1)

        async def synthesise_sentences() -> None:
            splitter = SentenceSplitter(config.max_sentence_chars)
            async with send_audio:
                async for piece in text:
                    for sentence in splitter.push(piece):
                        await send_audio.send((sentence, await self._run(voice, sentence, limiter)))
                rest = splitter.flush()
                if rest is not None:
                    await send_audio.send((rest, await self._run(voice, rest, limiter)))

        async def deliver() -> None:
            spoken_s = 0.0
            chunk_bytes = config.chunk_ms * _BYTES_PER_MS
            async with receive_audio:
                async for sentence, pcm in receive_audio:
                    duration = len(pcm) / 2 / OUTPUT_SAMPLE_RATE
                    sink.words(estimate_word_timings(sentence, spoken_s, duration))
                    spoken_s += duration
                    for offset in range(0, len(pcm), chunk_bytes):
                        await sink.audio(pcm[offset : offset + chunk_bytes])
                        # A sink that never blocks must not make a cancel wait for the
                        # end of the sentence.
                        await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(synthesise_sentences)
            nursery.start_soon(deliver)

    @staticmethod
    async def _run(voice: Voice, sentence: str, limiter: trio.CapacityLimiter) -> bytes:
        try:
            # abandon_on_cancel: a barge-in must not wait for the sentence to finish;
            # the abandoned result is simply never delivered.
            return await trio.to_thread.run_sync(
                voice.synthesize, sentence, limiter=limiter, abandon_on_cancel=True
            )
        except Exception as exc:  # any engine failure is this response's TTSError
            raise TTSError(f"{voice.name} failed on a sentence: {exc}") from exc
