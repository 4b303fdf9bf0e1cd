"""A reconnect burst's resume reads reach the database in batches, not one call per room."""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing

from tests.store.conftest import backend_for
from voiceagent.store.read_batches import MAX_KEYS, BatchedReads, StoreReadError
from voiceagent.store.records import ConnectionClosed, ConnectionOpened, ItemFinal
from voiceagent.store.writer import Store


class Database:
    """A fetch that records its calls and answers when the test lets it."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[list[str]] = []
        self.release = trio.Event()
        self.fail = fail

    async def fetch(self, keys: list[str]) -> list[str]:
        self.calls.append(keys)
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return [key.upper() for key in keys]


async def test_reads_that_wait_together_share_one_call() -> None:
    db = Database()
    reads: BatchedReads[str, str] = BatchedReads(db.fetch)
    answers: dict[str, str] = {}

    async def read(key: str) -> None:
        answers[key] = await reads.get(key)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reads.serve)
        nursery.start_soon(read, "first")
        await trio.testing.wait_all_tasks_blocked()
        assert db.calls == [["first"]]  # a lone read goes out at once
        for n in range(9):
            nursery.start_soon(read, f"room{n}")
        await trio.testing.wait_all_tasks_blocked()
        assert len(db.calls) == 1  # the others wait for the call that is out
        db.release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert db.calls[0] == ["first"]
    assert sorted(db.calls[1]) == [f"room{n}" for n in range(9)]  # in the order they came
    assert len(db.calls) == 2
    assert answers == {key: key.upper() for key in ["first", *(f"room{n}" for n in range(9))]}


async def test_one_call_takes_at_most_max_keys() -> None:
    db = Database()
    db.release.set()
    reads: BatchedReads[str, str] = BatchedReads(db.fetch)
    async with trio.open_nursery() as nursery:
        for n in range(MAX_KEYS * 2 + 10):
            nursery.start_soon(reads.get, f"r{n}")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(reads.serve)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert [len(call) for call in db.calls] == [MAX_KEYS, MAX_KEYS, 10]


async def test_a_cancelled_read_leaves_and_the_call_answers_the_rest() -> None:
    db = Database()
    reads: BatchedReads[str, str] = BatchedReads(db.fetch)
    got: list[str] = []
    scopes: dict[str, trio.CancelScope] = {}

    async def read(key: str) -> None:
        with trio.CancelScope() as scopes[key]:  # a handshake's own bound
            got.append(await reads.get(key))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reads.serve)
        for key in "abc":  # "a" goes out alone; "b" and "c" wait for the next call
            nursery.start_soon(read, key)
            await trio.testing.wait_all_tasks_blocked()
        scopes["b"].cancel()
        db.release.set()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert sorted(got) == ["A", "C"]


async def test_a_failed_call_fails_each_read_with_an_error_of_its_own() -> None:
    db = Database(fail=OSError("database is locked"))
    db.release.set()
    reads: BatchedReads[str, str] = BatchedReads(db.fetch)
    errors: list[StoreReadError] = []

    async def read(key: str) -> None:
        with pytest.raises(StoreReadError) as caught:
            await reads.get(key)
        errors.append(caught.value)

    async with trio.open_nursery() as nursery:
        for key in "abc":
            nursery.start_soon(read, key)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(reads.serve)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert len(errors) == 3
    assert len({id(error) for error in errors}) == 3
    assert all("database is locked" in str(error) for error in errors)


async def test_reads_fail_at_once_when_the_store_stops_serving() -> None:
    db = Database()  # never released: the call in flight hangs
    reads: BatchedReads[str, str] = BatchedReads(db.fetch)
    failed: list[str] = []

    async def read(key: str) -> None:
        with pytest.raises(StoreReadError, match="closed"):
            await reads.get(key)
        failed.append(key)

    async with trio.open_nursery() as outer:
        outer.start_soon(read, "in flight")
        async with trio.open_nursery() as store:
            store.start_soon(reads.serve)
            await trio.testing.wait_all_tasks_blocked()
            outer.start_soon(read, "queued")
            await trio.testing.wait_all_tasks_blocked()
            store.cancel_scope.cancel()
    with trio.fail_after(1):
        await read("later")
    assert sorted(failed) == ["in flight", "later", "queued"]


async def test_a_burst_of_returning_rooms_resumes_in_few_database_calls(
    database: dict[str, str],
) -> None:
    """The real store (SQLite, PostgreSQL): 600 rooms look up their visit and items at once."""
    backend = backend_for(database)
    backend.migrate()
    ended = time.time() - 10
    rooms = [f"room{n}" for n in range(600)]
    records: list[object] = []
    for room in rooms:
        records += [
            ConnectionOpened(room, f"c-{room}", ended - 60, None, "triage", "m", "t"),
            ItemFinal(room, f"c-{room}", 0, ended - 30, "i0", "user", "message", room, "completed"),
            ConnectionClosed(room, f"c-{room}", ended, "client_left", 1000, "triage", {}),
        ]
    backend.write(records)  # type: ignore[arg-type]
    calls: list[int] = []
    last_visits = backend.last_visits

    def counted(session_ids: list[str]) -> list[object]:
        calls.append(len(session_ids))
        return last_visits(session_ids)  # type: ignore[return-value]

    backend.last_visits = counted  # type: ignore[method-assign]
    store = Store(backend)
    found: dict[str, tuple[str, str]] = {}

    async def come_back(room: str) -> None:
        visit = await store.last_visit(room)
        items = await store.items(room, newest=50)
        assert visit is not None
        found[room] = (visit.connection_id, items[0].text)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.run)
        await store.migrated.wait()
        with trio.fail_after(20):
            async with trio.open_nursery() as burst:
                for room in rooms:
                    burst.start_soon(come_back, room)
        await store.aclose(5.0)
    assert found == {room: (f"c-{room}", room) for room in rooms}
    assert sum(calls) == 600
    assert len(calls) <= 600 // MAX_KEYS + 2  # one call per batch, not one per room
