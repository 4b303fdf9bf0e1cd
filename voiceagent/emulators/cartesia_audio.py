"""Audio for the Cartesia emulator: a cheap deterministic "voice" and the wire encodings.

`ToneVoice` turns text into one short tone per word (pitch from a checksum of the word,
a smooth envelope, a short gap between words), so audio length and word timestamps
track the text like speech does, at almost no CPU cost: load tests measure the server
under test, not the emulator. `LocalSpeechVoice` uses the project's local voice for
real speech when it is installed.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import trio

from voiceagent.tts.base import TTS, WordTiming

WORD_GAP_S = 0.04
LEAD_S = 0.02


@dataclass(frozen=True, slots=True)
class Rendering:
    """Mono float32 samples in [-1, 1] and word times (seconds from the first sample)."""

    samples: np.ndarray
    sample_rate: int
    words: list[str]
    start: list[float]
    end: list[float]


class VoiceSource(Protocol):
    async def render(self, text: str, sample_rate: int) -> Rendering: ...


class ToneVoice:
    """Deterministic tones sized by text length; long new texts render in a worker thread.

    A word's tone depends only on the word, its length in samples and the rate, and
    answers repeat their words, so tones are kept (at most `MAX_TONES`): a known text
    renders in about 0.05 ms instead of ~0.5 ms per second of audio.
    """

    MAX_TONES = 256  # a long word at 48 kHz is ~100 KB: under 25 MB in all
    THREAD_ABOVE_S = 2.0  # new audio longer than this renders off the event loop

    def __init__(self, *, seconds_per_char: float = 0.055, base_word_s: float = 0.08) -> None:
        self.seconds_per_char = seconds_per_char
        self.base_word_s = base_word_s
        self._limiter = trio.CapacityLimiter(2)
        self._tones: dict[tuple[float, int, int], np.ndarray] = {}
        self._tones_lock = threading.Lock()  # renderings run on the loop and in threads

    async def render(self, text: str, sample_rate: int) -> Rendering:
        layout = self._layout(text, sample_rate)
        if self._new_samples(layout, sample_rate) < self.THREAD_ABOVE_S * sample_rate:
            return self._render(layout, sample_rate)
        return await trio.to_thread.run_sync(
            self._render, layout, sample_rate, limiter=self._limiter
        )

    def render_sync(self, text: str, sample_rate: int) -> Rendering:
        return self._render(self._layout(text, sample_rate), sample_rate)

    def _layout(self, text: str, sample_rate: int) -> _Layout:
        words = text.split()
        starts: list[float] = []
        ends: list[float] = []
        t = LEAD_S
        for word in words:
            starts.append(round(t, 4))
            t += self.base_word_s + self.seconds_per_char * len(word)
            ends.append(round(t, 4))
            t += WORD_GAP_S
        total = round((t if words else 0.0) * sample_rate)
        spans = []
        for word, start, end in zip(words, starts, ends, strict=True):
            a, b = int(start * sample_rate), min(int(end * sample_rate), total)
            if b > a:
                spans.append((a, 140.0 + zlib.crc32(word.lower().encode()) % 120, b - a))
        return _Layout(words, starts, ends, total, spans)

    def _new_samples(self, layout: _Layout, sample_rate: int) -> int:
        return sum(n for _, pitch, n in layout.spans if (pitch, n, sample_rate) not in self._tones)

    def _render(self, layout: _Layout, sample_rate: int) -> Rendering:
        samples = np.zeros(layout.total, dtype=np.float32)
        for a, pitch, n in layout.spans:
            samples[a : a + n] = self._tone(pitch, n, sample_rate)
        return Rendering(samples, sample_rate, layout.words, layout.starts, layout.ends)

    def _tone(self, pitch: float, n: int, sample_rate: int) -> np.ndarray:
        key = (pitch, n, sample_rate)
        tone = self._tones.get(key)
        if tone is None:
            phase = 2 * np.pi * pitch * np.arange(n, dtype=np.float32) / sample_rate
            envelope = np.hanning(n).astype(np.float32)
            tone = 0.3 * envelope * (np.sin(phase) + 0.3 * np.sin(2 * phase))
            with self._tones_lock:
                if len(self._tones) >= self.MAX_TONES:
                    del self._tones[next(iter(self._tones))]  # the oldest first
                self._tones[key] = tone
        return tone


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where each word's tone goes: (first sample, pitch, length) per voiced word."""

    words: list[str]
    starts: list[float]
    ends: list[float]
    total: int
    spans: list[tuple[int, float, int]]


