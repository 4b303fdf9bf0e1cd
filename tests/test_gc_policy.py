"""The GC policy's decisions (voiceagent/gc_policy.py), on Trio's MockClock.

A fake collector records the calls; one test runs the real collector to show what a
tick does to the interpreter's generations.
"""

from __future__ import annotations

import gc

import pytest
import trio
import trio.testing

from voiceagent.gc_policy import (
    CHECK_S,
    TICK_OBJECTS,
    GcPolicy,
    GcSettings,
    PythonCollector,
    run_gc_policy,
)


class FakeCollector:
    def __init__(self, found: int = 0, young: int = 0) -> None:
        self.calls: list[str] = []
        self.found = found
        self.young_count = young  # objects made since the last collection

    def collect(self) -> int:
        self.calls.append("collect")
        self.young_count = 0
        return self.found

    def young(self) -> int:
        return self.young_count

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


async def run_for(seconds: float, settings: GcSettings, rooms: list[int], collector: FakeCollector):
    async with trio.open_nursery() as nursery:
        policy = await nursery.start(
            lambda task_status: run_gc_policy(
                settings, lambda: rooms[0], collector=collector, task_status=task_status
            )
        )
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
    return policy


async def test_a_tick_collects_then_freezes_every_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    collector = FakeCollector()
    policy = await run_for(3.5, GcSettings(freeze_interval_s=1.0), [100], collector)
    assert collector.calls == ["collect", "freeze"] * 3
    assert (policy.ticks, policy.sweeps) == (3, 0)


