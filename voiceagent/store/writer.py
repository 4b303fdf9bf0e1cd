"""The store: a bounded channel from every room to one writer task per process.

Rules:
1. Rooms never wait for the database. `put()` is `send_nowait` on a bounded memory
   channel (`VOICEAGENT_STORE_QUEUE` records); when it is full the record is dropped,
   counted (`voiceagent_store_records_total{outcome="dropped_full"}`) and logged
   (the first drop, then every 1000th), and the room carries on.
2. One writer task (`run()`, in the app's background nursery) drains the channel:
   after the first record of a batch it gathers more for at most
   `VOICEAGENT_STORE_FLUSH_MS` (or up to `BATCH_MAX` records), then writes the batch
   in one transaction in a worker thread (`trio.to_thread.run_sync`, one at a time).
   A record is therefore committed at most FLUSH_MS plus one write after it was put:
   that is what a SIGKILL can lose (docs/store.md).
3. A database that is down, slow or full never takes a room down: the writer keeps
   its batch and retries with a growing pause (0.2 s doubling to 5 s), records wait
   in the channel meanwhile, and overflow is rule 1. A batch the database refuses
   for good (not an operational error) is retried record by record and the refused
   ones are dropped, counted and logged, so one bad record never blocks the rest.
4. Start-up migrations run in the writer task before its first batch; a database
   that is down at start-up is retried the same way, and the server serves meanwhile.
5. `aclose()` (after serving, SIGTERM included) closes the channel and waits, within
   a bound, until the writer has written everything queued: nothing put before it
   is lost unless the database stays down for the whole bound.
6. Reads (reports, a resume) run in worker threads too, with their own limiter and
   connections, so they never wait behind a batch. A resume's two reads (last visit,
   items) are batched across rooms (`read_batches.py`): a reconnect burst costs one
   thread round trip per batch of rooms, not one per room.

Cancellation: cancelling `run()` abandons the batch in hand (the thread finishes its
transaction on its own; Trio does not wait for it); `aclose()` is the way to stop
without losing records.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import trio
from prometheus_client import Counter, Gauge, Histogram

from voiceagent.logs import log_event
from voiceagent.metrics import REGISTRY
from voiceagent.store.backend import LastVisit, SqlBackend
from voiceagent.store.read_batches import BatchedReads
from voiceagent.store.records import ItemFinal, Record

log = logging.getLogger("voiceagent.store")

T = TypeVar("T")

BATCH_MAX = 500
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
LOG_DROP_EVERY = 1000
READ_THREADS = 2

RECORDS = Counter(
    "voiceagent_store_records",
    "Records for the conversation store by outcome: written, dropped_full (queue full),"
    " dropped_refused (refused by the database)",
    ["outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "voiceagent_store_queue_depth", "Records waiting for the store's writer", registry=REGISTRY
)
WRITE_SECONDS = Histogram(
    "voiceagent_store_write_seconds",
    "One batch written to the store (one transaction)",
    registry=REGISTRY,
)
WRITE_ERRORS = Counter(
    "voiceagent_store_write_errors", "Failed store writes (retried)", registry=REGISTRY
)
_WRITTEN = RECORDS.labels("written")
_DROPPED_FULL = RECORDS.labels("dropped_full")
_DROPPED_REFUSED = RECORDS.labels("dropped_refused")


class AuditSink:
    """Where stored records are published after they are written (audit.py).

    `serve()` runs in the writer task's nursery for as long as the writer (a sink that
    needs a connection or a sender task owns it there); `aclose()` sends what the sink
    still holds, within its own bound, and may be called more than once."""

    async def publish(self, batch: Sequence[Record]) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()

    async def aclose(self) -> None:
        return None


class Store:
    def __init__(
        self,
        backend: SqlBackend,
        *,
        capacity: int = 10_000,
        flush_ms: int = 200,
        audit: AuditSink | None = None,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.backend = backend
        self.flush_s = flush_ms / 1000
        self.audit = audit
        self._transient = transient or _transient_errors()
        self._tx, self._rx = trio.open_memory_channel[Record](capacity)
        self._write_limiter = trio.CapacityLimiter(1)
        self._read_limiter = trio.CapacityLimiter(READ_THREADS)
        self._visits: BatchedReads[str, LastVisit | None] = BatchedReads(self._fetch_visits)
        self._items: BatchedReads[tuple[str, int | None], list[ItemFinal]] = BatchedReads(
            self._fetch_items
        )
        self.put_count = 0  # records accepted by put()
        # Room -> the put_count of its newest queued record, oldest first; entries leave
        # once written, so this holds only rooms with records still in the queue.
        self._queued_rooms: OrderedDict[str, int] = OrderedDict()
        self.done_count = 0  # records written or given up on by the writer
        self.dropped = 0  # rule 1
        self.migrated = trio.Event()
        self.finished = trio.Event()
        self._progress = trio.Event()
        self._closing = False

    # -- the rooms' side (rule 1) -------------------------------------------------------

    def put(self, record: Record) -> bool:
        if self._closing:
            return False
        try:
            self._tx.send_nowait(record)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.dropped += 1
            _DROPPED_FULL.inc()
            if self.dropped % LOG_DROP_EVERY == 1:
                log_event(
                    log, "store_queue_full", level=logging.WARNING, dropped_total=self.dropped
                )
            return False
        self.put_count += 1
        queued = self._queued_rooms
        queued[record.session_id] = self.put_count
        queued.move_to_end(record.session_id)
        return True

    def depth(self) -> int:
        return self._rx.statistics().current_buffer_used

    # -- the writer (rules 2-5) -------------------------------------------------------------

    async def run(self) -> None:
        """The writer task: migrate, then write batches until `aclose()`; the audit
        sink serves alongside and is closed (its last events sent) before it ends."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._visits.serve)
                nursery.start_soon(self._items.serve)
                if self.audit is not None:
                    await nursery.start(self.audit.serve)
                await self._retrying(self.backend.migrate, "store_migrate_failed")
                self.migrated.set()
                log_event(log, "store_ready", backend=self.backend.describe())
                await self._drain()
                if self.audit is not None:
                    await self.audit.aclose()
                nursery.cancel_scope.cancel()
        finally:
            self.finished.set()

    async def _drain(self) -> None:
        rx = self._rx
        while True:
            try:
                batch = [await rx.receive()]
            except trio.EndOfChannel:
                return
            with trio.move_on_after(self.flush_s):
                while len(batch) < BATCH_MAX:
                    try:
                        batch.append(await rx.receive())
                    except trio.EndOfChannel:
                        break
            QUEUE_DEPTH.set(self.depth())
            await self._write(batch)

    async def _write(self, batch: list[Record]) -> None:
        backend = self.backend
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._in_thread(backend.write, batch, limiter=self._write_limiter)
            except self._transient as exc:
                failures += 1
                WRITE_ERRORS.inc()
                pause = _pause(failures)
                if failures == 1 or failures % 10 == 0:
                    log_event(
                        log,
                        "store_write_failed",
                        level=logging.WARNING,
                        error=repr(exc),
                        records=len(batch),
                        queued=self.depth(),
                        retry_s=pause,
                    )
                await trio.sleep(pause)
                continue
            except Exception as exc:
                WRITE_ERRORS.inc()
                log_event(log, "store_batch_refused", level=logging.ERROR, error=repr(exc))
                await self._write_one_by_one(batch)
                return
            WRITE_SECONDS.observe(time.monotonic() - started)
            _WRITTEN.inc(len(batch))
            if failures:
                log_event(log, "store_write_recovered", attempts=failures + 1)
            self._done(len(batch))
            if self.audit is not None:
                await self.audit.publish(batch)
            return

    async def _write_one_by_one(self, batch: list[Record]) -> None:
        written: list[Record] = []
        for record in batch:
            try:
                await self._in_thread(self.backend.write, [record], limiter=self._write_limiter)
            except Exception as exc:
                _DROPPED_REFUSED.inc()
                log_event(
                    log,
                    "store_record_refused",
                    level=logging.ERROR,
                    record=type(record).__name__,
                    session_id=getattr(record, "session_id", None),
                    error=repr(exc),
                )
            else:
                _WRITTEN.inc()
                written.append(record)
        self._done(len(batch))
        if self.audit is not None and written:
            await self.audit.publish(written)

    def _done(self, count: int) -> None:
        self.done_count += count
        queued = self._queued_rooms
        while queued and next(iter(queued.values())) <= self.done_count:
            queued.popitem(last=False)
        self._progress.set()
        self._progress = trio.Event()

    async def _retrying(self, call: Callable[[], T], event_name: str) -> T:
        failures = 0
        while True:
            try:
                return await self._in_thread(call, limiter=self._write_limiter)
            except Exception as exc:
                failures += 1
                if failures == 1 or failures % 10 == 0:
                    log_event(log, event_name, level=logging.ERROR, error=repr(exc))
                await trio.sleep(_pause(failures))

    async def flush(self, timeout_s: float) -> bool:
        """Wait until everything put so far is written; False on timeout."""
        target = self.put_count
        with trio.move_on_after(timeout_s):
            while self.done_count < target:
                await self._progress.wait()
            return True
        return False

    async def flush_room(self, session_id: str, timeout_s: float) -> bool:
        """Wait until the records of `session_id` put so far are written (at once when
        it has none queued: a new room's handshake never waits for other rooms' writes);
        False on timeout."""
        target = self._queued_rooms.get(session_id)
        if target is None:
            return True
        with trio.move_on_after(timeout_s):
            while self.done_count < target:
                await self._progress.wait()
            return True
        return False

    async def aclose(self, timeout_s: float) -> bool:
        """Rule 5: stop taking records, write what is queued; True when all was written."""
        self._closing = True
        queued = self.put_count - self.done_count
        await self._tx.aclose()
        with trio.move_on_after(timeout_s):
            await self.finished.wait()
        complete = self.done_count >= self.put_count
        log_event(
            log,
            "store_closed",
            level=logging.INFO if complete else logging.ERROR,
            flushed=queued,
            lost=self.put_count - self.done_count,
        )
        if self.audit is not None:
            await self.audit.aclose()
        await trio.to_thread.run_sync(self.backend.close)
        return complete

    # -- reads (rule 6) ------------------------------------------------------------------------

    async def _in_thread(
        self, call: Callable[..., T], *args: Any, limiter: trio.CapacityLimiter
    ) -> T:
        return await trio.to_thread.run_sync(call, *args, limiter=limiter, abandon_on_cancel=True)

    async def read(self, call: Callable[..., T], *args: Any) -> T:
        """Run a backend read in a worker thread."""
        return await self._in_thread(call, *args, limiter=self._read_limiter)

    async def last_visit(self, session_id: str) -> LastVisit | None:
        """The room's newest connection (batched with other rooms' lookups: rule 6)."""
        return await self._visits.get(session_id)

    async def items(self, session_id: str, newest: int | None = None) -> list[ItemFinal]:
        """The room's items, as `SqlBackend.items` (batched: rule 6)."""
        return await self._items.get((session_id, newest))

    async def _fetch_visits(self, session_ids: list[str]) -> list[LastVisit | None]:
        return await self.read(self.backend.last_visits, session_ids)

    async def _fetch_items(self, rooms: list[tuple[str, int | None]]) -> list[list[ItemFinal]]:
        return await self.read(self.backend.items_of, rooms)


def _pause(failures: int) -> float:
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(failures - 1, 8))


def _transient_errors() -> tuple[type[BaseException], ...]:
    """Errors worth retrying: the database is down, locked, full or unreachable."""
    import sqlite3

    errors: list[type[BaseException]] = [sqlite3.OperationalError, OSError]
    try:
        import psycopg
    except ImportError:
        pass
    else:
        errors += [psycopg.OperationalError, psycopg.errors.DiskFull]
    return tuple(errors)
