"""The input audio buffer of an emulated Realtime session, and its transcription events.

Rules (pure data and computation: no I/O, no clock; time is input time, milliseconds of
audio appended since the session began):

- The buffer keeps at most `MAX_BUFFER_MS` of audio; older audio is dropped and
  `start_ms` moves on.
- With turn detection on, the VAD hears every appended byte; outside speech the buffer
  keeps only the ``prefix_padding_ms`` that will precede the next speech start
  (`keep_padding`).
- `take()` empties the buffer for a commit; a manual commit needs `MIN_COMMIT_MS`.
- The transcription events come after the item is committed, in the order the service
  sends them: deltas (two here), then ``completed`` with a duration usage, or ``failed``.
"""

from __future__ import annotations

from typing import Any

from voiceagent.emulators.realtime_parts import tokens
from voiceagent.emulators.realtime_vad import EnergyVad
from voiceagent.pcm import BYTES_PER_MS, pcm_ms

MIN_COMMIT_MS = 100
MAX_BUFFER_MS = 5 * 60 * 1000  # the input buffer keeps at most 5 minutes of audio


class InputBuffer:
    """Appended audio not yet committed, the VAD that listens to it, the open speech item."""

    def __init__(self, threshold: float, silence_ms: int) -> None:
        self.audio = bytearray()
        self.start_ms = 0  # input time of the buffer's first byte
        self.vad = EnergyVad(threshold, silence_ms)
        self.speech_item: str | None = None  # item id announced by speech_started

    @property
    def ms(self) -> int:
        return pcm_ms(len(self.audio))

    def append(self, pcm: bytes, detect: bool) -> list[tuple[str, int]]:
        """Add audio; with `detect`, return the VAD's ("start" | "stop", ms) decisions."""
        self.audio += pcm
        overflow = len(self.audio) - MAX_BUFFER_MS * BYTES_PER_MS
        if overflow > 0:
            self._drop(overflow)
        return self.vad.feed(pcm) if detect else []

    def keep_padding(self, padding_ms: int) -> None:
        """Outside speech, keep only the audio that will pad the next speech start."""
        if self.vad.in_speech:
            return
        keep = padding_ms * BYTES_PER_MS
        if len(self.audio) > keep:
            self._drop(len(self.audio) - keep)

    def _drop(self, count: int) -> None:
        del self.audio[:count]
        self.start_ms += pcm_ms(count)

    def take(self) -> bytes:
        """Empty the buffer for a commit; the next audio starts now."""
        pcm = bytes(self.audio)
        self.audio.clear()
        self.start_ms = self.vad.total_ms
        return pcm

    def clear(self) -> None:
        self.audio.clear()
        self.speech_item = None


def transcription_events(item_id: str, text: str, audio_bytes: int) -> list[dict[str, Any]]:
    """The deltas and the ``completed`` event of a transcribed user item."""
    words = tokens(text)
    half = max(1, len(words) // 2)
    base = {"item_id": item_id, "content_index": 0}
    events: list[dict[str, Any]] = [
        {"type": "conversation.item.input_audio_transcription.delta", **base, "delta": piece}
        for piece in ("".join(words[:half]), "".join(words[half:]))
        if piece
    ]
    seconds = round(audio_bytes / (BYTES_PER_MS * 1000), 3)
    events.append(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            **base,
            "transcript": text,
            "usage": {"type": "duration", "seconds": seconds},
        }
    )
    return events


def transcription_failed_event(item_id: str, message: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": item_id,
        "content_index": 0,
        "error": {
            "type": "transcription_error",
            "code": "transcriber_failed",
            "message": message,
            "param": None,
        },
    }
