"""A database that is down, slow or full never disturbs a room (real sockets)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import trio

from tests.conftest import connect, running_app
from tests.store.conftest import backend_for
from tests.store.conversation import converse, shown, store_services
from tests.store.postgres_server import PostgresServer
from voiceagent.metrics import REGISTRY
from voiceagent.store.records import Record
from voiceagent.store.sqlite import SqliteBackend
from voiceagent.store.writer import Store


class FaultyBackend(SqliteBackend):
    """SQLite whose writes fail (`down`: a full disk) or take `delay` seconds."""

    down = False
    delay = 0.0
    attempts = 0

    def write(self, batch: Sequence[Record]) -> None:
        self.attempts += 1
        if self.delay:
            time.sleep(self.delay)
        if self.down:
            raise sqlite3.OperationalError("database or disk is full")
        super().write(batch)


def dropped_full() -> float:
    return (
        REGISTRY.get_sample_value("voiceagent_store_records_total", {"outcome": "dropped_full"})
        or 0.0
    )


async def test_database_down_then_back_loses_nothing(tmp_path: Path) -> None:
    backend = FaultyBackend(tmp_path / "va.db")
    backend.down = True
    services = store_services(backend)
    store = services.store
    assert store is not None
    async with running_app(services) as address:
        async with connect(address, "down-room") as client:
            with trio.fail_after(15):  # the room runs as usual while every write fails
                await converse(client)
        assert backend.attempts >= 2  # retried, batch kept
        backend.down = False
        assert await store.flush(15)
    stored = SqliteBackend(tmp_path / "va.db").items("down-room")
    assert [r.conversation_item().as_event_item() for r in stored] == shown(client)


async def test_slow_database_does_not_slow_turns(tmp_path: Path) -> None:
    backend = FaultyBackend(tmp_path / "va.db")
    backend.delay = 1.5  # every transaction takes 1.5 s
    services = store_services(backend)
    async with running_app(services) as address, connect(address, "slow-room") as client:
        await client.wait_for("session_started")
        for text in ("where is my order", "and again my order", "order once more"):
            started = trio.current_time()
            await client.send(type="text", text=text)
            await client.wait_for("text_done", where=lambda e: e["text"].startswith("Done:"))
            # The turn does not wait for any write (it would take >= 1.5 s).
            assert trio.current_time() - started < 1.0


async def test_full_queue_drops_and_counts_and_the_room_goes_on(tmp_path: Path) -> None:
    backend = FaultyBackend(tmp_path / "va.db")
    backend.down = True
    services = store_services(backend)
    services.store = Store(backend, capacity=2, flush_ms=20)
    before = dropped_full()
    async with running_app(services) as address:
        async with connect(address, "full-room") as client:
            with trio.fail_after(15):
                await converse(client)
        assert services.store.dropped > 0
        assert dropped_full() - before == services.store.dropped
        backend.down = False


async def test_postgres_down_at_start_up_leaves_rooms_running(
    postgres_server: PostgresServer,
) -> None:
    # Nothing listens there: migrations and writes fail and are retried in the background.
    url = postgres_server.url("postgres").replace(str(postgres_server.port), "9")
    services = store_services(backend_for({"VOICEAGENT_DATABASE_URL": url}))
    async with running_app(services) as address, connect(address, "pg-down") as client:
        with trio.fail_after(15):
            await converse(client)
        assert services.store is not None and not services.store.migrated.is_set()