async def test_no_sweep_while_rooms_are_open_however_long_it_has_been(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = GcSettings(freeze_interval_s=1.0, sweep_interval_s=10.0, sweep_max_rooms=0)
    collector = FakeCollector()
    policy = await run_for(60.5, settings, [1], collector)
    assert "unfreeze" not in collector.calls
    assert (policy.ticks, policy.sweeps) == (60, 0)


async def test_a_sweep_runs_at_a_quiet_moment_at_most_once_per_interval(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settings = GcSettings(freeze_interval_s=1.0, sweep_interval_s=10.0, sweep_max_rooms=2)
    collector = FakeCollector()
    rooms = [5]
    async with trio.open_nursery() as nursery:
        policy = await nursery.start(
            lambda task_status: run_gc_policy(
                settings, lambda: rooms[0], collector=collector, task_status=task_status
            )
        )
        await trio.sleep(15.5)  # busy: ticks only
        assert policy.sweeps == 0
        rooms[0] = 2  # quiet (at most sweep_max_rooms), and 10 s have passed: one sweep
        await trio.sleep(1.0)
        assert policy.sweeps == 1
        assert collector.calls[-3:] == ["unfreeze", "collect", "freeze"]
        await trio.sleep(8.0)  # still quiet, but within the sweep interval: ticks
        assert policy.sweeps == 1
        await trio.sleep(2.0)
        assert policy.sweeps == 2
        nursery.cancel_scope.cancel()


async def test_what_passes_collect_is_counted_by_kind() -> None:
    policy = GcPolicy(GcSettings(sweep_interval_s=10.0, sweep_max_rooms=0), now=0.0)
    assert policy.run_once(1.0, 0, FakeCollector(found=3)) == "tick"
    assert policy.run_once(11.0, 0, FakeCollector(found=4)) == "sweep"
    assert policy.collected == {"tick": 3, "sweep": 4}


async def test_interval_zero_leaves_the_collector_alone() -> None:
    collector = FakeCollector()
    policy = await run_for(5.0, GcSettings(freeze_interval_s=0.0), [0], collector)
    assert policy is None
    assert collector.calls == []


async def test_a_burst_of_new_objects_brings_the_tick_early(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Rooms opening fast: the tick comes at the next check, not a whole interval later.
    burst = FakeCollector(young=TICK_OBJECTS)
    policy = await run_for(0.55, GcSettings(freeze_interval_s=1.0), [100], burst)
    assert policy.ticks == 1
    assert burst.calls == ["collect", "freeze"]
    # Fewer new objects than that: the tick waits for its interval.
    steady = FakeCollector(young=TICK_OBJECTS - 1)
    policy = await run_for(0.95, GcSettings(freeze_interval_s=1.0), [100], steady)
    assert policy.ticks == 0


@pytest.mark.parametrize("young", [GcSettings().young_threshold, 0])
async def test_the_young_threshold_holds_while_the_policy_runs(young: int) -> None:
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []
    async with trio.open_nursery() as nursery:
        settings = GcSettings(freeze_interval_s=1.0, young_threshold=young)
        await nursery.start(run_gc_policy, settings, lambda: 0)
        seen.append(gc.get_threshold())
        nursery.cancel_scope.cancel()
    assert seen == [(young or before[0], *before[1:])]
    assert gc.get_threshold() == before  # given back when the policy stops


class SteppingTimer:
    """A `perf_counter` stand-in: each tick takes the next of `pauses` seconds."""

    def __init__(self, pauses: list[float]) -> None:
        self.pauses, self.now, self.calls = pauses, 0.0, 0

    def __call__(self) -> float:
        if self.calls % 2:  # the call after a tick's collection: it took the next pause
            self.now += self.pauses.pop(0)
        self.calls += 1
        return self.now


def test_a_long_tick_brings_the_next_one_sooner_and_short_ones_let_it_go_back() -> None:
    pauses = [0.030, 0.030, 0.030, 0.030, 0.030, 0.006, 0.004, 0.004, 0.004, 0.004, 0.004]
    policy = GcPolicy(GcSettings(freeze_interval_s=1.0), 0.0, timer=SteppingTimer(pauses))
    intervals = []
    for _ in range(len(pauses)):
        policy.run_once(0.0, 10, FakeCollector())
        intervals.append(policy.interval)
    # over budget: shrink in proportion (30 ms: a third) down to 0.1 s; within budget:
    # keep; under half of it: double up to 1 s (a steady 4 ms tick, as with 100 active
    # rooms, must not keep ticks frequent)
    expected = [1 / 3, 1 / 9, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert intervals == pytest.approx(expected)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen_after() -> object:
    yield None
    gc.unfreeze()  # leave the test process as it found it


def test_a_tick_frees_young_cycles_and_freezes_the_survivors(unfrozen_after: object) -> None:
    gc.collect()
    frozen_before = gc.get_freeze_count()
    kept = [Node() for _ in range(100)]
    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle...
    del a, b  # ...that is garbage now
    policy = GcPolicy(GcSettings(), now=0.0)
    assert policy.run_once(1.0, 10, PythonCollector()) == "tick"
    assert policy.collected["tick"] >= 2  # the two nodes (and their dicts)
    assert gc.get_freeze_count() >= frozen_before + len(kept)
    assert gc.collect() == 0  # nothing left outside the frozen generation to walk


async def test_the_interpreter_counts_new_objects_so_a_burst_brings_a_real_tick(
    unfrozen_after: object,
) -> None:
    # Rule 7 reads gc.get_count()[0]: with the young passes off it must grow with the
    # objects made (an interpreter that counted otherwise would make the rule a no-op).
    settings = GcSettings(freeze_interval_s=30.0)  # no tick on time within this test
    async with trio.open_nursery() as nursery:
        policy = await nursery.start(run_gc_policy, settings, lambda: 0)
        await trio.sleep(0.3)
        assert policy.ticks == 0
        burst = [[n] for n in range(2 * TICK_OBJECTS)]  # tracked objects, kept alive
        await trio.sleep(3 * CHECK_S)  # the policy's checks are due before this wakes
        assert policy.ticks == 1
        assert gc.get_count()[0] < TICK_OBJECTS  # the tick collected: the count restarted
        nursery.cancel_scope.cancel()
    del burst


def open_sessions_walked_by_the_collector() -> int:
    """Sessions in generations 0-2 (`gc.get_objects()` leaves out the frozen ones)."""
    from voiceagent.session.session import Session

    return sum(isinstance(o, Session) for o in gc.get_objects())


@pytest.mark.parametrize("interval, walked", [(0.2, 0), (0.0, 1)])
async def test_the_app_runs_the_policy_so_an_open_room_is_not_walked(
    unfrozen_after: object, interval: float, walked: int
) -> None:
    from tests.conftest import connect, make_services, running_app
    from voiceagent.config import Settings
    from voiceagent.models.scripted import ScriptedModel
    from voiceagent.tts.scripted import ScriptedTTS

    settings = Settings(gc_freeze_interval_s=interval)
    services = make_services(ScriptedModel(), ScriptedTTS(), settings=settings)
    async with running_app(services) as address, connect(address, "frozen") as client:
        await client.wait_for("session_started")
        await trio.sleep(0.5)  # at least two ticks since the room opened
        assert open_sessions_walked_by_the_collector() == walked
