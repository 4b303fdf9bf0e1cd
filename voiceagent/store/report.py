"""The read side: a room's report, the list of rooms, the export (synchronous SQL).

A room is addressed by its `session_id` (the id in `/ws/{session_id}`); its report
covers every connection it had. The report's shape is docs/session-report.schema.json;
`voiceagent sessions export` writes one report per line (JSON lines). Called from
worker threads (writer.py `Store.read`) or from the command line, never on the loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from voiceagent.store.backend import SqlBackend
from voiceagent.store.journal import USAGE_KINDS

REPORT_VERSION = 1
LIST_LIMIT_MAX = 1000


def session_report(backend: SqlBackend, session_id: str) -> dict[str, Any] | None:
    """The room's report, or None when the store has never seen it."""
    connections = backend.rows(
        "SELECT * FROM connections WHERE session_id = ? ORDER BY started_at", [session_id]
    )
    if not connections:
        return None
    items = [_item(record) for record in backend.items(session_id)]
    turns = backend.rows(
        "SELECT connection_id, at, metrics FROM turns WHERE session_id = ? ORDER BY at",
        [session_id],
    )
    marks = backend.rows(
        "SELECT connection_id, at, kind, detail FROM marks WHERE session_id = ? ORDER BY at",
        [session_id],
    )
    usage = dict.fromkeys(USAGE_KINDS, 0)
    cost = 0.0
    shaped = []
    for row in connections:
        billing = orjson.loads(row["billing"]) if row["billing"] else None
        if billing is not None:
            cost += billing.get("cost_usd") or 0.0
            model = next((p for p in billing["providers"] if p["kind"] == "model"), {})
            for kind in USAGE_KINDS:
                usage[kind] += model.get(kind, 0)
        shaped.append({**row, "billing": billing})
    timeline = _timeline(shaped, items, marks)
    ended = [c["ended_at"] for c in shaped]
    return {
        "version": REPORT_VERSION,
        "session_id": session_id,
        "sub": shaped[-1]["sub"],
        "started_at": shaped[0]["started_at"],
        "ended_at": None if None in ended else max(ended),
        "connections": [_connection(c) for c in shaped],
        "items": items,
        "turns": [
            {"connection_id": t["connection_id"], "at": t["at"], **orjson.loads(t["metrics"])}
            for t in turns
        ],
        "timeline": timeline,
        "usage": usage,
        "cost_usd": round(cost, 8),
    }


def list_sessions(
    backend: SqlBackend, *, since: float | None = None, sub: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Rooms with a connection that started at or after `since` (newest first)."""
    where, params = _filters(since, sub)
    rows = backend.rows(
        "SELECT session_id, MIN(started_at) AS started_at, MAX(started_at) AS last_started_at,"
        " COUNT(*) AS connections, MAX(sub) AS sub"
        f" FROM connections {where} GROUP BY session_id"
        " ORDER BY MAX(started_at) DESC LIMIT ?",
        [*params, max(1, min(limit, LIST_LIMIT_MAX))],
    )
    return rows


def export_reports(backend: SqlBackend, *, since: float | None = None) -> Iterator[dict[str, Any]]:
    """Every room's report, oldest first (all rooms when `since` is None)."""
    where, params = _filters(since, None)
    ids = backend.rows(
        f"SELECT session_id FROM connections {where} GROUP BY session_id ORDER BY MIN(started_at)",
        params,
    )
    for row in ids:
        report = session_report(backend, row["session_id"])
        if report is not None:
            yield report


def _filters(since: float | None, sub: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("started_at >= ?")
        params.append(since)
    if sub is not None:
        clauses.append("sub = ?")
        params.append(sub)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def _connection(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "connection_id",
        "sub",
        "agent",
        "final_agent",
        "model",
        "tts",
        "started_at",
        "ended_at",
        "end_reason",
        "close_code",
        "resumed_items",
        "recording",
        "billing",
    )
    return {key: row[key] for key in keys}


def _item(record: Any) -> dict[str, Any]:
    return {
        "id": record.item_id,
        "connection_id": record.connection_id,
        "at": record.at,
        "role": record.role,
        "type": record.type,
        "text": record.text,
        "status": record.status,
        "agent": record.agent,
        "name": record.name,
        "call_id": record.call_id,
        "arguments": record.arguments,
        "output": record.output,
        "error": record.error,
        "duration_ms": record.duration_ms,
    }


def _timeline(
    connections: list[dict[str, Any]], items: list[dict[str, Any]], marks: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Connections opening and closing, handoffs, barge-ins, guardrail trips, by time."""
    events: list[dict[str, Any]] = []
    for c in connections:
        cid = c["connection_id"]
        events.append({"at": c["started_at"], "connection_id": cid, "kind": "connected"})
        if c["ended_at"] is not None:
            detail = {"close_code": c["close_code"], "reason": c["end_reason"]}
            events.append(
                {"at": c["ended_at"], "connection_id": cid, "kind": "closed", "detail": detail}
            )
    for item in items:
        if item["type"] == "handoff":
            events.append(
                {
                    "at": item["at"],
                    "connection_id": item["connection_id"],
                    "kind": "handoff",
                    "detail": {"text": item["text"], "agent": item["agent"]},
                }
            )
    for mark in marks:
        events.append(
            {
                "at": mark["at"],
                "connection_id": mark["connection_id"],
                "kind": mark["kind"],
                "detail": orjson.loads(mark["detail"]),
            }
        )
    events.sort(key=lambda e: e["at"])
    return events
