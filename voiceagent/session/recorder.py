"""A room's recording: stereo, the user left and the agent right, as the user heard it.

Rules:
1. One clock: sample positions count from the connection's start on the Trio clock
   (24 kHz, `voiceagent.pcm.SAMPLE_RATE`). User audio is placed where it arrived
   (a frame that arrives at t covers the samples just before t). A microphone streams
   without gaps, so a frame that arrives within `JITTER_MS` of where the previous one
   ended follows it without a gap: network jitter or a stalled TCP segment (measured
   here: bursts 100-120 ms late on a loaded machine) neither chops the track nor
   shifts what follows; a longer pause is silence.
2. Agent audio is placed from the moment its first chunk leaves for the client (when
   the page starts playing it; responses.py and speaker.py use the same moment for
   "what was heard"), after the previous response's audio when it is still playing.
3. A barge-in cuts the agent track at the point the user had heard
   (`Heard.audio_ms`); audio of that response queued past the cut is never written.
4. Only audio older than `LAG_MS` is written (a cut almost never reaches further
   back); it leaves in blocks of at least `BLOCK_MS` through the process's recording
   writer (recordings.py), each block at its own file offset, so a lost block leaves
   silence and never shifts what follows. Memory per room: at most `LAG_MS` plus a
   block of user audio, plus the agent audio queued ahead of playback (one reply),
   independent of the session's length.
5. `close()` writes the rest (agent audio the user never heard is cut at the close)
   and has the writer fix the WAV header.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from voiceagent.pcm import SAMPLE_RATE

if TYPE_CHECKING:
    from voiceagent.recordings import RecordingWriter

LAG_MS = 1000
BLOCK_MS = 200
JITTER_MS = 250

_LAG = SAMPLE_RATE * LAG_MS // 1000
_BLOCK = SAMPLE_RATE * BLOCK_MS // 1000
_JITTER = SAMPLE_RATE * JITTER_MS // 1000


class Recorder:
    def __init__(self, writer: RecordingWriter, path: Path, start: float) -> None:
        self._writer = writer
        self.path = path
        self._file = writer.open(path)
        self._start = start
        self._flushed = 0  # samples written (both channels)
        self._left = bytearray()  # user samples from `_flushed` on
        self._right = bytearray()  # agent samples from `_flushed` on
        self._segments: dict[str, int] = {}  # response id -> its first sample
        self.closed = False

    def _pos(self, now: float) -> int:
        return max(0, round((now - self._start) * SAMPLE_RATE))

    @property
    def buffered_bytes(self) -> int:
        return len(self._left) + len(self._right)

    # -- the room's side ----------------------------------------------------------------------

    def user(self, pcm: bytes, now: float) -> None:
        """Rule 1: a microphone frame that arrived at `now`."""
        if self.closed or not pcm:
            return
        end = self._flushed + len(self._left) // 2
        start = self._pos(now) - len(pcm) // 2
        if start > end + _JITTER:
            self._left += bytes(2 * (start - end))  # a pause: silence
        self._left += pcm
        self._flush(now)

    def agent(self, response_id: str, pcm: bytes, now: float) -> None:
        """Rule 2: a chunk of `response_id`'s audio, queued for the client at `now`."""
        if self.closed or not pcm:
            return
        if response_id not in self._segments:
            end = self._flushed + len(self._right) // 2
            start = max(self._pos(now), end)
            self._right += bytes(2 * (start - end))
            self._segments = {response_id: start}  # only the newest can still be cut
        self._right += pcm
        self._flush(now)

    def cut(self, response_id: str, heard_ms: int | None) -> None:
        """Rule 3: the user stopped `response_id` after hearing `heard_ms` of it."""
        start = self._segments.get(response_id)
        if start is None or self.closed:
            return
        keep = start + (heard_ms or 0) * SAMPLE_RATE // 1000
        keep_bytes = 2 * max(0, keep - self._flushed)
        del self._right[keep_bytes:]

    def close(self, now: float) -> None:
        """Rule 5."""
        if self.closed:
            return
        heard_until = 2 * max(0, self._pos(now) - self._flushed)
        del self._right[heard_until:]  # not yet played when the room closed
        end = self._flushed + max(len(self._left), len(self._right)) // 2
        self._write(end)
        self.closed = True
        self._writer.finish(self._file, self._flushed * 4)

    # -- writing ------------------------------------------------------------------------------

    def _flush(self, now: float) -> None:
        target = self._pos(now) - _LAG
        if target - self._flushed >= _BLOCK:
            self._write(target)

    def _write(self, target: int) -> None:
        count = target - self._flushed
        if count <= 0:
            return
        block = np.zeros((count, 2), dtype="<i2")
        for channel, buffer in ((0, self._left), (1, self._right)):
            have = min(count, len(buffer) // 2)
            if have:
                block[:have, channel] = np.frombuffer(buffer, dtype="<i2", count=have)
            del buffer[: 2 * count]
        self._writer.block(self._file, self._flushed * 4, block.tobytes())
        self._flushed = target
