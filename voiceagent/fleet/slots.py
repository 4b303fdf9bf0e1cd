"""`RedisSlots`: the gate's `SlotCounter` shared by every instance through Redis.

A slot is a holder id in the key's sorted set (scripts.ACQUIRE: trim expired holders,
count, add, in one atomic step). This instance remembers the holders it took and
refreshes them on the registry's heartbeat, so a crashed instance's slots expire
within `VOICEAGENT_PRESENCE_TTL_S` instead of leaking.

Failure (Redis down or slower than the timeout):
- policy `open`: the check falls back to this instance's own holders (local-only
  limits); the heartbeat writes those holders to Redis once it answers again;
- policy `closed`: `AccessRefused` 503 `registry_unavailable`.
A cancelled or failed acquire gives back the holder it may have written (a release is
idempotent per holder).
"""

from __future__ import annotations

import uuid
from typing import Any

from voiceagent.access.tokens import AccessRefused
from voiceagent.fleet import scripts
from voiceagent.fleet.link import RedisLink, RedisUnavailable

UNAVAILABLE = "the shared registry is unavailable; try again shortly"


class RedisSlots:
    def __init__(self, link: RedisLink, prefix: str, ttl_ms: int, *, fail_open: bool) -> None:
        self._link = link
        self._prefix = prefix
        self._ttl_ms = ttl_ms
        self._fail_open = fail_open
        self._held: dict[str, list[str]] = {}  # key -> holders this instance took

    async def acquire(self, key: str, limit: int) -> bool:
        holder = uuid.uuid4().hex
        redis_key = self._redis_key(key)
        try:
            taken = await self._link.call(
                "acquire",
                lambda client: scripts.run(
                    client, scripts.ACQUIRE, [redis_key], [holder, limit, self._ttl_ms]
                ),
            )
        except RedisUnavailable:
            self._forget_in_redis(redis_key, holder)
            if not self._fail_open:
                raise AccessRefused("registry_unavailable", UNAVAILABLE, status=503) from None
            taken = not limit or len(self._held.get(key, ())) < limit
        except BaseException:  # cancelled mid-call: the script may have run
            self._forget_in_redis(redis_key, holder)
            raise
        if taken:
            self._held.setdefault(key, []).append(holder)
        return bool(taken)

    def release(self, key: str) -> None:
        holders = self._held.get(key)
        if not holders:
            return
        holder = holders.pop()
        if not holders:
            del self._held[key]
        self._forget_in_redis(self._redis_key(key), holder)

    def count(self, key: str) -> int:
        return len(self._held.get(key, ()))

    async def refresh(self, client: Any) -> None:
        """Extend every holder this instance has (the registry's heartbeat calls it)."""
        pairs = [(self._redis_key(key), h) for key, hs in self._held.items() for h in hs]
        for start in range(0, len(pairs), BATCH):
            batch = pairs[start : start + BATCH]
            await scripts.run(
                client,
                scripts.REFRESH_SLOTS,
                [key for key, _ in batch],
                [self._ttl_ms, *(holder for _, holder in batch)],
            )

    def _redis_key(self, key: str) -> str:
        return f"{self._prefix}:slots:{key}"

    def _forget_in_redis(self, redis_key: str, holder: str) -> None:
        self._link.post("release_slot", lambda client: client.zrem(redis_key, [holder]))


# Keys per script call on the heartbeat: one call holds Redis for well under 1 ms.
BATCH = 500
