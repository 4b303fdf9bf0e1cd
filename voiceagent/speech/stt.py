"""Offline speech recognition with pocketsphinx, in worker processes.

pocketsphinx holds the GIL for the whole decode (seconds for a long utterance), so it
can never run on the event loop nor in a thread of this process. Each call goes to a
`trio_parallel` worker process; every worker builds one `Decoder` the first time it is
asked and keeps it (module global) for all later calls, so the ~1 s model load and the
~90 MB are paid once per worker, not per utterance. A `trio.CapacityLimiter` caps how
many utterances decode at once, which also caps how many workers stay alive.

Workers run at a lower CPU priority (`WORKER_NICENESS`) than the server process, so
a burst of decoding never starves the event loop of a core.

One utterance is decoded in one `full_utt=True` pass when it is complete: on clear
speech that is both more accurate and, in total, cheaper than streaming partials.

Cancellation: `transcribe()` kills the worker if it is cancelled mid-decode (the next
call starts a fresh one), so leaving a session never waits for a long decode.
"""

from __future__ import annotations

import math

import trio

SAMPLE_RATE = 16_000
#: longest utterance accepted (seconds); bounds pickled payloads and worker time
MAX_UTTERANCE_S = 60.0

#: how much lower than the server the worker processes run (Unix nice increment)
WORKER_NICENESS = 10

_decoder = None  # the worker process's Decoder, built on first use


class SpeechRecognitionError(Exception):
    """Bad audio was given, or the recogniser failed (message says which)."""


def _worker_decoder():  # type: ignore[no-untyped-def]
    """The process-wide decoder (runs in a worker process)."""
    global _decoder
    if _decoder is None:
        import os

        from pocketsphinx import Decoder

        # Recognition is background work: when the cores are busy, the server's event
        # loop (every session's audio and sockets) must get them first.
        try:
            os.nice(WORKER_NICENESS)
        except OSError:
            pass  # not permitted here: run at normal priority

        # fwdflat=False: the second flat pass costs ~40% more CPU for no gain on
        # short utterances.
        _decoder = Decoder(fwdflat=False, samprate=SAMPLE_RATE, loglevel="FATAL")
    return _decoder


def _worker_warm_up() -> int:
    """Build the decoder of this worker; returns its pid (so warm-up can count workers)."""
    import os

    _worker_decoder()
    return os.getpid()


def _worker_decode(pcm: bytes, sample_rate: int) -> str:
    """Decode one complete utterance (runs in a worker process)."""
    if sample_rate != SAMPLE_RATE:
        import numpy as np
        import soxr

        samples = np.frombuffer(pcm, dtype=np.int16)
        pcm = soxr.resample(samples, sample_rate, SAMPLE_RATE).astype(np.int16).tobytes()
    decoder = _worker_decoder()
    decoder.start_utt()
    decoder.process_raw(pcm, no_search=False, full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr.strip() if hypothesis is not None else ""


class Recognizer:
    """Shared speech recogniser (one per app); safe to use from many sessions at once.

    `transcribe()` waits for a free slot when `max_concurrency` utterances are already
    decoding; the wait is a plain Trio checkpoint and is cancellable.
    """

    def __init__(self, max_concurrency: int = 2) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.max_concurrency = max_concurrency
        self._limiter = trio.CapacityLimiter(max_concurrency)

    async def transcribe(self, pcm: bytes, sample_rate: int = 24_000) -> str:
        """The final transcript of one utterance (PCM16 LE mono); "" when nothing was heard.

        Raises `SpeechRecognitionError` for malformed or over-long audio and when the
        worker dies. On cancellation the worker is killed and nothing is returned.
        """
        import trio_parallel

        if sample_rate not in (8_000, 16_000, 22_050, 24_000, 44_100, 48_000):
            raise SpeechRecognitionError(f"unsupported sample rate {sample_rate}")
        if len(pcm) % 2:
            raise SpeechRecognitionError("PCM16 audio must have an even byte count")
        if len(pcm) > MAX_UTTERANCE_S * sample_rate * 2:
            raise SpeechRecognitionError(f"utterance longer than {MAX_UTTERANCE_S:.0f} s")
        if len(pcm) < sample_rate // 10 * 2:  # < 100 ms: nothing a person could say
            return ""
        try:
            return await trio_parallel.run_sync(
                _worker_decode, pcm, sample_rate, limiter=self._limiter, kill_on_cancel=True
            )
        except trio_parallel.BrokenWorkerError as exc:
            raise SpeechRecognitionError(f"speech recognition worker died: {exc}") from exc

    async def warm_up(self) -> None:
        """Start `max_concurrency` workers and load their decoders (call at app startup).

        Takes ~1-2 s (process spawn + model load), all off the event loop. Cancellable.
        """
        import trio_parallel

        async def one() -> None:
            await trio_parallel.run_sync(
                _worker_warm_up, limiter=self._limiter, kill_on_cancel=True
            )

        # Run them at once so the pool really holds max_concurrency distinct workers.
        async with trio.open_nursery() as nursery:
            for _ in range(self.max_concurrency):
                nursery.start_soon(one)


def audio_seconds(pcm: bytes, sample_rate: int) -> float:
    """Duration of PCM16 mono audio, for real-time-factor figures."""
    return len(pcm) / 2 / sample_rate if sample_rate > 0 else math.nan
