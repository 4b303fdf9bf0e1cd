"""The Cartesia emulator with a send-time stamp inside every audio chunk (benchmarks only).

`python benchmarks/_stamped_cartesia.py [cartesia emulator options]` runs
`voiceagent.emulators.cartesia` unchanged except that each chunk's first 16 PCM bytes
are replaced by `STAMP_MAGIC` + the wall-clock time (float64 LE) at which the emulator
built the chunk message, right before queueing it for its socket. The server relays
PCM untouched, so a client that finds the magic in a binary frame knows when that
audio left the provider: receive time - stamp = provider event in -> client frame out
(plus the emulator's own queue and the loopback hop, which makes it pessimistic).
16 bytes are 0.33 ms of audio at 24 kHz: an inaudible click, irrelevant for load.
"""

from __future__ import annotations

import base64
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import raise_nofile
from _rooms import STAMP_MAGIC

from voiceagent.emulators import cartesia
from voiceagent.tts.cartesia import protocol

_original = protocol.chunk_message


def stamped_chunk_message(
    context_id: str, b64: str, step_time_ms: float, flush_id: int | None
) -> dict:
    pcm = bytearray(base64.b64decode(b64))
    if len(pcm) >= 16:
        pcm[:16] = STAMP_MAGIC + struct.pack("<d", time.time())
    return _original(context_id, base64.b64encode(pcm).decode(), step_time_ms, flush_id)


if __name__ == "__main__":
    raise_nofile()
    protocol.chunk_message = stamped_chunk_message
    raise SystemExit(cartesia.main(sys.argv[1:]))
