"""The `TTS` interface: text in, audio out, cancel.

A `TTS` is a shared factory (one per app). `connect()` gives one session its own
`TTSConnection`, which may hold a provider socket across many responses (opened lazily,
reused, closed when the `async with` block ends).

`synthesize()` voices one response. Text arrives on a channel as the model writes it
and the channel closes when the text is complete. Audio leaves through `sink.audio()`
as PCM16 LE mono 24 kHz, in order. On cancellation (barge-in cancels the caller's
scope) the implementation stops promptly, tells its provider to stop when the protocol
has such a message (bounded, shielded), and produces nothing more for that response;
late provider audio for it is discarded. On a provider failure it raises `TTSError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import trio

SAMPLE_RATE = 24_000


class TTSError(Exception):
    """A voice failed. `str()` is a human message a client may see (no URL, host, port
    or key); `detail` is the technical cause for the log, already redacted."""

    def __init__(
        self, message: str, *, code: str = "tts_failed", detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


@dataclass(frozen=True, slots=True)
class WordTiming:
    """A word and when it is spoken, in seconds from the start of the response audio."""

    word: str
    start: float
    end: float


class AudioSink(Protocol):
    async def audio(self, pcm: bytes) -> None:
        """Deliver audio; awaiting gives back-pressure from a slow client."""
        ...

    def words(self, timings: Sequence[WordTiming]) -> None:
        """Report word timings (used to keep only the heard text on barge-in)."""
        ...


class TTSConnection(ABC):
    @abstractmethod
    async def synthesize(
        self, text: trio.MemoryReceiveChannel[str], sink: AudioSink, *, response_id: str
    ) -> None:
        """Voice one response; see the module docstring for cancel and error rules."""


class TTS(ABC):
    #: short provider name shown to clients ("local", "cartesia", "scripted")
    name: str = "tts"

    @abstractmethod
    def connect(self) -> AbstractAsyncContextManager[TTSConnection]:
        """A per-session connection; cheap to enter, provider I/O happens lazily."""
