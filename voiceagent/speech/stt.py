"""Offline speech recognition with pocketsphinx, in worker processes.

pocketsphinx holds the GIL for the whole decode (seconds for a long utterance), so it
can never run on the event loop nor in a thread of this process. Each utterance goes to
a worker process (`voiceagent.speech.stt_worker`, a plain program on stdin/stdout):
every worker builds one `Decoder` at start and keeps it, so the ~1 s model load and the
~90 MB are paid once per worker, not per utterance. A `trio.CapacityLimiter` caps how
many utterances decode at once, which also caps how many workers exist. Workers run at
a lower CPU priority than the server, so a burst of decoding never starves the event
loop of a core.

Why not `multiprocessing` (or trio-parallel, built on it): Hypercorn serves the app
from daemonic processes, and `multiprocessing` refuses to start children there.

One utterance is decoded in one `full_utt=True` pass when it is complete: on clear
speech that is both more accurate and, in total, cheaper than streaming partials.

Lifetime: workers start lazily (or in `warm_up()`) and stay idle between utterances.
They exit on their own when this process exits (their stdin closes), and `aclose()`
stops them early. A `Recognizer` belongs to one Trio run.

Cancellation: cancelling `transcribe()` kills its worker at once (the next call starts a
fresh one), so leaving a session never waits for a long decode.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import trio

from voiceagent.speech.stt_worker import MAX_REQUEST_BYTES, REPLY, REQUEST

#: longest utterance accepted (seconds); bounds pipe payloads and worker time
MAX_UTTERANCE_S = 60.0
SAMPLE_RATES = (8_000, 16_000, 22_050, 24_000, 44_100, 48_000)
#: a worker that does not answer a ping within this many seconds is broken
_START_TIMEOUT_S = 60.0

log = logging.getLogger(__name__)


class SpeechRecognitionError(Exception):
    """Bad audio was given, or the recogniser failed (the message says which)."""


class _Worker:
    """One worker process and its pipes; used by one call at a time."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = process.stdout

    @classmethod
    async def start(cls) -> _Worker:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "voiceagent.speech.stt_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        return cls(process)

    async def request(self, sample_rate: int, pcm: bytes) -> str:
        await self._stdin.send_all(REQUEST.pack(sample_rate, len(pcm)) + pcm)
        status, size = REPLY.unpack(await self._receive_exactly(REPLY.size))
        text = (await self._receive_exactly(size)).decode("utf-8", errors="replace")
        if status != 0:
            raise SpeechRecognitionError(f"speech recognition failed: {text}")
        return text

    async def _receive_exactly(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = await self._stdout.receive_some(count - len(data))
            if not chunk:
                raise SpeechRecognitionError(
                    f"speech recognition worker exited (code {self.process.poll()})"
                )
            data += chunk
        return bytes(data)

    async def kill(self) -> None:
        """Stop the worker now and reap it (bounded, even inside a cancelled scope)."""
        self.process.kill()
        with trio.CancelScope(shield=True):
            with trio.move_on_after(2):
                await self.process.wait()
            await self._stdin.aclose()
            await self._stdout.aclose()


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
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()

    @property
    def worker_pids(self) -> list[int]:
        """Pids of the live worker processes (for metrics and tests)."""
        return sorted(worker.process.pid for worker in self._workers)

    async def transcribe(self, pcm: bytes, sample_rate: int = 24_000) -> str:
        """The final transcript of one utterance (PCM16 LE mono); "" when nothing was heard.

        Raises `SpeechRecognitionError` for malformed or over-long audio and when a
        worker fails. On cancellation the worker is killed and nothing is returned.
        """
        if sample_rate not in SAMPLE_RATES:
            raise SpeechRecognitionError(f"unsupported sample rate {sample_rate}")
        if len(pcm) % 2:
            raise SpeechRecognitionError("PCM16 audio must have an even byte count")
        if len(pcm) > min(MAX_UTTERANCE_S * sample_rate * 2, MAX_REQUEST_BYTES):
            raise SpeechRecognitionError(f"utterance longer than {MAX_UTTERANCE_S:.0f} s")
        if len(pcm) < sample_rate // 10 * 2:  # < 100 ms: nothing a person could say
            return ""
        return await self._call(sample_rate, pcm)

    async def warm_up(self) -> None:
        """Start `max_concurrency` workers and load their decoders (call at app startup).

        Takes ~1-2 s (process start + model load), all off the event loop. Cancellable.
        Raises `SpeechRecognitionError` when a worker cannot start.
        """
        async with trio.open_nursery() as nursery:
            for _ in range(self.max_concurrency - len(self._workers)):
                nursery.start_soon(self._call, 0, b"")

    async def aclose(self) -> None:
        """Stop every idle worker (busy ones are stopped by their own cancellation)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            self._workers.discard(worker)
            await worker.kill()

    async def _call(self, sample_rate: int, pcm: bytes) -> str:
        async with self._limiter:
            worker = self._idle.pop() if self._idle else await self._start_worker()
            try:
                with trio.fail_after(_START_TIMEOUT_S + len(pcm) / 3200):
                    text = await worker.request(sample_rate, pcm)
            except BaseException as exc:
                # Cancelled, timed out or broken: the worker's pipe is out of step (or
                # it is dead), so it is never reused.
                self._workers.discard(worker)
                await worker.kill()
                if isinstance(exc, trio.TooSlowError):
                    raise SpeechRecognitionError("speech recognition timed out") from exc
                if isinstance(exc, trio.BrokenResourceError | OSError):
                    raise SpeechRecognitionError(f"speech recognition worker: {exc}") from exc
                raise
            self._idle.append(worker)
            return text

    async def _start_worker(self) -> _Worker:
        try:
            worker = await _Worker.start()
        except OSError as exc:
            raise SpeechRecognitionError(f"cannot start a recognition worker: {exc}") from exc
        self._workers.add(worker)
        log.debug("speech recognition worker %d started", worker.process.pid)
        return worker
