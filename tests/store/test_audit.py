"""The audit stream: every stored record also lands in the JSON-lines file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from tests.conftest import connect, running_app
from tests.store.conversation import converse, shown, store_services
from voiceagent.metrics import REGISTRY
from voiceagent.store.audit import FileSink
from voiceagent.store.sqlite import SqliteBackend


def audit_errors() -> float:
    return REGISTRY.get_sample_value("voiceagent_audit_errors_total") or 0.0


async def test_every_stored_record_is_published(tmp_path: Path) -> None:
    services = store_services(SqliteBackend(tmp_path / "va.db"))
    assert services.store is not None
    services.store.audit = FileSink(tmp_path / "audit" / "events.jsonl")
    async with running_app(services) as address:
        async with connect(address, "audit-room") as client:
            await converse(client)
    events = [orjson.loads(line) for line in (tmp_path / "audit" / "events.jsonl").open("rb")]
    assert {e["v"] for e in events} == {1}
    kinds = [e["type"] for e in events]
    assert kinds[0] == "connection_opened" and kinds[-1] == "connection_closed"
    assert {"item", "turn", "mark"} <= set(kinds)
    # The last event of each item is the stored item, in the page's order.
    final: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] == "item":
            final[e["item_id"]] = e
    stored = SqliteBackend(tmp_path / "va.db").items("audit-room")
    assert [final[r.item_id]["text"] for r in stored] == [r.text for r in stored]
    assert [final[r.item_id]["item_type"] for r in stored] == [r.type for r in stored]
    assert [r.item_id for r in stored] == [item["id"] for item in shown(client)]
    assert events[-1]["billing"]["duration_s"] > 0


async def test_a_failing_sink_disturbs_neither_room_nor_store(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()  # a folder where the file should be: every append fails
    services = store_services(SqliteBackend(tmp_path / "va.db"))
    assert services.store is not None
    services.store.audit = FileSink(tmp_path / "taken")
    before = audit_errors()
    async with running_app(services) as address:
        async with connect(address, "audit-room") as client:
            await converse(client)
    assert audit_errors() > before
    stored = SqliteBackend(tmp_path / "va.db").items("audit-room")
    assert [r.item_id for r in stored] == [item["id"] for item in shown(client)]
