"""Test audio: silence, noise and wire framing (speech comes from conftest fixtures)."""

from __future__ import annotations

import numpy as np

RATE = 24_000
QUESTION = "What is the baggage allowance?"


def silence(seconds: float) -> bytes:
    return bytes(int(RATE * seconds) * 2)


def white_noise(seconds: float, *, amplitude: float = 3000.0, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(int(RATE * seconds)) * amplitude
    return np.clip(samples, -32768, 32767).astype("<i2").tobytes()


def frames(pcm: bytes, frame_ms: int = 20) -> list[bytes]:
    """The audio cut in wire-sized frames (20 ms = 960 bytes at 24 kHz)."""
    size = RATE * 2 * frame_ms // 1000
    return [pcm[offset : offset + size] for offset in range(0, len(pcm), size)]
