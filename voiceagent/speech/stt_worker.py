"""The speech recognition worker program: `python -m voiceagent.speech.stt_worker`.

One worker decodes one utterance at a time with one pocketsphinx `Decoder`, built once
at start and reused. It talks to its parent over stdin/stdout with a tiny binary
framing (all integers little-endian):

    request:  u32 sample_rate, u32 byte_count, then byte_count bytes of PCM16 mono
              (byte_count == 0 is a ping: the reply carries the worker's pid)
    reply:    u8 status (0 ok, 1 error), u32 byte_count, then that much UTF-8 text

It exits when stdin reaches end of file, which is also what happens when the parent
process dies, so a worker never outlives the server. It is a plain program, not a
`multiprocessing` child: Hypercorn runs the app in daemonic processes, which
`multiprocessing` refuses to give children.
"""

from __future__ import annotations

import os
import struct
import sys
from typing import BinaryIO

import numpy as np

SAMPLE_RATE = 16_000
REQUEST = struct.Struct("<II")
REPLY = struct.Struct("<BI")
#: largest request accepted (bytes of PCM): 60 s at 48 kHz, far above any utterance
MAX_REQUEST_BYTES = 60 * 48_000 * 2
#: how much lower than the server the worker runs (Unix nice increment)
NICENESS = 10
#: silence kept around the speech when trimming (see `trim_silence`)
SILENCE_MARGIN_MS = 150
#: RMS of a 10 ms frame below which it counts as silence (about -54 dBFS)
SILENCE_RMS = 64.0


def _read_exactly(stream: BinaryIO, count: int) -> bytes | None:
    """`count` bytes, or None at end of file."""
    chunks: list[bytes] = []
    while count:
        chunk = stream.read(count)
        if not chunk:
            return None
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _reply(stream: BinaryIO, status: int, text: str) -> None:
    payload = text.encode("utf-8")
    stream.write(REPLY.pack(status, len(payload)) + payload)
    stream.flush()


def trim_silence(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`samples` (int16) without the near-silence beyond `SILENCE_MARGIN_MS` at each end.

    A VAD segment ends with its hangover, and a browser's capture pads it with digital
    silence: on a second of trailing zeros pocketsphinx invents words ("yeah" becomes
    "yeah and", which is no longer a backchannel). A noisy microphone never falls below
    the threshold, so its audio is left as it is.
    """
    frame = sample_rate // 100
    count = len(samples) // frame
    if count == 0:
        return samples
    frames = samples[: count * frame].astype(np.float32).reshape(count, frame)
    voiced = np.flatnonzero(np.sqrt(np.mean(frames * frames, axis=1)) > SILENCE_RMS)
    if voiced.size == 0:
        return samples
    margin = SILENCE_MARGIN_MS // 10
    start = max(0, int(voiced[0]) - margin) * frame
    end = min(len(samples), (int(voiced[-1]) + 1 + margin) * frame)
    return samples[start:end]


def main() -> int:
    # Recognition is background work: when the cores are busy, the server's event loop
    # (every session's audio and sockets) must get them first.
    try:
        os.nice(NICENESS)
    except OSError:
        pass  # not permitted here: run at normal priority

    from pocketsphinx import Decoder

    # fwdflat=False: the second, flat pass costs ~40% more CPU for no gain on short
    # utterances.
    decoder = Decoder(fwdflat=False, samprate=SAMPLE_RATE, loglevel="FATAL")
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = _read_exactly(requests, REQUEST.size)
        if header is None:
            return 0
        sample_rate, count = REQUEST.unpack(header)
        if count > MAX_REQUEST_BYTES:
            _reply(replies, 1, f"request of {count} bytes is too large")
            return 1  # the stream is out of step now: stop, the parent starts another
        pcm = _read_exactly(requests, count)
        if pcm is None:
            return 0
        if count == 0:
            _reply(replies, 0, str(os.getpid()))
            continue
        try:
            samples = np.frombuffer(pcm, dtype="<i2")
            if sample_rate != SAMPLE_RATE:
                import soxr

                samples = soxr.resample(samples, sample_rate, SAMPLE_RATE).astype("<i2")
            pcm = trim_silence(samples).tobytes()
            decoder.start_utt()
            decoder.process_raw(pcm, no_search=False, full_utt=True)
            decoder.end_utt()
            hypothesis = decoder.hyp()
            _reply(replies, 0, hypothesis.hypstr.strip() if hypothesis is not None else "")
        except Exception as exc:  # a bad utterance must not take the worker down
            _reply(replies, 1, f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    sys.exit(main())
