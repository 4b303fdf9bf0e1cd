"""The connection to Redis: one coredis client, its up/down state, and reconnection.

coredis is built on anyio, so it runs on Trio natively (checked against a real
redis-server: commands, Lua scripts, pub/sub, a killed and restarted server, a
SIGSTOP-paused one); no thread bridge is involved.

Rules:
- Every call goes through `call(op, fn)` with a deadline (`VOICEAGENT_REDIS_TIMEOUT_S`).
  A timeout or a connection error marks the link down and raises `RedisUnavailable`;
  while down, calls fail at once (a handshake pays one timeout at most, then none),
  and the supervisor pings with exponential backoff (0.1 s doubling to 5 s). When a
  ping answers, the link is up again and the `on_up` callbacks run (the registry
  re-registers its rooms).
- coredis retries nothing here: a retried Lua acquire could take two slots.
- `post(fn)` queues a fire-and-forget call (a release from a `finally` block): it is
  sent in the background, in order; while Redis is down it is dropped (what it would
  have released expires with its TTL) and counted.
- `serve()` owns the client: cancelling it closes the connections. Before it starts,
  or after it ends, the link is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio
from prometheus_client import Counter, Gauge

from voiceagent import metrics
from voiceagent.logs import log_event
from voiceagent.redact import redact_url
from voiceagent.session.registry import RegistryUnavailable

log = logging.getLogger("voiceagent.fleet")

T = TypeVar("T")
Call = Callable[[Any], Awaitable[T]]

REDIS_UP = Gauge(
    "voiceagent_redis_up",
    "1 while the shared registry's Redis answers, 0 while it is down",
    registry=metrics.REGISTRY,
)
REDIS_ERRORS = Counter(
    "voiceagent_redis_errors",
    "Redis calls that failed or timed out, by operation",
    ["op"],
    registry=metrics.REGISTRY,
)
REDIS_RECONNECTS = Counter(
    "voiceagent_redis_reconnects",
    "Times the link to Redis came back after being down",
    registry=metrics.REGISTRY,
)
REDIS_DROPPED = Counter(
    "voiceagent_redis_dropped",
    "Background Redis calls (releases) dropped while Redis was down",
    registry=metrics.REGISTRY,
)

BACKOFF_FIRST_S = 0.1
BACKOFF_MAX_S = 5.0
POST_QUEUE = 10_000  # background calls waiting; past it they are dropped (TTLs clean up)


class RedisUnavailable(RegistryUnavailable):
    """Redis did not answer (down, unreachable, or slower than the timeout)."""


class RedisLink:
    def __init__(self, url: str, timeout_s: float) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.client: Any = None
        self.up = False
        self.since = time.monotonic()  # when `up` last changed
        self.on_up: list[Callable[[], Awaitable[None]]] = []
        self._wake = trio.Event()  # set when the link goes down: the supervisor wakes
        self._posts_in, self._posts_out = trio.open_memory_channel[Call[object]](POST_QUEUE)
        self._posts_waiting = 0
        self._posts_done = trio.Event()
        REDIS_UP.set(0)

    async def call(self, op: str, fn: Call[T]) -> T:
        """`await fn(client)` within the timeout, or `RedisUnavailable`."""
        if not self.up:
            raise RedisUnavailable(f"redis is down ({op})")
        return await self._attempt(op, fn)

    def post(self, op: str, fn: Call[object]) -> None:
        """Send `fn` in the background (never waits); dropped while Redis is down."""
        if not self.up:
            REDIS_DROPPED.inc()
            return
        try:
            self._posts_in.send_nowait(fn)
        except trio.WouldBlock:
            REDIS_DROPPED.inc()
            return
        self._posts_waiting += 1

    async def flush(self, within: float) -> None:
        """Wait (at most `within` s) until the queued background calls are sent: a stop
        lets its last releases reach Redis instead of waiting for their TTLs."""
        with trio.move_on_after(within):
            while self._posts_waiting and self.up:
                await self._posts_done.wait()

    def mark_down(self, op: str, error: BaseException | None = None) -> None:
        REDIS_ERRORS.labels(op).inc()
        if self.up:
            self.up = False
            self.since = time.monotonic()
            REDIS_UP.set(0)
            log_event(log, "redis_down", logging.WARNING, op=op, error=_describe(error))
            self._wake.set()

    async def _attempt(self, op: str, fn: Call[T]) -> T:
        client = self.client
        if client is None:
            raise RedisUnavailable("redis client not started")
        from coredis.exceptions import RedisError

        try:
            with trio.fail_after(self.timeout_s):
                return await fn(client)
        except (RedisError, OSError, trio.TooSlowError) as exc:
            self.mark_down(op, exc)
            raise RedisUnavailable(f"redis {op}: {_describe(exc)}") from None
        except Exception as exc:  # e.g. an ExceptionGroup from coredis' own task group
            log.exception("unexpected error from redis (%s)", op)
            self.mark_down(op, exc)
            raise RedisUnavailable(f"redis {op}: {_describe(exc)}") from None

    # -- background ------------------------------------------------------------------

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Own the client; report started after the first connection attempt."""
        import coredis
        from coredis.retry import NoRetryPolicy

        client = coredis.Redis.from_url(
            self.url,
            decode_responses=True,
            retry_policy=NoRetryPolicy(),
            connect_timeout=self.timeout_s,
            stream_timeout=max(self.timeout_s, 1.0),
        )
        try:
            async with client:
                self.client = client
                await self._ping()
                if not self.up:
                    log_event(log, "redis_unreachable", logging.WARNING, url=redact_url(self.url))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._supervise)
                    nursery.start_soon(self._send_posts)
                    task_status.started()
        finally:
            self.client = None
            self.up = False
            REDIS_UP.set(0)

    async def _ping(self) -> bool:
        try:
            await self._attempt("ping", lambda client: client.ping())
        except RedisUnavailable:
            return False
        if not self.up:
            self.up = True
            self.since = time.monotonic()
            REDIS_UP.set(1)
            log_event(log, "redis_up", url=redact_url(self.url))
            return True
        return False

    async def _supervise(self) -> None:
        while True:
            if self.up:
                await self._wake.wait()
                self._wake = trio.Event()
                continue
            backoff = BACKOFF_FIRST_S
            while not await self._ping():
                await trio.sleep(backoff)
                backoff = min(BACKOFF_MAX_S, backoff * 2)
            REDIS_RECONNECTS.inc()
            for callback in list(self.on_up):
                await callback()

    async def _send_posts(self) -> None:
        async for fn in self._posts_out:
            if self.up:
                try:
                    await self._attempt("post", fn)
                except RedisUnavailable:
                    pass  # counted by mark_down; TTLs clean up what it would have done
            else:
                REDIS_DROPPED.inc()
            self._posts_waiting -= 1
            self._posts_done.set()
            self._posts_done = trio.Event()


def _describe(error: BaseException | None) -> str | None:
    if error is None:
        return None
    text = str(error) or type(error).__name__
    return text[:200]
