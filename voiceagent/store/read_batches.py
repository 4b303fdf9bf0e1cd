"""Reads that wait together go to the database together.

A reconnect burst (an instance drained or restarted, its rooms all coming back to this
one at once) makes every room read its last visit, and most of them their items, before
`session_started` (session/resume.py). One worker-thread call per read queued those
calls behind the store's few read threads: under a burst of thousands of handshakes
the resume bound ran out for some rooms, which then began a fresh conversation. Here
the reads of one kind that arrive while a call is out are answered together by the
next call, one thread round trip for up to `MAX_KEYS` rooms.

Rules:
1. `get(key)` waits for the call that includes its key. A call runs as soon as the one
   before it has returned, with the keys queued by then (at most `MAX_KEYS`, oldest
   first); a lone read therefore still goes out at once.
2. A waiter that is cancelled (its own bound) leaves; the call still answers the rest.
3. A call that fails fails each of its waiters with a `StoreReadError` of its own: no
   exception object is shared between tasks (each would grow the other's traceback).
4. `serve()` runs the calls, in the store's task group. When it ends, every read still
   waiting fails at once, and later reads fail without waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import trio

K = TypeVar("K")
V = TypeVar("V")

MAX_KEYS = 256  # one call's keys: a few milliseconds of SQLite in a worker thread


class StoreReadError(Exception):
    """A read of the conversation store failed (the database's error, as text)."""


class _Waiter(Generic[K, V]):
    __slots__ = ("done", "error", "key", "value")

    def __init__(self, key: K) -> None:
        self.key = key
        self.done = trio.Event()
        self.value: V | None = None
        self.error: str | None = None

    def answer(self, value: V | None = None, error: str | None = None) -> None:
        self.value, self.error = value, error
        self.done.set()


class BatchedReads(Generic[K, V]):
    """One kind of read, batched; see the module docstring."""

    def __init__(self, fetch: Callable[[list[K]], Awaitable[Sequence[V]]]) -> None:
        self._fetch = fetch  # keys -> their values, in the same order
        self._queue: list[_Waiter[K, V]] = []
        self._in_flight: list[_Waiter[K, V]] = []
        self._wakeup = trio.Event()
        self._closed = False

    async def get(self, key: K) -> V:
        if self._closed:
            raise StoreReadError("the store is closed")
        waiter: _Waiter[K, V] = _Waiter(key)
        self._queue.append(waiter)
        self._wakeup.set()
        await waiter.done.wait()
        if waiter.error is not None:
            raise StoreReadError(waiter.error)
        return waiter.value  # type: ignore[return-value]

    async def serve(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                while self._queue:
                    batch = self._in_flight = self._queue[:MAX_KEYS]
                    del self._queue[:MAX_KEYS]
                    try:
                        values = await self._fetch([waiter.key for waiter in batch])
                    except Exception as exc:
                        for waiter in batch:
                            waiter.answer(error=repr(exc))
                    else:
                        for waiter, value in zip(batch, values, strict=True):
                            waiter.answer(value)
                    self._in_flight = []
        finally:
            self._closed = True
            for waiter in [*self._in_flight, *self._queue]:
                waiter.answer(error="the store is closed")
            self._in_flight, self._queue = [], []
