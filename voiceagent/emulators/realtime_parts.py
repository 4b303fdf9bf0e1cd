"""Pluggable parts of the Realtime emulator: brains, transcribers, synthetic voice.

- A *brain* answers ``respond(setup, history) -> BrainReply`` (sync or async). The
  default is `voiceagent.brain.OfflineBrain` when that module is importable, else
  `CannedBrain`. Load tests use `CannedBrain` for a fixed, cheap reply.
- A *transcriber* is ``async (pcm, sample_rate) -> str``. The default,
  `CannedTranscriber`, returns a fixed sentence (deterministic, zero CPU). With
  ``use_recognizer`` the offline recogniser `voiceagent.speech.stt.Recognizer` is used
  when it exists (`RecognizerTranscriber`); the server warms it up when it starts.
- `synthetic_voice(ms)` is NOT speech: a soft 220 Hz tone with a little noise, only
  so audio responses have the right size and pacing.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import trio

from voiceagent.conversation import AgentSetup, BrainReply, ConversationItem
from voiceagent.pcm import SAMPLE_RATE, ms_bytes

if TYPE_CHECKING:
    from voiceagent.speech.stt import Recognizer

log = logging.getLogger(__name__)

Transcriber = Callable[[bytes, int], Awaitable[str]]


class Brain(Protocol):
    """`voiceagent.conversation.Brain`, except that `respond` may also be a coroutine."""

    def respond(
        self, setup: AgentSetup, history: Sequence[ConversationItem]
    ) -> BrainReply | Awaitable[BrainReply]: ...


class CannedBrain:
    """Always says `text` (never calls tools)."""

    def __init__(self, text: str = "This is the realtime emulator speaking.") -> None:
        self.text = text

    def respond(self, setup: AgentSetup, history: Sequence[ConversationItem]) -> BrainReply:
        return BrainReply(text=self.text)


def default_brain() -> Brain:
    """The offline brain when installed, else a canned one (logged once)."""
    try:
        from voiceagent.brain import OfflineBrain  # type: ignore[import-not-found]
    except ImportError:
        log.info("voiceagent.brain.OfflineBrain not available; using a canned brain")
        return CannedBrain()
    return OfflineBrain()  # type: ignore[no-any-return]


async def ask_brain(
    brain: Brain, setup: AgentSetup, history: Sequence[ConversationItem]
) -> BrainReply:
    reply: Any = brain.respond(setup, history)
    if inspect.isawaitable(reply):
        reply = await reply
    if not isinstance(reply, BrainReply):
        raise TypeError(f"brain returned {type(reply).__name__}, expected BrainReply")
    return reply


class CannedTranscriber:
    """Returns `text` for any audio: deterministic and free, for tests and load runs."""

    def __init__(self, text: str = "hello") -> None:
        self.text = text

    async def __call__(self, pcm: bytes, sample_rate: int) -> str:
        return self.text


class RecognizerTranscriber:
    """The offline recogniser as a transcriber, warmed up once, in the background.

    Its cold start (worker processes and model load) takes ~1-2 s on an idle machine
    and was measured at 11 s on a loaded one: longer than a response waits for a
    transcript (`realtime_connection.TRANSCRIPT_WAIT_S`, 10 s), so a cold first turn
    could reach the brain empty. `serve_realtime` runs `warm_up()` as soon as it
    listens; a transcription that comes while the warm-up runs waits for it instead of
    starting a second cold load. A failed warm-up is logged and changes nothing else:
    transcriptions then start workers themselves and report their own errors.
    Cancelling the warm-up (the server stops) releases the waiting transcriptions.
    """

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self._warm: trio.Event | None = None

    async def warm_up(self) -> None:
        """Load the recogniser now (once; a second call waits for the first)."""
        if self._warm is not None:
            await self._warm.wait()
            return
        self._warm = trio.Event()
        try:
            await self.recognizer.warm_up()
        except Exception as exc:
            log.warning("emulator recogniser warm-up failed: %s", exc)
        finally:
            self._warm.set()

    async def __call__(self, pcm: bytes, sample_rate: int) -> str:
        if self._warm is not None:
            await self._warm.wait()
        return str(await self.recognizer.transcribe(pcm, sample_rate=sample_rate))

    async def aclose(self) -> None:
        """Stop the recogniser's idle worker processes."""
        await self.recognizer.aclose()


def recognizer_transcriber() -> RecognizerTranscriber | None:
    """A `RecognizerTranscriber` over `voiceagent.speech.stt.Recognizer` when it exists."""
    try:
        from voiceagent.speech.stt import Recognizer
    except ImportError:
        return None
    return RecognizerTranscriber(Recognizer())


_TONE_SECONDS = 1
_t = np.arange(SAMPLE_RATE * _TONE_SECONDS, dtype=np.float32) / SAMPLE_RATE
_rng = np.random.default_rng(7)
_TONE = (
    (1500 * np.sin(2 * np.pi * 220 * _t) + _rng.normal(0, 200, _t.shape).astype(np.float32))
    .astype("<i2")
    .tobytes()
)


def synthetic_voice(ms: int) -> bytes:
    """`ms` milliseconds of the synthetic voice, PCM16 LE mono 24 kHz (not speech)."""
    size = ms_bytes(ms)
    reps = size // len(_TONE) + 1
    return (_TONE * reps)[:size] if reps > 1 else _TONE[:size]


def speech_ms(text: str) -> int:
    """How long the synthetic voice talks for `text` (about 14 characters a second)."""
    return max(200, 70 * len(text))


def tokens(text: str) -> list[str]:
    """Split text into word-sized deltas that join back to `text` exactly."""
    out: list[str] = []
    start = 0
    for i, ch in enumerate(text):
        if ch == " " and i > start:
            out.append(text[start:i])
            start = i
    if start < len(text):
        out.append(text[start:])
    return out
