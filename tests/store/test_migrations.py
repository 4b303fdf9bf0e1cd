"""Versioned migrations: a database made by an older release is brought up to date."""

from __future__ import annotations

import time

from tests.store.conftest import backend_for
from voiceagent.store.schema import MIGRATIONS, VERSION_TABLE, latest_version


def test_an_older_schema_is_migrated_once(database: dict[str, str]) -> None:
    backend = backend_for(database)
    # The schema as version 1 left it, with a row in it.
    conn = backend._writer()
    cursor = conn.cursor()
    cursor.execute(VERSION_TABLE)
    for statement in MIGRATIONS[0]:
        cursor.execute(statement)
    cursor.execute(
        backend._q("INSERT INTO voiceagent_schema (version, applied_at) VALUES (?, ?)"),
        (1, time.time()),
    )
    cursor.execute(
        backend._q(
            "INSERT INTO connections (connection_id, session_id, agent, model, tts, started_at)"
            " VALUES (?, ?, ?, ?, ?, ?)"
        ),
        ("c1", "old-room", "Front Desk", "offline", "offline", time.time()),
    )
    conn.commit()
    assert backend.migrate() == latest_version() >= 2
    assert backend.migrate() == latest_version()  # nothing left to do
    rows = backend.rows("SELECT session_id, recording FROM connections", [])
    assert rows == [{"session_id": "old-room", "recording": None}]
    versions = backend.rows("SELECT version FROM voiceagent_schema ORDER BY version", [])
    assert [row["version"] for row in versions] == list(range(1, latest_version() + 1))
    backend.close()
