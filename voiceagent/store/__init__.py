"""The conversation store: sessions, items, turn metrics, usage and cost, kept.

    records.py   what a room hands the store (one immutable record per fact)
    journal.py   a room's door to the store: synchronous, never waits (session side)
    writer.py    the bounded channel and the one writer task per process
    schema.py    versioned migrations, run at start-up
    backend.py   the SQL both databases share; sqlite.py and postgres.py
    report.py    the read side: a room's report, the list, the export
    audit.py     the audit stream: stored records published as JSON events

Nothing here runs between a frame arriving and a frame leaving: a room only puts
records on a memory channel (docs/store.md).
"""

from __future__ import annotations

from pathlib import Path

from voiceagent.config import ConfigError, Settings
from voiceagent.store.backend import SqlBackend
from voiceagent.store.writer import Store

__all__ = ["Store", "open_store"]


def open_store(settings: Settings) -> Store | None:
    """The store the settings ask for (None when `VOICEAGENT_STORE=0`). Connects lazily:
    the writer task migrates and connects when the app starts serving."""
    if not settings.store:
        return None
    if settings.database_url:
        from voiceagent.store.postgres import PostgresBackend

        try:
            backend: SqlBackend = PostgresBackend(settings.database_url)
        except RuntimeError as exc:
            raise ConfigError(f"VOICEAGENT_DATABASE_URL: {exc}") from None
    else:
        from voiceagent.store.sqlite import SqliteBackend

        backend = SqliteBackend.in_dir(Path(settings.data_dir))
    audit = None
    if settings.audit_file:
        from voiceagent.store.audit import FileSink

        audit = FileSink(settings.audit_file)
    return Store(
        backend,
        capacity=settings.store_queue,
        flush_ms=settings.store_flush_ms,
        audit=audit,
    )
