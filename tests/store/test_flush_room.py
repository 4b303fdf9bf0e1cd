"""A handshake waits only for its own room's queued records, never for other rooms'."""

from __future__ import annotations

import time
from pathlib import Path

import trio

from voiceagent.store.records import Mark
from voiceagent.store.sqlite import SqliteBackend
from voiceagent.store.writer import Store


def mark(room: str) -> Mark:
    return Mark(session_id=room, connection_id="c1", at=time.time(), kind="barge_in")


async def test_flush_room_waits_for_that_room_only(tmp_path: Path) -> None:
    store = Store(SqliteBackend.in_dir(str(tmp_path)), flush_ms=200)
    store.put(mark("busy"))  # queued; the writer has not started yet
    with trio.fail_after(1):
        assert await store.flush_room("fresh", 5.0) is True  # nothing of its own: at once
    assert await store.flush_room("busy", 0.05) is False  # its record is still queued
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.run)
        with trio.fail_after(10):
            assert await store.flush_room("busy", 10.0) is True  # written by the writer
        await store.aclose(5.0)
    assert store.done_count == 1
