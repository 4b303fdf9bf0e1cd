"""The SQL both databases share: migrations, batched writes, the reads of the read side.

Every method here is synchronous and blocking: the store (writer.py) calls them only
from worker threads (`trio.to_thread.run_sync`), never on the event loop.

Rules:
1. One write connection, used by one thread at a time (the writer's limiter admits
   one); reads use their own connections from a small idle pool, so a report never
   waits behind a batch. A connection that failed is closed and replaced on next use.
2. `write(batch)` is one transaction: all of the batch or none of it. Items are
   upserted by (connection_id, item_id): the last version written wins (a reply
   stored as completed, then cut by a barge-in, ends as `interrupted` with the text
   as heard), and keeps its first position.
3. The SQL is written with `?` placeholders; a backend with another style converts.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from voiceagent.store.records import (
    ConnectionClosed,
    ConnectionOpened,
    ItemFinal,
    Mark,
    Record,
    TurnMetrics,
)
from voiceagent.store.schema import MIGRATIONS, VERSION_TABLE

READ_POOL_IDLE = 2

_ITEM_COLUMNS = (
    "session_id, connection_id, seq, at, item_id, role, type, text, status, agent, name,"
    " call_id, arguments, output, error, duration_ms"
)

_INSERT_ITEM = f"""
INSERT INTO items ({_ITEM_COLUMNS}, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (connection_id, item_id) DO UPDATE SET
    updated_at = excluded.updated_at, role = excluded.role, type = excluded.type,
    text = excluded.text, status = excluded.status,
    agent = COALESCE(excluded.agent, items.agent), name = COALESCE(excluded.name, items.name),
    call_id = COALESCE(excluded.call_id, items.call_id),
    arguments = COALESCE(excluded.arguments, items.arguments),
    output = COALESCE(excluded.output, items.output),
    error = excluded.error, duration_ms = excluded.duration_ms
"""

_INSERT_CONNECTION = """
INSERT INTO connections
    (connection_id, session_id, sub, agent, model, tts, started_at, resumed_items, recording)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (connection_id) DO NOTHING
"""

# A close whose open was lost (queue overflow) still makes a row.
_CLOSE_CONNECTION = """
INSERT INTO connections
    (connection_id, session_id, agent, model, tts, started_at, ended_at, end_reason,
     close_code, final_agent, billing)
VALUES (?, ?, ?, '', '', ?, ?, ?, ?, ?, ?)
ON CONFLICT (connection_id) DO UPDATE SET
    ended_at = excluded.ended_at, end_reason = excluded.end_reason,
    close_code = excluded.close_code, final_agent = excluded.final_agent,
    billing = excluded.billing
"""


@dataclass(frozen=True, slots=True)
class LastVisit:
    """The newest connection to a room: who held it and when it was last active."""

    connection_id: str
    sub: str | None
    final_agent: str | None
    last_active: float  # its end, else its newest item, else its start (a killed server)
    ended: bool


class SqlBackend(ABC):
    #: the driver's placeholder ("?" or "%s")
    placeholder = "?"
    #: what `describe()` says (never a password)
    name = "sql"

    def __init__(self) -> None:
        self._write_conn: Any = None
        self._idle: list[Any] = []
        self._idle_lock = threading.Lock()

    # -- the driver ---------------------------------------------------------------------

    @abstractmethod
    def _connect(self) -> Any:
        """A new DB-API connection (not in autocommit mode)."""

    @abstractmethod
    def describe(self) -> str:
        """Where the data lives, for logs (never a password)."""

    def _lock_for_migration(self, cursor: Any) -> None:
        """Serialise start-up migrations across processes (PostgreSQL: an advisory lock)."""
        return None

    def _q(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    @contextmanager
    def _reading(self) -> Iterator[Any]:
        with self._idle_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
            conn.rollback()  # end the read transaction (PostgreSQL opens one)
        except BaseException:
            _close_quietly(conn)
            raise
        with self._idle_lock:
            if len(self._idle) < READ_POOL_IDLE:
                self._idle.append(conn)
                conn = None
        if conn is not None:
            _close_quietly(conn)

    def close(self) -> None:
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for conn in [*idle, self._write_conn]:
            if conn is not None:
                _close_quietly(conn)
        self._write_conn = None

    # -- migrations ----------------------------------------------------------------------

    def migrate(self) -> int:
        """Run every migration above the recorded version; returns the version now."""
        conn = self._writer()
        try:
            cursor = conn.cursor()
            self._lock_for_migration(cursor)
            cursor.execute(VERSION_TABLE)
            cursor.execute("SELECT MAX(version) FROM voiceagent_schema")
            current = cursor.fetchone()[0] or 0
            conn.commit()
            for version in range(current + 1, len(MIGRATIONS) + 1):
                self._lock_for_migration(cursor)
                for statement in MIGRATIONS[version - 1]:
                    cursor.execute(statement)
                cursor.execute(
                    self._q("INSERT INTO voiceagent_schema (version, applied_at) VALUES (?, ?)"),
                    (version, time.time()),
                )
                conn.commit()
            return max(current, len(MIGRATIONS))
        except BaseException:
            self._drop_writer()
            raise

    # -- writing ---------------------------------------------------------------------------

    def _writer(self) -> Any:
        if self._write_conn is None:
            self._write_conn = self._connect()
        return self._write_conn

    def _drop_writer(self) -> None:
        conn, self._write_conn = self._write_conn, None
        if conn is not None:
            _close_quietly(conn)

    def write(self, batch: Sequence[Record]) -> None:
        """Store `batch` in one transaction (rule 2); raises what the driver raises."""
        conn = self._writer()
        try:
            cursor = conn.cursor()
            for record in batch:
                self._write_one(cursor, record)
            conn.commit()
        except BaseException:
            self._drop_writer()  # a clean connection next time, whatever state this one is in
            raise

    def _write_one(self, cursor: Any, record: Record) -> None:
        q = self._q
        if isinstance(record, ItemFinal):
            r = record
            cursor.execute(
                q(_INSERT_ITEM),
                (
                    *(r.session_id, r.connection_id, r.seq, r.at, r.item_id, r.role, r.type),
                    *(r.text, r.status, r.agent, r.name, r.call_id, r.arguments, r.output),
                    *(r.error, r.duration_ms, r.at),
                ),
            )
        elif isinstance(record, ConnectionOpened):
            r2 = record
            cursor.execute(
                q(_INSERT_CONNECTION),
                (
                    *(r2.connection_id, r2.session_id, r2.sub, r2.agent, r2.model, r2.tts),
                    *(r2.started_at, r2.resumed_items, r2.recording),
                ),
            )
        elif isinstance(record, ConnectionClosed):
            r3 = record
            cursor.execute(
                q(_CLOSE_CONNECTION),
                (
                    *(r3.connection_id, r3.session_id, r3.agent, r3.ended_at, r3.ended_at),
                    *(r3.end_reason, r3.close_code, r3.agent, _json(r3.billing)),
                ),
            )
        elif isinstance(record, TurnMetrics):
            cursor.execute(
                q("INSERT INTO turns (session_id, connection_id, at, metrics) VALUES (?, ?, ?, ?)"),
                (record.session_id, record.connection_id, record.at, _json(record.metrics)),
            )
        elif isinstance(record, Mark):
            cursor.execute(
                q(
                    "INSERT INTO marks (session_id, connection_id, at, kind, detail)"
                    " VALUES (?, ?, ?, ?, ?)"
                ),
                (
                    *(record.session_id, record.connection_id, record.at, record.kind),
                    _json(record.detail),
                ),
            )

    # -- reading ---------------------------------------------------------------------------

    def last_visit(self, session_id: str) -> LastVisit | None:
        return self.last_visits([session_id])[0]

    def last_visits(self, session_ids: Sequence[str]) -> list[LastVisit | None]:
        """Each room's newest connection, in the order asked, on one connection."""
        with self._reading() as conn:
            cursor = conn.cursor()
            return [self._last_visit(cursor, session_id) for session_id in session_ids]

    def _last_visit(self, cursor: Any, session_id: str) -> LastVisit | None:
        cursor.execute(
            self._q(
                "SELECT c.connection_id, c.sub, c.final_agent, c.started_at, c.ended_at,"
                " (SELECT MAX(i.updated_at) FROM items i"
                "  WHERE i.connection_id = c.connection_id)"
                " FROM connections c WHERE c.session_id = ?"
                " ORDER BY c.started_at DESC LIMIT 1"
            ),
            (session_id,),
        )
        row = cursor.fetchone()
        if row is None:
            return None
        connection_id, sub, final_agent, started_at, ended_at, newest_item = row
        last = ended_at if ended_at is not None else max(started_at, newest_item or 0.0)
        return LastVisit(connection_id, sub, final_agent, last, ended_at is not None)

    def items(self, session_id: str, newest: int | None = None) -> list[ItemFinal]:
        """The room's items in conversation order (connection by connection); with
        `newest`, only that many of the latest (a resume reads no more than it shows)."""
        return self.items_of([(session_id, newest)])[0]

    def items_of(self, rooms: Sequence[tuple[str, int | None]]) -> list[list[ItemFinal]]:
        """`items(session_id, newest)` of each (session_id, newest), in the order asked,
        on one connection."""
        with self._reading() as conn:
            cursor = conn.cursor()
            return [self._items(cursor, session_id, newest) for session_id, newest in rooms]

    def _items(self, cursor: Any, session_id: str, newest: int | None) -> list[ItemFinal]:
        order = "COALESCE(c.started_at, i.at), i.seq"
        if newest is not None:
            order = "COALESCE(c.started_at, i.at) DESC, i.seq DESC LIMIT ?"
        cursor.execute(
            self._q(
                f"SELECT {', '.join('i.' + c.strip() for c in _ITEM_COLUMNS.split(','))}"
                " FROM items i LEFT JOIN connections c ON c.connection_id = i.connection_id"
                f" WHERE i.session_id = ? ORDER BY {order}"
            ),
            (session_id,) if newest is None else (session_id, newest),
        )
        rows = cursor.fetchall()
        if newest is not None:
            rows.reverse()
        return [ItemFinal(*row) for row in rows]

    def rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        """A read query's rows as dicts (report.py builds reports from them)."""
        with self._reading() as conn:
            cursor = conn.cursor()
            cursor.execute(self._q(sql), tuple(params))
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:
        pass
