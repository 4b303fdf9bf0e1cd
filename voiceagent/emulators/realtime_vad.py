"""The emulator's turn detector: an energy (RMS) speech gate over 10 ms frames.

It is not a neural VAD: it is good enough to exercise the protocol's ``server_vad`` and
``semantic_vad`` events with tones and recorded speech, and it is documented as such.

Rules: `feed(pcm)` takes PCM16 mono 24 kHz audio in chunks of any size (a partial frame
waits for the next chunk) and returns ``("start", ms)`` / ``("stop", ms)`` decisions in
input time, milliseconds since the first byte ever fed. Speech starts after 30 ms of
voiced frames (the start is dated at the first of them) and stops after `silence_ms`
of unvoiced ones. Pure computation: no clock, no I/O.
"""

from __future__ import annotations

import numpy as np

from voiceagent.pcm import BYTES_PER_MS

FRAME_MS = 10
FRAME_BYTES = FRAME_MS * BYTES_PER_MS


class EnergyVad:
    """RMS speech gate; see the module docstring."""

    START_FRAMES = 3

    def __init__(self, threshold: float = 0.5, silence_ms: int = 500) -> None:
        self.configure(threshold, silence_ms)
        self.in_speech = False
        self.total_ms = 0
        self._voiced_run = 0
        self._silent_run_ms = 0
        self._rest = b""

    def configure(self, threshold: float, silence_ms: int) -> None:
        # threshold 0..1 spans -60..-10 dBFS; 0.5 is -35 dBFS (quiet room speech passes).
        dbfs = -60.0 + 50.0 * min(max(threshold, 0.0), 1.0)
        self.rms_gate = 32768.0 * 10 ** (dbfs / 20.0)
        self.silence_ms = silence_ms

    def feed(self, pcm: bytes) -> list[tuple[str, int]]:
        data = self._rest + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        self._rest = data[usable:]
        if not usable:
            return []
        frames = (
            np.frombuffer(data[:usable], dtype="<i2")
            .astype(np.float32)
            .reshape(-1, FRAME_BYTES // 2)
        )
        voiced = np.sqrt(np.mean(frames * frames, axis=1)) >= self.rms_gate
        decisions: list[tuple[str, int]] = []
        for is_voiced in voiced.tolist():
            self.total_ms += FRAME_MS
            if is_voiced:
                self._voiced_run += 1
                self._silent_run_ms = 0
                if not self.in_speech and self._voiced_run >= self.START_FRAMES:
                    self.in_speech = True
                    decisions.append(("start", self.total_ms - self.START_FRAMES * FRAME_MS))
            else:
                self._voiced_run = 0
                if self.in_speech:
                    self._silent_run_ms += FRAME_MS
                    if self._silent_run_ms >= self.silence_ms:
                        self.in_speech = False
                        self._silent_run_ms = 0
                        decisions.append(("stop", self.total_ms))
        return decisions
