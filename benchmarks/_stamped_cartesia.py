"""The Cartesia emulator with a send-time stamp inside every audio chunk (benchmarks only).

`python benchmarks/_stamped_cartesia.py [cartesia emulator options]` runs
`voiceagent.emulators.cartesia` unchanged except that each chunk's first 18 PCM bytes
are replaced by `STAMP_MAGIC` + the wall-clock time (float64 LE) at which the emulator
built the chunk message, right before queueing it for its socket, + two zero bytes. The
server relays PCM untouched, so a client that finds the magic in a binary frame knows
when that audio left the provider: receive time - stamp = provider event in -> client
frame out (plus the emulator's own queue and the loopback hop, which makes it
pessimistic).
18 bytes are 0.38 ms of audio at 24 kHz: an inaudible click, irrelevant for load.
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


# 18 bytes (magic, float64 stamp, two zero bytes) are exactly 24 base64 characters, so
# the stamp replaces the chunk's first characters without decoding the rest.
STAMP_B64_CHARS = 24


def stamped_chunk_message(
    context_id: str, b64: str, step_time_ms: float, flush_id: int | None
) -> dict:
    if len(b64) > STAMP_B64_CHARS:
        stamp = STAMP_MAGIC + struct.pack("<d", time.time()) + b"\0\0"
        b64 = base64.b64encode(stamp).decode() + b64[STAMP_B64_CHARS:]
    return _original(context_id, b64, step_time_ms, flush_id)


if __name__ == "__main__":
    raise_nofile()
    protocol.chunk_message = stamped_chunk_message
    raise SystemExit(cartesia.main(sys.argv[1:]))
