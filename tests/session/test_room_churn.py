"""10,000 rooms opened and cancelled mid-answer leave nothing behind (slow: `-m slow`).

Over real sockets, against the Realtime and Cartesia emulators in their own processes:
25 rooms at a time ask a question, wait for the answer's first audio and leave (every
fourth one interrupts the voice first), so the session, its Realtime connection and
its Cartesia stream are cancelled mid-answer every time. After a warm-up, and then
after every batch, with no room open: the collector finds nothing in reference cycles,
the tracked-object count stays flat and the RSS stays within 5 % of its value after the
warm-up. Bounded: the whole run must finish within `LIMIT_S`.
benchmarks/room_churn.py is the same check with the server in its own process.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from pathlib import Path

import pytest
import trio
from trio_websocket import ConnectionClosed

from tests.conftest import connect, eventually
from tests.session.test_cyclic_garbage import QUESTION, cloud

CYCLES = int(os.environ.get("VOICEAGENT_TEST_CHURN_CYCLES", "10000"))
WARMUP = 500
BATCH = 2_000
CONCURRENCY = 25
LIMIT_S = 1_800


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def cycles(address: str, start: int, n: int) -> int:
    """Run `n` room cycles, CONCURRENCY at a time; returns how many left mid-answer."""
    indices = iter(range(start, start + n))
    left = 0

    async def worker() -> None:
        nonlocal left
        for index in indices:  # shared: each index once
            with trio.fail_after(30):
                async with connect(address, f"churn-{index}") as client:
                    await client.wait_for("session_started")
                    await client.send(type="text", text=QUESTION)
                    start = await client.wait_for("audio_start", within=20)
                    if index % 4 == 0:
                        while not any(o == start["response_id"] for o, _ in client.audio):
                            await client.receive()
                        await client.send(type="interrupt")
                        await client.wait_for("audio_interrupted")
                    left += 1
                # (leaving: the close handshake is the client's, the rest is cancelled)

    async with trio.open_nursery() as nursery:
        for _ in range(min(CONCURRENCY, n)):
            nursery.start_soon(worker)
    return left


@pytest.mark.slow
async def test_ten_thousand_rooms_cancelled_mid_answer_leave_nothing(tmp_path: Path) -> None:
    with trio.fail_after(LIMIT_S):
        async with cloud(tmp_path) as (address, services):
            try:
                assert await cycles(address, 0, WARMUP) == WARMUP
            except ConnectionClosed as exc:  # pragma: no cover - a diagnosis, not a path
                raise AssertionError(f"a room closed early: {exc}") from None

            async def settled(*, first: bool = False) -> tuple[Counter[str], int]:
                await eventually(
                    lambda: not (len(services.registry) or services.registry.with_model)
                )
                await trio.sleep(0.5)
                gc.unfreeze()  # the app froze its start-up heap: count everything
                found = gc.collect()  # the first time: whatever start-up left, too
                assert first or found == 0, f"closed rooms left {found} objects in cycles"
                kinds = Counter(type(o).__qualname__ for o in gc.get_objects())
                return kinds, rss_bytes()

            kinds0, rss0 = await settled(first=True)
            objects0 = kinds0.total()
            done = 0
            while done < CYCLES:
                n = min(BATCH, CYCLES - done)
                assert await cycles(address, WARMUP + done, n) == n
                done += n
                kinds, rss = await settled()
                grew = (kinds - kinds0).most_common(8)
                assert kinds.total() - objects0 <= objects0 * 0.01 + 1_000, (done, objects0, grew)
                assert rss <= rss0 * 1.05, (done, rss0, rss)
