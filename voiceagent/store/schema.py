"""The store's tables, as numbered migrations run at start-up (SQLite and PostgreSQL).

Rules:
1. `MIGRATIONS[n - 1]` takes the schema from version n - 1 to n. A released migration
   is never edited; a change is a new one appended to the list.
2. `voiceagent_schema` records each applied version. At start-up every version above
   the highest recorded one runs, each in its own transaction with its version row,
   so a failed migration leaves the previous version intact.
3. The SQL is the subset both databases accept (`DOUBLE PRECISION`, `TEXT`,
   `INTEGER`, `ON CONFLICT ... DO UPDATE`); times are Unix seconds (float).

Tables (docs/store.md):
    connections  one row per WebSocket connection to a room (`session_id`); the room's
                 report lists them all; `billing` is the billing record (JSON text)
    items        conversation items, final form, one row per (connection_id, item_id):
                 model item ids are unique in one connection only
    turns        one row per turn's `metrics` event (JSON text)
    marks        the timeline: barge-ins, guardrail trips (JSON detail)
"""

from __future__ import annotations

VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS voiceagent_schema (
    version INTEGER PRIMARY KEY,
    applied_at DOUBLE PRECISION NOT NULL
)
"""

MIGRATIONS: list[list[str]] = [
    # 1: connections, items, turns, marks.
    [
        """
        CREATE TABLE connections (
            connection_id TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            sub TEXT,
            agent TEXT NOT NULL,
            final_agent TEXT,
            model TEXT NOT NULL,
            tts TEXT NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            ended_at DOUBLE PRECISION,
            end_reason TEXT,
            close_code INTEGER,
            resumed_items INTEGER NOT NULL DEFAULT 0,
            billing TEXT
        )
        """,
        "CREATE INDEX connections_by_session ON connections (session_id, started_at)",
        "CREATE INDEX connections_by_start ON connections (started_at)",
        "CREATE INDEX connections_by_sub ON connections (sub, started_at)",
        """
        CREATE TABLE items (
            session_id TEXT NOT NULL,
            item_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            role TEXT NOT NULL,
            type TEXT NOT NULL,
            text TEXT NOT NULL,
            status TEXT NOT NULL,
            agent TEXT,
            name TEXT,
            call_id TEXT,
            arguments TEXT,
            output TEXT,
            error TEXT,
            duration_ms DOUBLE PRECISION,
            PRIMARY KEY (connection_id, item_id)
        )
        """,
        "CREATE INDEX items_by_session ON items (session_id, at)",
        """
        CREATE TABLE turns (
            session_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            metrics TEXT NOT NULL
        )
        """,
        "CREATE INDEX turns_by_session ON turns (session_id, at)",
        """
        CREATE TABLE marks (
            session_id TEXT NOT NULL,
            connection_id TEXT NOT NULL,
            at DOUBLE PRECISION NOT NULL,
            kind TEXT NOT NULL,
            detail TEXT NOT NULL
        )
        """,
        "CREATE INDEX marks_by_session ON marks (session_id, at)",
    ],
    # 2: where the connection's recording is (VOICEAGENT_RECORD=1).
    ["ALTER TABLE connections ADD COLUMN recording TEXT"],
]


def latest_version() -> int:
    return len(MIGRATIONS)
