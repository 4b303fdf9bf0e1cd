"""The audit and analytics stream: every stored record, published as a JSON event.

Sinks: none (the default), a JSON-lines file (`VOICEAGENT_AUDIT_FILE`; one event
per line, appended, the folder created on first use) and a Redis stream
(`VOICEAGENT_AUDIT_STREAM`, audit_stream.py); both at once through `Sinks`. The event
schema and consumer examples are in docs/store.md ("Audit stream").

Rules:
1. Out of band: the writer (writer.py) publishes a batch after the store committed
   it, so an event is never about something the store does not hold. Delivery is at
   most once: a process killed between the commit and the append loses those events
   from the stream (never from the store).
2. A sink that fails (disk full, no permission) logs the error (the first, then every
   100th), counts it in `voiceagent_audit_errors_total` and drops that batch's events;
   it never stops the store and never reaches a room.
3. The file is written from a worker thread, one append at a time, and flushed after
   each batch (not fsynced: the store is the durable copy).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import orjson
import trio
from prometheus_client import Counter

from voiceagent.logs import log_event
from voiceagent.metrics import REGISTRY
from voiceagent.store.records import Record
from voiceagent.store.writer import AuditSink

log = logging.getLogger("voiceagent.store")

EVENT_VERSION = 1
LOG_ERROR_EVERY = 100

AUDIT_ERRORS = Counter(
    "voiceagent_audit_errors",
    "Audit stream batches a sink failed to publish (their events are dropped)",
    registry=REGISTRY,
)


def event_json(record: Record) -> bytes:
    """One event: the record's event form plus the schema version `v`, as JSON."""
    return orjson.dumps({"v": EVENT_VERSION, **record.as_event()})


def audit_event(record: Record) -> bytes:
    """One line of the file: the event and a newline."""
    return event_json(record) + b"\n"


class Sinks(AuditSink):
    """Several sinks at once, in order; each one's failures stay its own (rule 2)."""

    def __init__(self, sinks: Sequence[AuditSink]) -> None:
        self.sinks = list(sinks)

    async def publish(self, batch: Sequence[Record]) -> None:
        for sink in self.sinks:
            await sink.publish(batch)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            for sink in self.sinks:
                await nursery.start(sink.serve)
            task_status.started()

    async def aclose(self) -> None:
        for sink in self.sinks:
            await sink.aclose()


class FileSink(AuditSink):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None
        self._limiter = trio.CapacityLimiter(1)
        self.errors = 0

    async def publish(self, batch: Sequence[Record]) -> None:
        data = b"".join(audit_event(record) for record in batch)
        try:
            await trio.to_thread.run_sync(self._append, data, limiter=self._limiter)
        except OSError as exc:
            self.errors += 1
            AUDIT_ERRORS.inc()
            if self.errors % LOG_ERROR_EVERY == 1:
                log_event(
                    log,
                    "audit_write_failed",
                    level=logging.ERROR,
                    path=str(self.path),
                    error=repr(exc),
                    failures=self.errors,
                )
            self._close()  # reopen next time: the file may be back

    def _append(self, data: bytes) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        self._file.write(data)
        self._file.flush()

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError:
                pass

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._close, limiter=self._limiter)
