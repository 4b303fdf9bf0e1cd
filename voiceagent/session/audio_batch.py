"""The inbound audio batch, and the clock of the client's input for the model link.

Rules (model_link.py rule 2):
1. `AudioBatcher` is the one owner of the batch: the reader `append()`s frames (per
   frame: a bytearray append and a length check, nothing else); every
   `VOICEAGENT_AUDIO_BATCH_MS` of audio goes to the `audio` channel as one batch.
2. The channel has a fixed capacity; when it is full the newest batch is dropped and
   counted as `audio_in` (the reader never waits for the provider).
3. The audio pump asks `flush_due()` when the pending batch must go unfilled (1.5
   batch periods after its first frame: the user muted, the page went away) and then
   calls `flush()`.
4. `commit()` flushes first, so a commit travels behind the audio it commits.
5. Every batch or commit handed over is input: `InputActivity` records when (the model
   link's idle close and lazy reconnect read it).
"""

from __future__ import annotations

import trio

from voiceagent import metrics
from voiceagent.pcm import BYTES_PER_MS
from voiceagent.session.wakeup import Wakeup


class InputActivity:
    """When the client last sent input for the model, and a wake-up for the link."""

    __slots__ = ("arrived", "last")

    def __init__(self) -> None:
        self.last = trio.current_time()
        self.arrived = Wakeup()  # the model link waits on it while disconnected

    def note(self) -> None:
        self.last = trio.current_time()
        self.arrived.set()


class AudioBatcher:
    """The one owner of the inbound audio batch (rules 1-4)."""

    __slots__ = (
        "_activity",
        "_batch_bytes",
        "_flush_after",
        "_pending",
        "_since",
        "_tally",
        "_tx",
        "rx",
    )

    def __init__(
        self,
        batch_ms: int,
        capacity: int,
        tally: metrics.TrafficTally,
        activity: InputActivity,
    ) -> None:
        self._pending = bytearray()  # frames not yet handed to the audio pump
        self._since = 0.0  # when the first of them arrived
        self._batch_bytes = batch_ms * BYTES_PER_MS
        self._flush_after = 1.5 * batch_ms / 1000
        self._tally = tally
        self._activity = activity
        # None: commit the audio sent so far
        self._tx, self.rx = trio.open_memory_channel[bytes | None](capacity)

    def append(self, pcm: bytes) -> None:
        """Add a frame (the reader, per frame: keep it cheap); hand over full batches."""
        pending = self._pending
        if not pending:
            self._since = trio.current_time()
        pending += pcm
        if len(pending) >= self._batch_bytes:
            self.flush()

    def flush(self) -> None:
        """Hand the pending frames to the audio pump as one batch (dropped when full)."""
        pending = self._pending
        if not pending:
            return
        batch = bytes(pending)
        pending.clear()
        try:
            self._tx.send_nowait(batch)
        except trio.WouldBlock:
            self._tally.drop("audio_in")
        self._activity.note()

    def commit(self) -> bool:
        """Flush, then queue a commit behind that audio; False when the channel is full."""
        self.flush()
        try:
            self._tx.send_nowait(None)
        except trio.WouldBlock:
            return False
        self._activity.note()
        return True

    def flush_due(self) -> float | None:
        """When the pending batch must go even if unfilled; None when nothing is pending."""
        return self._since + self._flush_after if self._pending else None

    def discard(self) -> int:
        """Forget the pending batch and the queued ones; returns how many items went."""
        dropped = 1 if self._pending else 0
        self._pending.clear()
        while True:
            try:
                self.rx.receive_nowait()
            except trio.WouldBlock:
                return dropped
            dropped += 1

    def waiting(self) -> bool:
        """Audio that has not reached the provider yet."""
        return bool(self._pending or self.rx.statistics().current_buffer_used)

    def depth(self) -> int:
        return self.rx.statistics().current_buffer_used