class LocalSpeechVoice:
    """Real speech from `voiceagent.tts.local.LocalVoiceTTS` (needs the offline extra)."""

    def __init__(self) -> None:
        from voiceagent.tts.local import LocalVoiceTTS

        self._tts = LocalVoiceTTS()

    async def render(self, text: str, sample_rate: int) -> Rendering:
        pcm24, timings = await _synthesize_with(self._tts, text)
        samples = np.frombuffer(pcm24, dtype="<i2").astype(np.float32) / 32768.0
        if sample_rate != 24_000:
            import soxr

            samples = await trio.to_thread.run_sync(soxr.resample, samples, 24_000, sample_rate)
            samples = samples.astype(np.float32)
        words = text.split()
        if [t.word for t in timings] == words:
            start = [round(t.start, 4) for t in timings]
            end = [round(t.end, 4) for t in timings]
        else:  # no usable alignment: spread the words over the audio by length
            duration = len(samples) / sample_rate
            weights = np.array([len(w) + 1 for w in words], dtype=np.float64)
            share = np.cumsum(weights) / max(float(weights.sum()), 1.0) * duration
            bounds = np.concatenate([[0.0], share])
            start = [round(float(x), 4) for x in bounds[:-1]]
            end = [round(float(x), 4) for x in bounds[1:]]
        return Rendering(samples, sample_rate, words, start, end)


async def _synthesize_with(tts: TTS, text: str) -> tuple[bytes, list[WordTiming]]:
    """Voice `text` through a project `TTS`; its 24 kHz PCM16 and word timings."""
    pieces: list[bytes] = []
    timings: list[WordTiming] = []

    class _Collect:
        async def audio(self, pcm: bytes) -> None:
            pieces.append(pcm)

        def words(self, found: Sequence[WordTiming]) -> None:
            timings.extend(found)

    send, receive = trio.open_memory_channel[str](1)
    send.send_nowait(text)
    send.close()
    async with tts.connect() as conn:
        await conn.synthesize(receive, _Collect(), response_id="emulator")
    return b"".join(pieces), timings


def encode_samples(samples: np.ndarray, encoding: str) -> bytes:
    """Float samples -> raw bytes in one of Cartesia's encodings."""
    clipped = np.clip(samples, -1.0, 1.0)
    if encoding == "pcm_f32le":
        return clipped.astype("<f4").tobytes()
    pcm16 = (clipped * 32767.0).astype(np.int32)
    if encoding == "pcm_s16le":
        return pcm16.astype("<i2").tobytes()
    if encoding == "pcm_mulaw":
        return _mulaw(pcm16).tobytes()
    if encoding == "pcm_alaw":
        return _alaw(pcm16).tobytes()
    raise ValueError(f"unknown encoding {encoding!r}")


def bytes_per_sample(encoding: str) -> int:
    return {"pcm_f32le": 4, "pcm_s16le": 2, "pcm_mulaw": 1, "pcm_alaw": 1}[encoding]


def _mulaw(x: np.ndarray) -> np.ndarray:
    """G.711 mu-law, vectorised (bias 0x84, clip 32635)."""
    sign = (x < 0).astype(np.int32) << 7
    mag = np.minimum(np.abs(x), 32635) + 0x84
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 7
    mantissa = (mag >> (exponent + 3)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def _alaw(x: np.ndarray) -> np.ndarray:
    """G.711 A-law, vectorised (sign bit set for non-negative samples, XOR 0x55)."""
    sign = np.where(x >= 0, 0x80, 0).astype(np.int32)
    mag = np.minimum(np.abs(x), 32635)
    big = mag >= 256
    exponent = np.where(big, np.floor(np.log2(np.maximum(mag, 1))).astype(np.int32) - 7, 0)
    mantissa = np.where(big, (mag >> (exponent + 3)) & 0x0F, mag >> 4)
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)
