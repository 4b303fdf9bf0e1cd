"""The audit stream's Redis sink: every stored record `XADD`ed to a Redis stream.

With `VOICEAGENT_AUDIT_STREAM=<key>` (and `VOICEAGENT_REDIS_URL`), each event of
audit.py (the same JSON as a line of the file) becomes one stream entry with one
field, `event`, added with `MAXLEN ~ VOICEAGENT_AUDIT_STREAM_MAXLEN` so the stream
keeps about that many of the newest events.

Rules:
1. Out of band, from the writer only: `publish()` (called by the writer after the
   store committed a batch) never waits on Redis; it hands the batch's events to a
   bounded channel (QUEUE_BATCHES batches) and a sender task in `serve()` sends each
   batch as one pipeline of XADDs (one round trip). A full channel drops the batch.
2. Best effort, at most once, never retried: a batch Redis refuses, or that takes
   longer than `VOICEAGENT_REDIS_TIMEOUT_S`, is dropped; after a failure Redis counts
   as down and batches are dropped without a call for a pause (0.1 s doubling to 5 s),
   so a Redis that is down costs neither the writer nor the sender a timeout per
   batch. Every dropped batch counts in `voiceagent_audit_errors_total` and its
   events in `voiceagent_audit_events_dropped_total`; the failure is logged
   (`audit_stream_failed`: the first, then every 100th) and so is the recovery.
   The store and the rooms never see any of it.
3. coredis retries nothing here (`NoRetryPolicy`), like the shared registry's link.

Cancellation: cancelling `serve()` closes the connection and abandons what is queued.
`aclose()` stops taking batches and waits (at most CLOSE_WITHIN_S) until the sender
has sent or dropped what is queued.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trio
from prometheus_client import Counter

from voiceagent.logs import log_event
from voiceagent.metrics import REGISTRY
from voiceagent.redact import redact_url
from voiceagent.store.audit import AUDIT_ERRORS, LOG_ERROR_EVERY, event_json
from voiceagent.store.records import Record
from voiceagent.store.writer import AuditSink

log = logging.getLogger("voiceagent.store")

QUEUE_BATCHES = 100  # writer batches (up to 500 records each) waiting for Redis
PAUSE_FIRST_S = 0.1
PAUSE_MAX_S = 5.0
CLOSE_WITHIN_S = 5.0
FIELD = "event"

AUDIT_DROPPED = Counter(
    "voiceagent_audit_events_dropped",
    "Audit events the Redis stream sink dropped (Redis down, slow or the queue full)",
    registry=REGISTRY,
)


class StreamSink(AuditSink):
    def __init__(self, url: str, stream: str, *, maxlen: int, timeout_s: float) -> None:
        self.url = url
        self.stream = stream
        self.maxlen = maxlen
        self.timeout_s = timeout_s
        self._tx, self._rx = trio.open_memory_channel[list[bytes]](QUEUE_BATCHES)
        self._sent_all = trio.Event()
        self.sent = 0  # events added to the stream
        self.dropped = 0  # events dropped (rule 2)
        self.failures = 0  # failed or skipped batches
        self._failures_in_row = 0
        self._down_until = 0.0

    async def publish(self, batch: Sequence[Record]) -> None:
        events = [event_json(record) for record in batch]
        try:
            self._tx.send_nowait(events)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self._drop(len(events), "queue full")

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        import coredis
        from coredis.retry import NoRetryPolicy

        client = coredis.Redis.from_url(
            self.url,
            retry_policy=NoRetryPolicy(),
            connect_timeout=self.timeout_s,
            stream_timeout=max(self.timeout_s, 1.0),
        )
        try:
            async with client:
                task_status.started()
                async for events in self._rx:
                    await self._send(client, events)
        finally:
            self._sent_all.set()

    async def _send(self, client: Any, events: list[bytes]) -> None:
        if trio.current_time() < self._down_until:
            self._drop(len(events), "redis down")
            return
        from coredis.tokens import PureToken

        try:
            with trio.fail_after(self.timeout_s):
                async with client.pipeline(transaction=False) as pipe:
                    for event in events:
                        pipe.xadd(
                            self.stream,
                            {FIELD: event},
                            trim_strategy=PureToken.MAXLEN,
                            threshold=self.maxlen,
                            trim_operator=PureToken.APPROXIMATELY,
                        )
        except Exception as exc:  # RedisError, OSError, TooSlowError, coredis' groups
            self._failures_in_row += 1
            pause = min(PAUSE_MAX_S, PAUSE_FIRST_S * 2 ** min(self._failures_in_row - 1, 8))
            self._down_until = trio.current_time() + pause
            self._drop(len(events), f"{type(exc).__name__}: {exc}")
            return
        self.sent += len(events)
        if self._failures_in_row:
            log_event(log, "audit_stream_recovered", stream=self.stream, failures=self.failures)
            self._failures_in_row = 0

    def _drop(self, count: int, reason: str) -> None:
        self.failures += 1
        self.dropped += count
        AUDIT_ERRORS.inc()
        AUDIT_DROPPED.inc(count)
        if self.failures % LOG_ERROR_EVERY == 1:
            log_event(
                log,
                "audit_stream_failed",
                level=logging.ERROR,
                url=redact_url(self.url),
                stream=self.stream,
                error=reason,
                failures=self.failures,
                dropped_events=self.dropped,
            )

    async def aclose(self) -> None:
        self._tx.close()
        with trio.move_on_after(CLOSE_WITHIN_S):
            await self._sent_all.wait()
