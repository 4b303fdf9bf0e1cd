"""The room's change signals: wake the waiting task, remember nothing for a later one."""

from __future__ import annotations

import trio
import trio.testing

from voiceagent.session.wakeup import Wakeup


async def test_set_wakes_the_task_that_waits() -> None:
    wakeup = Wakeup()
    woken: list[float] = []

    async def waiter() -> None:
        await wakeup.wait()
        woken.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []
        wakeup.set()
    assert len(woken) == 1


async def test_a_change_before_the_wait_does_not_end_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wakeup = Wakeup()
    wakeup.set()  # nobody waits: nothing is kept
    start = trio.current_time()
    assert await wakeup.wait_until(start + 5) is False
    assert trio.current_time() == start + 5


async def test_wait_until_says_whether_the_change_came(
    autojump_clock: trio.testing.MockClock,
) -> None:
    wakeup = Wakeup()
    results: list[bool] = []

    async def waiter() -> None:
        results.append(await wakeup.wait_until(trio.current_time() + 10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.sleep(1)
        wakeup.set()
    assert results == [True]
    assert trio.current_time() == 1


async def test_waiting_is_cancellable() -> None:
    wakeup = Wakeup()
    with trio.move_on_after(0.01) as scope:
        await wakeup.wait()
    assert scope.cancelled_caught
    wakeup.set()  # a set() after the waiter left is harmless


async def test_a_set_after_a_cancelled_wait_reaches_the_next_waiter_only() -> None:
    wakeup = Wakeup()
    with trio.move_on_after(0.01):
        await wakeup.wait()
    wakeup.set()  # nobody waits now: must not reschedule the task that left
    await trio.sleep(0.01)  # a stray reschedule would break this sleep
    woken: list[bool] = []

    async def waiter() -> None:
        woken.append(await wakeup.wait_until(trio.current_time() + 5))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        wakeup.set()
    assert woken == [True]


async def test_a_set_right_after_the_waiter_is_cancelled_is_harmless() -> None:
    """The cancel and the set() come in one step, before the cancelled task runs again
    (a barge-in cancels what waits, then signals the change)."""
    wakeup = Wakeup()
    scope = trio.CancelScope()
    left: list[bool] = []

    async def waiter() -> None:
        with scope:
            await wakeup.wait()
        left.append(scope.cancelled_caught)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        scope.cancel()  # Trio reschedules the waiter with Cancelled now
        wakeup.set()  # nobody waits any more: must not reschedule it a second time
    assert left == [True]
