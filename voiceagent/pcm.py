"""The one audio format on every wire of the project: PCM16 mono, little-endian, 24 kHz.

The browser, the Realtime providers, Cartesia and the local voices all meet here;
anything else is converted at the edge that needs it (the offline STT and VAD resample).
"""

from __future__ import annotations

SAMPLE_RATE = 24_000
SAMPLE_WIDTH = 2  # bytes per sample (PCM16)
CHANNELS = 1
BYTES_PER_MS = SAMPLE_RATE * SAMPLE_WIDTH * CHANNELS // 1000  # 48
# How much a provider WebSocket (either side of it) reads at once: 100 ms of audio is
# ~6.5 KB of base64 JSON, which trio-websocket's 4 KB default reads in two reads and two
# parser passes (benchmarks/ws_receive_buffer.py).
WS_READ_BYTES = 65_536


def pcm_ms(byte_count: int) -> int:
    """Whole milliseconds of audio in `byte_count` bytes."""
    return byte_count // BYTES_PER_MS


def ms_bytes(ms: float) -> int:
    """Bytes in `ms` milliseconds of audio, rounded down to a whole sample."""
    return int(ms * SAMPLE_RATE / 1000) * SAMPLE_WIDTH * CHANNELS
