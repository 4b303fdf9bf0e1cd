"""The outbox and the single writer: every byte a session sends goes through here.

Rules:
1. Exactly one task (`Outbox.run_writer`) sends on the client socket. Everything else
   enqueues into one fixed-capacity memory channel.
2. Three classes of traffic:
   - *droppable* (text deltas, metrics, history snapshots): `post()` uses
     `send_nowait`; when the channel is full the message is dropped and counted in
     the session's tally (`voiceagent_drops_total{class="droppable_out"}` and the
     `dropped` figure of `metrics` events).
   - *reliable* (done, errors, handoffs, ...): `put()` waits for room, at most
     `send_timeout` seconds; then the client is too slow and `SlowClient` is raised
     (the session closes the socket with 1013).
   - *urgent* (`audio_interrupted`): `urgent()` never waits and never drops: the
     message goes to a small side queue that the writer empties before its next send.
3. Audio and audio-bound events carry the epoch of their response. The writer sends
   them only while that epoch is current. `interrupt()` makes the epoch stale *before*
   it queues the urgent `audio_interrupted`, so once that event is on the wire no byte
   of the old response can follow it.
4. `pause()` holds the audio of the current epoch: the writer moves it, in order, to
   a side queue (bounded by the channel's capacity: the speaker stops producing while
   paused, see speaker.py) and keeps sending everything else; `resume()` sends the held
   audio before anything queued after it; `interrupt()` forgets it. So a false
   interruption loses and repeats nothing, and a committed one sends none of it.
5. Audio may carry the time its chunk arrived from the voice provider, and
   `audio_interrupted` the time of the barge-in; the writer records both delays until
   the frame is written (`voiceagent_audio_relay_seconds`, `voiceagent_interrupt_seconds`):
   what the server itself adds.

6. The channel is made by the first reliable or droppable message. Until then the
   writer sends urgent traffic only (`session_started`, `agent_start`) and waits on a
   wake-up: a room that has said nothing more holds no channel (about 2 KB with the
   writer's wait on it, in every such room: docs/memory.md).

Theory of operation: the channel bounds memory whatever the client does; the epoch
check at send time (not at enqueue time) is what makes barge-in exact, because audio
queued before the interrupt is still in the channel when the epoch changes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from voiceagent.metrics import INTERRUPT_LATENCY, RELAY_LATENCY, TrafficTally
from voiceagent.session.wakeup import Wakeup

NO_EPOCH = -1  # items that belong to no response: always sent
_WAKE = (NO_EPOCH, "", 0.0)  # nudges an idle writer to look at the urgent queue

SendFn = Callable[[str | bytes], Awaitable[None]]
_Item = tuple[int, str | bytes, float]  # (epoch, message, provider arrival time or 0.0)


# The shared empty queue of every outbox that has queued nothing of that kind yet; it is
# never appended to (the outbox replaces it with its own deque first).
_NO_QUEUE: deque[Any] = deque(maxlen=0)


class SlowClient(Exception):
    """The client did not read reliable traffic within the send timeout."""


class Outbox:
    def __init__(self, capacity: int, send_timeout: float, tally: TrafficTally) -> None:
        # The channel of (epoch, message, provider arrival time or 0.0), made by the first
        # reliable or droppable message (rule 6).
        self._capacity = capacity
        self._tx: trio.MemorySendChannel[_Item] | None = None
        self._rx: trio.MemoryReceiveChannel[_Item] | None = None
        self._closed = False
        self._changed = Wakeup()  # the writer waits on it while there is no channel
        # (message, barge-in time or 0.0). Both deques are made on first use: an empty
        # deque is 760 bytes, and most rooms never interrupt or pause (rule 4).
        self._urgent: deque[tuple[str, float]] = _NO_QUEUE
        self._send_timeout = send_timeout
        self._tally = tally  # counts what is sent, and what post() drops
        self.current_epoch = NO_EPOCH
        self.paused = False  # rule 4
        self._held: deque[tuple[str | bytes, float]] = _NO_QUEUE
        self._resumed: trio.Event | None = None  # made by pause(), set by its resume

    # -- producers --------------------------------------------------------------------

    def post(self, message: str) -> bool:
        """Queue droppable traffic; returns False (and counts it) when dropped."""
        try:
            (self._tx or self._open()).send_nowait((NO_EPOCH, message, 0.0))
        except trio.WouldBlock:
            self._tally.drop("droppable_out")
            return False
        except trio.ClosedResourceError:
            return False
        return True

    async def put(self, message: str | bytes, epoch: int = NO_EPOCH, arrived: float = 0.0) -> None:
        """Queue reliable traffic, waiting for room at most `send_timeout` seconds.

        `arrived` (audio only) is when the provider delivered it, in `trio.current_time()`.
        Raises `SlowClient` when the deadline passes. Cancellation leaves nothing
        half-queued (a memory channel send either happens or does not).
        """
        tx = self._tx or self._open()
        try:
            tx.send_nowait((epoch, message, arrived))
            return
        except trio.WouldBlock:
            pass
        except trio.ClosedResourceError:
            return
        with trio.move_on_after(self._send_timeout):
            try:
                await tx.send((epoch, message, arrived))
            except trio.ClosedResourceError:
                pass
            return
        raise SlowClient(f"client read nothing for {self._send_timeout:g} s")

    def begin_epoch(self, epoch: int) -> None:
        """Audio of `epoch` is now the audio the client should hear."""
        self.current_epoch = epoch

    def interrupt(self, message: str) -> None:
        """Make the current epoch stale, then queue `message` ahead of everything."""
        self.current_epoch = NO_EPOCH - 1  # matches no response
        self._unpause()
        self._held = _NO_QUEUE
        self.urgent(message, trio.current_time())

    def pause(self, message: str) -> None:
        """Hold the current epoch's audio from now on; `message` goes out at once."""
        self.paused = True
        if self._resumed is None or self._resumed.is_set():
            self._resumed = trio.Event()
        self.urgent(message)

    def resume(self, message: str) -> None:
        """Send `message`, then the held audio, then the rest (rule 4)."""
        self._unpause()
        self.urgent(message)

    def _unpause(self) -> None:
        self.paused = False
        if self._resumed is not None:
            self._resumed.set()

    async def wait_unpaused(self) -> None:
        """Return once the outbox is not paused (a TTS waits here: rule 4)."""
        while self.paused and self._resumed is not None:
            await self._resumed.wait()

    def urgent(self, message: str, since: float = 0.0) -> None:
        if self._urgent is _NO_QUEUE:
            self._urgent = deque()
        self._urgent.append((message, since))
        if self._tx is None:
            self._changed.set()
            return
        try:
            self._tx.send_nowait(_WAKE)
        except (trio.WouldBlock, trio.ClosedResourceError):
            pass  # the writer is busy (or gone) and will see the urgent queue anyway

    def depth(self) -> int:
        return 0 if self._rx is None else self._rx.statistics().current_buffer_used

    def close(self) -> None:
        self._closed = True
        if self._tx is not None:
            self._tx.close()
        self._changed.set()

    def _open(self) -> trio.MemorySendChannel[_Item]:
        self._tx, self._rx = trio.open_memory_channel[_Item](self._capacity)
        if self._closed:
            self._tx.close()  # as if made at the start and closed since: sends are refused
        self._changed.set()
        return self._tx

    # -- the one writer ---------------------------------------------------------------

    async def run_writer(
        self, send: SendFn, on_error: Callable[[Exception], None] | None = None
    ) -> None:
        """Send queued traffic until the outbox is closed and drained.

        On cancellation it stops at once; a frame being sent may be cut off (the
        transport is then closed by the caller). Socket errors propagate, or go to
        `on_error` when given: the writer task then runs this method itself, with no
        wrapper frame for every idle room to hold.
        """
        try:
            while self._rx is None:  # rule 6: only urgent traffic so far
                if self._urgent:
                    await self._send_urgent(send)
                elif self._closed:
                    return
                else:
                    await self._changed.wait()
            receive = self._rx.receive  # not `async for`: one frame less in every idle room
            while True:
                try:
                    epoch, message, arrived = await receive()
                except trio.EndOfChannel:
                    break
                if self._urgent:
                    await self._send_urgent(send)
                if self._held and not self.paused:
                    await self._send_held(send)
                if epoch != NO_EPOCH and epoch != self.current_epoch:
                    continue  # audio of an interrupted response
                if message == "":
                    continue  # a wake-up
                if self.paused and epoch != NO_EPOCH:
                    if self._held is _NO_QUEUE:
                        self._held = deque()
                    self._held.append((message, arrived))
                    continue
                await send(message)
                self._tally.frame_out(len(message))
                if arrived:
                    RELAY_LATENCY.observe(trio.current_time() - arrived)
            await self._send_urgent(send)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(exc)

    async def _send_held(self, send: SendFn) -> None:
        while self._held and not self.paused:
            message, arrived = self._held.popleft()
            await send(message)
            self._tally.frame_out(len(message))
            if arrived:
                RELAY_LATENCY.observe(trio.current_time() - arrived)
            if self._urgent:  # an interrupt while flushing: it clears the rest
                await self._send_urgent(send)

    async def _send_urgent(self, send: SendFn) -> None:
        while self._urgent:
            message, since = self._urgent.popleft()
            await send(message)
            self._tally.frame_out(len(message))
            if since:
                INTERRUPT_LATENCY.observe(trio.current_time() - since)
        self._urgent = _NO_QUEUE  # empty (no await since the check): give its memory back

    def held(self) -> int:
        return len(self._held)

    def drain_nowait(self) -> None:
        """Forget everything queued (used when closing: nothing more will be sent)."""
        self._urgent = self._held = _NO_QUEUE
        while self._rx is not None:
            try:
                self._rx.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                return
