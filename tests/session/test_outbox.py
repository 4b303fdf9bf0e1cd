"""The outbox on its own: traffic classes, epochs, urgent ordering, drain (mock clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from voiceagent.metrics import TrafficTally
from voiceagent.session.outbox import Outbox, SlowClient


class Wire:
    """A fake socket: records what the writer sends; `gate` holds it back when unset."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.gate = trio.Event()
        self.gate.set()

    async def send(self, message: str | bytes) -> None:
        await self.gate.wait()
        self.sent.append(message)


def outbox(capacity: int = 4, send_timeout: float = 1.0) -> tuple[Outbox, TrafficTally]:
    tally = TrafficTally()
    return Outbox(capacity, send_timeout, tally), tally


async def test_droppable_traffic_is_dropped_and_counted_when_full() -> None:
    box, tally = outbox(capacity=2)
    assert box.post("a") and box.post("b")
    assert not box.post("c")
    assert not box.post("d")
    assert tally.drops_out == 2
    assert tally.dropped == 2
    assert box.depth() == 2


async def test_reliable_traffic_waits_for_room(autojump_clock: trio.testing.MockClock) -> None:
    box, tally = outbox(capacity=1, send_timeout=5.0)
    wire = Wire()
    box.post("first")
    async with trio.open_nursery() as nursery:

        async def read_later() -> None:
            await trio.sleep(3.0)  # slow, but within the send timeout
            nursery.start_soon(box.run_writer, wire.send)

        nursery.start_soon(read_later)
        await box.put("second")  # waits ~3 s for room, then goes in
        assert trio.current_time() == pytest.approx(3.0)
        box.close()
    assert wire.sent == ["first", "second"]
    assert tally.drops_out == 0


async def test_reliable_traffic_past_the_deadline_raises_slow_client(
    autojump_clock: trio.testing.MockClock,
) -> None:
    box, _ = outbox(capacity=1, send_timeout=2.0)
    await box.put("fills the channel")
    with pytest.raises(SlowClient):
        await box.put("no room for this")
    assert trio.current_time() == pytest.approx(2.0)


async def test_audio_of_a_stale_epoch_is_discarded_by_the_writer() -> None:
    box, _ = outbox(capacity=16)
    wire = Wire()
    box.begin_epoch(1)
    await box.put(b"old-1", epoch=1)
    await box.put("audio_end old", epoch=1)
    box.begin_epoch(2)  # a new response started: epoch 1 is stale now
    await box.put(b"new-1", epoch=2)
    await box.put("text_done")  # no epoch: always sent
    box.close()
    await box.run_writer(wire.send)
    assert wire.sent == [b"new-1", "text_done"]


async def test_interrupt_goes_first_and_no_old_audio_follows_it() -> None:
    box, _ = outbox(capacity=16)
    wire = Wire()
    box.begin_epoch(0)
    for index in range(5):
        await box.put(f"audio-{index}".encode(), epoch=0)
    await box.put("response_done")
    box.interrupt("audio_interrupted")
    box.close()
    await box.run_writer(wire.send)
    assert wire.sent == ["audio_interrupted", "response_done"]


async def test_urgent_overtakes_queued_traffic_and_never_drops() -> None:
    box, tally = outbox(capacity=2)
    wire = Wire()
    wire.gate = trio.Event()  # the writer is stuck sending the first message
    box.post("a")
    box.post("b")
    assert not box.post("dropped")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, wire.send)
        await trio.testing.wait_all_tasks_blocked()
        box.urgent("error 1")
        box.urgent("error 2")  # the channel is full: urgent traffic still gets through
        wire.gate.set()
        box.close()
    # "a" was being sent when the urgent ones arrived; they go before "b".
    assert wire.sent == ["a", "error 1", "error 2", "b"]
    assert tally.drops_out == 1


async def test_an_idle_writer_is_woken_by_urgent_traffic_and_ended_by_close() -> None:
    box, _ = outbox()
    wire = Wire()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, wire.send)
        await trio.testing.wait_all_tasks_blocked()
        box.urgent("session_started")
        await trio.testing.wait_all_tasks_blocked()
        assert wire.sent == ["session_started"]
        box.urgent("error idle_timeout")
        box.close()  # nothing was ever queued (no channel yet): the writer still ends
    assert wire.sent == ["session_started", "error idle_timeout"]
    assert not box.post("late")  # refused after close, channel or not
    await box.put("late too")
    box.drain_nowait()
    assert box.depth() == 0


async def test_close_lets_the_writer_drain_what_is_queued() -> None:
    box, _ = outbox(capacity=8)
    wire = Wire()
    box.post("a")
    await box.put("b")
    box.close()
    box.urgent("bye")  # after close: still sent, ahead of the queue as always
    assert not box.post("late")  # nothing new is queued after close
    await box.put("late too")
    await box.run_writer(wire.send)
    assert wire.sent == ["bye", "a", "b"]


async def test_drain_nowait_forgets_everything_queued() -> None:
    box, _ = outbox(capacity=8)
    wire = Wire()
    box.post("a")
    await box.put("b")
    box.urgent("c")
    box.drain_nowait()
    box.close()
    await box.run_writer(wire.send)
    assert wire.sent == []
    assert box.depth() == 0


async def test_the_first_queued_message_wakes_a_writer_that_had_only_urgent_traffic() -> None:
    """Rule 6: the channel is made by the first reliable or droppable message, and the
    writer parked without one moves to it, in order."""
    box, tally = outbox()
    wire = Wire()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, wire.send)
        box.urgent("session_started")
        box.urgent("agent_start")
        await trio.testing.wait_all_tasks_blocked()
        assert wire.sent == ["session_started", "agent_start"]
        assert box.depth() == 0
        await box.put("transcript")
        assert box.post("delta")
        box.urgent("audio_interrupted")
        await trio.testing.wait_all_tasks_blocked()
        assert wire.sent == [
            "session_started",
            "agent_start",
            "audio_interrupted",  # urgent overtakes what is queued, as ever
            "transcript",
            "delta",
        ]
        box.close()
    assert tally.frames_out == 5


async def test_a_writer_cancelled_while_it_waits_without_a_channel_leaves_quietly() -> None:
    box, _ = outbox()
    wire = Wire()
    with trio.move_on_after(0.01) as scope:
        await box.run_writer(wire.send)
    assert scope.cancelled_caught
    box.urgent("nobody writes this")  # must not wake the task that left
    assert box.post("nor this")
    await trio.sleep(0.01)
    assert wire.sent == []
