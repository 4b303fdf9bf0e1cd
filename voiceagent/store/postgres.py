"""The shared store: PostgreSQL at `VOICEAGENT_DATABASE_URL=postgresql://...`.

Driver: psycopg 3 in its synchronous form, called from worker threads
(`trio.to_thread.run_sync`) behind the store's small limiter. Why not an async driver:
psycopg's async API and asyncpg run on asyncio only; under Trio they would need an
asyncio loop in another thread anyway. The store does one batched transaction at a
time, off the realtime path, so a thread per call costs nothing that matters (a batch
of 50 items is one round trip per statement, ~1-3 ms on a local server), and the
sync driver is the most tested one. Install it with the `postgres` extra.

Several processes (and hosts) may share one database: start-up migrations take a
transaction-level advisory lock, so only one runs them.
"""

from __future__ import annotations

from typing import Any

from voiceagent.redact import redact_url
from voiceagent.store.backend import SqlBackend

CONNECT_TIMEOUT_S = 5
MIGRATION_LOCK = 0x766F_6963  # any constant shared by every instance ("voic")


class PostgresBackend(SqlBackend):
    placeholder = "%s"
    name = "postgresql"

    def __init__(self, url: str) -> None:
        super().__init__()
        try:
            import psycopg
        except ImportError as exc:
            raise RuntimeError(
                "VOICEAGENT_DATABASE_URL names PostgreSQL but psycopg is not installed:"
                ' pip install "voiceagent[postgres]"'
            ) from exc
        self._psycopg = psycopg
        self.url = url

    def _connect(self) -> Any:
        return self._psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S)

    def _lock_for_migration(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))

    def describe(self) -> str:
        return redact_url(self.url)
