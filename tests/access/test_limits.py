"""Slot counting and token buckets."""

from __future__ import annotations

from voiceagent.access.limits import LocalSlots, TokenBucket


async def test_slots_hold_up_to_the_limit_and_free_on_release() -> None:
    slots = LocalSlots()
    assert await slots.acquire("ip", 2) and await slots.acquire("ip", 2)
    assert not await slots.acquire("ip", 2)
    assert await slots.acquire("other", 2)
    slots.release("ip")
    assert slots.count("ip") == 1
    assert await slots.acquire("ip", 2)
    slots.release("ip")
    slots.release("ip")
    assert slots.count("ip") == 0


async def test_a_zero_limit_means_unlimited() -> None:
    slots = LocalSlots()
    assert all([await slots.acquire("k", 0) for _ in range(1000)])


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=5, now=0.0)
    assert [bucket.take(1, 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(1, 0.1)  # 0.1 s at 10/s refills one
    assert not bucket.take(1, 0.1)
    assert bucket.take(5, 10.0)  # refills cap at the burst
    assert not bucket.take(1, 10.0)


def test_a_refused_take_spends_nothing() -> None:
    bucket = TokenBucket(rate=1, burst=3, now=0.0)
    assert not bucket.take(4, 0.0)
    assert bucket.take(3, 0.0)
