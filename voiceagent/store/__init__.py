"""The conversation store: sessions, items, turn metrics, usage and cost, kept.

    records.py   what a room hands the store (one immutable record per fact)
    journal.py   a room's door to the store: synchronous, never waits (session side)
    writer.py    the bounded channel and the one writer task per process
    schema.py    versioned migrations, run at start-up
    backend.py   the SQL both databases share; sqlite.py and postgres.py
    report.py    the read side: a room's report, the list, the export
    audit.py     the audit stream: stored records published as JSON events
    audit_stream.py  its Redis Streams sink (XADD ... MAXLEN ~)

Nothing here runs between a frame arriving and a frame leaving: a room only puts
records on a memory channel (docs/store.md).
"""

from __future__ import annotations

from pathlib import Path

from voiceagent.config import ConfigError, Settings
from voiceagent.store.backend import SqlBackend
from voiceagent.store.writer import AuditSink, Store

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
    return Store(
        backend,
        capacity=settings.store_queue,
        flush_ms=settings.store_flush_ms,
        audit=open_audit(settings),
    )


def open_audit(settings: Settings) -> AuditSink | None:
    """The audit sinks the settings ask for: the file, the Redis stream, both or none."""
    sinks: list[AuditSink] = []
    if settings.audit_file:
        from voiceagent.store.audit import FileSink

        sinks.append(FileSink(settings.audit_file))
    if settings.audit_stream and settings.redis_url:
        from voiceagent.store.audit_stream import StreamSink

        sinks.append(
            StreamSink(
                settings.redis_url,
                settings.audit_stream,
                maxlen=settings.audit_stream_maxlen,
                timeout_s=settings.redis_timeout_s,
            )
        )
    if len(sinks) > 1:
        from voiceagent.store.audit import Sinks

        return Sinks(sinks)
    return sinks[0] if sinks else None
