"""Per-session traffic tallies: frames, bytes and drops counted in plain ints.

Cost rule: nothing in the metrics runs per frame except `TrafficTally.frame_in/frame_out`,
which only add to plain ints. Measured on this machine
(`python benchmarks/metrics_overhead.py`): a prometheus `Counter.inc()` costs ~1 us (it
takes a lock), a tally frame ~0.2 us. Four counter updates per echoed frame (frames and
bytes, in and out) would be ~4 us, about 2.7 % of the ~150 us a frame costs on this
stack; the tally makes it ~0.25 %. A tally pushes its ints into the shared counters
every `FLUSH_EVERY` frames (one second of 20 ms audio) and at `close()`, and samples
channel depths at the same moments, so `/metrics` lags a live session by at most that
many frames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from voiceagent.metrics.series import BYTES, CHANNEL_DEPTH, DROPS, FRAMES

# Resolved once here: `labels()` costs ~0.7 us a call, too much per frame.
_FRAMES_IN = FRAMES.labels("in")
_FRAMES_OUT = FRAMES.labels("out")
_BYTES_IN = BYTES.labels("in")
_BYTES_OUT = BYTES.labels("out")
_DROPS_AUDIO_IN = DROPS.labels("audio_in")
_DROPS_OUT = DROPS.labels("droppable_out")

DropClass = Literal["audio_in", "droppable_out"]

#: frames between two pushes of a session's tally into the shared counters
FLUSH_EVERY = 50


class TrafficTally:
    """Per-session frame/byte/drop counts kept in plain ints, flushed to the counters.

    The session calls `frame_in`/`frame_out` per WebSocket message and `drop` per dropped
    message; every `flush_every` frames, and at `close()`, the deltas go to the shared
    counters and each registered depth probe is sampled into `CHANNEL_DEPTH`. Register
    probes such as `lambda: send_channel.statistics().current_buffer_used`. Not
    thread-safe: one session, one event loop.
    """

    __slots__ = (
        "_depth_probes",
        "_flush_every",
        "_flushed",
        "_pending",
        "bytes_in",
        "bytes_out",
        "drops_audio_in",
        "drops_out",
        "frames_in",
        "frames_out",
    )

    def __init__(
        self,
        depth_probes: Mapping[str, Callable[[], int]] | None = None,
        *,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every!r}")
        self._depth_probes = [
            (CHANNEL_DEPTH.labels(name), probe) for name, probe in (depth_probes or {}).items()
        ]
        self._flush_every = flush_every
        self._pending = 0
        self._flushed: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
        self.frames_in = self.bytes_in = self.frames_out = self.bytes_out = 0
        self.drops_audio_in = self.drops_out = 0

    def frame_in(self, nbytes: int) -> None:
        self.frames_in += 1
        self.bytes_in += nbytes
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def frame_out(self, nbytes: int) -> None:
        self.frames_out += 1
        self.bytes_out += nbytes
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def drop(self, cls: DropClass) -> None:
        if cls == "audio_in":
            self.drops_audio_in += 1
        elif cls == "droppable_out":
            self.drops_out += 1
        else:
            raise ValueError(f"unknown drop class {cls!r}")

    @property
    def dropped(self) -> int:
        """All messages this session dropped so far (the `dropped` of `metrics` events)."""
        return self.drops_audio_in + self.drops_out

    def add_depth_probe(self, name: str, probe: Callable[[], int]) -> None:
        """Sample `probe` into `CHANNEL_DEPTH{channel=name}` at every flush."""
        self._depth_probes.append((CHANNEL_DEPTH.labels(name), probe))

    def flush(self) -> None:
        """Push the counts since the last flush into the shared counters; sample depths."""
        self._pending = 0
        # Totals stay readable on the tally; the counters get only what is new.
        now = (
            self.frames_in,
            self.bytes_in,
            self.frames_out,
            self.bytes_out,
            self.drops_audio_in,
            self.drops_out,
        )
        for child, total, flushed in zip(_TALLY_CHILDREN, now, self._flushed, strict=True):
            if total > flushed:
                child.inc(total - flushed)
        self._flushed = now
        for histogram, probe in self._depth_probes:
            histogram.observe(probe())

    def close(self) -> None:
        """Final flush; call once when the session ends (calling again adds nothing).

        The depth probes are dropped: they usually close over their session, and a
        finished session should be freed by reference counting, not left in a cycle.
        """
        self.flush()
        self._depth_probes = []


_TALLY_CHILDREN = (_FRAMES_IN, _BYTES_IN, _FRAMES_OUT, _BYTES_OUT, _DROPS_AUDIO_IN, _DROPS_OUT)
