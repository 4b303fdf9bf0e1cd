"""The audit stream's Redis sink, against a real redis-server: every stored record is
XADDed as the same JSON event the file gets; MAXLEN trims; a Redis that stops costs
neither the rooms nor the store anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.conftest import connect, running_app
from tests.infra import RedisServer
from tests.store.conversation import converse, shown, store_services
from voiceagent.config import ConfigError, Settings
from voiceagent.config_env import parse
from voiceagent.metrics import REGISTRY
from voiceagent.store import open_audit
from voiceagent.store.audit import FileSink, Sinks
from voiceagent.store.audit_stream import StreamSink
from voiceagent.store.sqlite import SqliteBackend

STREAM = "va:audit"


def dropped_events() -> float:
    return REGISTRY.get_sample_value("voiceagent_audit_events_dropped_total") or 0.0


def stream_events(redis: RedisServer, key: str = STREAM) -> list[dict[str, Any]]:
    entries = redis.call("XRANGE", key, "-", "+")
    assert isinstance(entries, list)
    events = []
    for _entry_id, fields in entries:
        assert fields[0] == "event" and len(fields) == 2  # one field per entry
        events.append(orjson.loads(fields[1]))
    return events


def file_events(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.open("rb")]


def sink(redis: RedisServer, maxlen: int = 100_000) -> StreamSink:
    return StreamSink(redis.url, STREAM, maxlen=maxlen, timeout_s=0.5)


async def test_the_stream_holds_what_the_file_and_the_store_hold(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    services = store_services(SqliteBackend(tmp_path / "va.db"))
    assert services.store is not None
    stream = sink(redis_server)
    services.store.audit = Sinks([FileSink(tmp_path / "events.jsonl"), stream])
    async with running_app(services) as address:
        async with connect(address, "stream-room") as client:
            await converse(client)
    events = stream_events(redis_server)
    assert events == file_events(tmp_path / "events.jsonl")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "connection_opened" and kinds[-1] == "connection_closed"
    assert {"item", "turn", "mark"} <= set(kinds)
    final = {e["item_id"]: e for e in events if e["type"] == "item"}
    stored = SqliteBackend(tmp_path / "va.db").items("stream-room")
    assert [final[r.item_id]["text"] for r in stored] == [r.text for r in stored]
    assert [r.item_id for r in stored] == [item["id"] for item in shown(client)]
    # One XADD per event, sent in pipelines from the writer.
    assert redis_server.command_calls().get("xadd") == len(events) == stream.sent
    assert stream.dropped == 0


async def test_maxlen_trims_the_oldest_events(tmp_path: Path, redis_server: RedisServer) -> None:
    # `MAXLEN ~` trims whole macro nodes: small nodes make the bound tight enough to test.
    redis_server.call("CONFIG", "SET", "stream-node-max-entries", "2")
    services = store_services(SqliteBackend(tmp_path / "va.db"))
    assert services.store is not None
    services.store.audit = Sinks([FileSink(tmp_path / "events.jsonl"), sink(redis_server, 4)])
    async with running_app(services) as address:
        async with connect(address, "trim-room") as client:
            await converse(client)
    everything = file_events(tmp_path / "events.jsonl")
    kept = stream_events(redis_server)
    assert len(everything) > 10
    assert 4 <= len(kept) <= 4 + 2
    assert kept == everything[-len(kept) :]  # the newest, in order


async def test_redis_stopped_mid_run_disturbs_neither_rooms_nor_store(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    services = store_services(SqliteBackend(tmp_path / "va.db"))
    assert services.store is not None
    stream = sink(redis_server)
    services.store.audit = Sinks([FileSink(tmp_path / "events.jsonl"), stream])
    before = dropped_events()
    pages = {}
    async with running_app(services) as address:
        async with connect(address, "before") as client:
            await converse(client)
        pages["before"] = shown(client)
        await settled(stream, tmp_path, "before")
        assert stream.dropped == 0
        redis_server.stop()
        async with connect(address, "while-down") as client:
            await converse(client)
        pages["while-down"] = shown(client)
        await settled(stream, tmp_path, "while-down")
        assert stream.dropped > 0
        redis_server.start()
        await trio.sleep(PAUSE_AFTER_FAILURES_S)  # the sink's pause after failures ends
        async with connect(address, "after") as client:
            await converse(client)
        pages["after"] = shown(client)
    backend = SqliteBackend(tmp_path / "va.db")
    for room, page in pages.items():
        assert [r.item_id for r in backend.items(room)] == [item["id"] for item in page], room
    assert dropped_events() - before == stream.dropped > 0
    rooms = {e["session_id"] for e in stream_events(redis_server)}
    assert "after" in rooms and "while-down" not in rooms  # dropped, not retried
    written = file_events(tmp_path / "events.jsonl")
    assert stream.sent + stream.dropped == len(written)


PAUSE_AFTER_FAILURES_S = 5.5  # PAUSE_MAX_S plus a margin


async def settled(stream: StreamSink, tmp_path: Path, room: str) -> None:
    """Wait until `room` has closed, all its records are stored (the file has them) and
    the sink has sent or dropped every event."""
    with trio.fail_after(10):
        while True:
            events = file_events(tmp_path / "events.jsonl")
            closed = any(
                e["type"] == "connection_closed" and e["session_id"] == room for e in events
            )
            if closed and stream.sent + stream.dropped == len(events):
                return
            await trio.sleep(0.02)


def test_settings() -> None:
    url = "redis://127.0.0.1:1/0"
    settings = parse({"VOICEAGENT_REDIS_URL": url, "VOICEAGENT_AUDIT_STREAM": "audit"})
    assert (settings.audit_stream, settings.audit_stream_maxlen) == ("audit", 100_000)
    audit = open_audit(settings)
    assert isinstance(audit, StreamSink) and audit.maxlen == 100_000
    assert open_audit(Settings()) is None
    with pytest.raises(ConfigError, match="VOICEAGENT_REDIS_URL"):
        parse({"VOICEAGENT_AUDIT_STREAM": "audit"})
    with pytest.raises(ConfigError, match="VOICEAGENT_AUDIT_STREAM_MAXLEN"):
        parse({"VOICEAGENT_AUDIT_STREAM_MAXLEN": "0"})


async def test_a_paused_redis_costs_the_writer_nothing(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """SIGSTOP: connections stay open and nothing answers; each send meets the timeout."""
    services = store_services(SqliteBackend(tmp_path / "va.db"))
    assert services.store is not None
    stream = sink(redis_server)
    services.store.audit = Sinks([FileSink(tmp_path / "events.jsonl"), stream])
    async with running_app(services) as address:
        redis_server.pause()
        try:
            async with connect(address, "paused") as client:
                await converse(client)
            await settled(stream, tmp_path, "paused")
            # The writer kept up: every batch was stored and reached the file meanwhile.
            assert services.store.done_count == services.store.put_count
        finally:
            redis_server.resume()
    stored = SqliteBackend(tmp_path / "va.db").items("paused")
    assert [r.item_id for r in stored] == [item["id"] for item in shown(client)]
    assert stream.dropped > 0 and stream.failures > 0
