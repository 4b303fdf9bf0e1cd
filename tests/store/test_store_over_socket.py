"""A conversation over a real socket is stored exactly as the page showed it."""

from __future__ import annotations

from typing import Any

import orjson

from tests.conftest import connect, running_app
from tests.store.conftest import backend_for
from tests.store.conversation import LONG_REPLY, converse, shown, store_services


def as_shown(record: Any) -> dict[str, Any]:
    """A stored item in the page's item shape (ConversationItem.as_event_item)."""
    return record.conversation_item().as_event_item()


async def test_conversation_is_stored_exactly(database: dict[str, str]) -> None:
    services = store_services(backend_for(database))
    async with running_app(services) as address:
        async with connect(address, "store-room") as client:
            interrupted = await converse(client)
        page = shown(client)
    # running_app has stopped: the store wrote everything on the way out.
    backend = backend_for(database)
    stored = backend.items("store-room")
    assert [as_shown(r) for r in stored] == page
    kinds = [(r.role, r.type, r.status) for r in stored]
    assert ("assistant", "function_call", "completed") in kinds
    assert ("tool", "function_call_output", "completed") in kinds
    assert ("assistant", "handoff", "completed") in kinds
    cut = stored[-1]
    assert (cut.role, cut.status, cut.agent) == ("assistant", "interrupted", "Specialist")
    # The text as heard: 700 ms of a reply voiced at 300 ms a word, not the whole reply.
    assert cut.text and LONG_REPLY.startswith(cut.text) and len(cut.text) < len(LONG_REPLY)
    output = next(r for r in stored if r.type == "function_call_output")
    assert output.output == "order A12 ships tomorrow" and output.error is None
    assert output.duration_ms is not None and output.duration_ms >= 0
    call = next(r for r in stored if r.type == "function_call")
    assert orjson.loads(call.arguments or "") == {"order_id": "A12"}

    connections = backend.rows("SELECT * FROM connections WHERE session_id = ?", ["store-room"])
    assert len(connections) == 1
    row = connections[0]
    assert row["ended_at"] >= row["started_at"] and row["close_code"] == 1000
    assert row["final_agent"] == "Specialist" and row["model"] == "scripted"
    billing = orjson.loads(row["billing"])
    assert billing["duration_s"] > 0
    marks = backend.rows("SELECT kind, detail FROM marks WHERE session_id = ?", ["store-room"])
    barge = [orjson.loads(m["detail"]) for m in marks if m["kind"] == "barge_in"]
    assert barge and barge[0]["response_id"] == interrupted["response_id"]
    turns = backend.rows("SELECT metrics FROM turns WHERE session_id = ?", ["store-room"])
    assert [orjson.loads(t["metrics"]) for t in turns] == [
        {k: v for k, v in m.items() if k != "type"} for m in client.of_type("metrics")
    ]
