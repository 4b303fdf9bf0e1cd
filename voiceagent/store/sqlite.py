"""The embedded store: one SQLite file in `VOICEAGENT_DATA_DIR` (default `./data`).

WAL mode: readers (the admin API, a resume, an export) never block the writer and
the writer never blocks them. `synchronous=NORMAL` in WAL mode loses no committed
transaction on a process crash (SIGKILL), only on a power cut or an OS crash, where
the last transactions since the previous checkpoint may roll back.

The folder is created on first use (here, when the store opens at start-up).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from voiceagent.store.backend import SqlBackend

DB_FILE = "voiceagent.db"
BUSY_TIMEOUT_MS = 5000


class SqliteBackend(SqlBackend):
    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    @classmethod
    def in_dir(cls, data_dir: str | Path) -> SqliteBackend:
        return cls(Path(data_dir) / DB_FILE)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Used by one worker thread at a time, but not always the same one.
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def describe(self) -> str:
        return f"sqlite:{self.path}"
