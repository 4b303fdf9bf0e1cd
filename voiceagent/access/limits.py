"""Admission and rate limits: slots per key, and token buckets per room.

`SlotCounter` counts concurrent rooms per key (a client address, a user, all rooms)
with a limit per call. The in-process counter is the embedded default; with
`VOICEAGENT_REDIS_URL` the instances share `voiceagent.fleet.slots.RedisSlots`, with the
same three methods. `acquire` may wait (a shared counter asks Redis, at the handshake
only); `release` never waits, since it runs in `finally` blocks (a shared counter
sends the release in the background, and a slot it could not release expires).

`TokenBucket` bounds a rate with a burst: each message takes tokens, tokens refill at
`rate` per second up to `burst`. It is pure: the caller passes the time, so the same
code runs under Trio's clock in the session and under a fake clock in tests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol

from voiceagent.pcm import BYTES_PER_MS


class SlotCounter(Protocol):
    async def acquire(self, key: str, limit: int) -> bool:
        """Take a slot for `key` unless `limit` are taken (a limit of 0 means no limit)."""
        ...

    def release(self, key: str) -> None: ...

    def count(self, key: str) -> int:
        """Slots this process holds for `key`."""
        ...


class LocalSlots:
    """`SlotCounter` for one process."""

    def __init__(self) -> None:
        self._held: Counter[str] = Counter()

    async def acquire(self, key: str, limit: int) -> bool:
        return self.take(key, limit)

    def take(self, key: str, limit: int) -> bool:
        """`acquire` without waiting."""
        if limit and self._held[key] >= limit:
            return False
        self._held[key] += 1
        return True

    def release(self, key: str) -> None:
        held = self._held[key] - 1
        if held > 0:
            self._held[key] = held
        else:
            del self._held[key]

    def count(self, key: str) -> int:
        return self._held.get(key, 0)


class TokenBucket:
    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._at = now

    def take(self, amount: float, now: float) -> bool:
        """Spend `amount` tokens if there are enough; False (nothing spent) if not."""
        tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if tokens < amount:
            self._tokens = tokens
            return False
        self._tokens = tokens - amount
        return True


# Audio may arrive in bursts (a tab that was in the background sends what it buffered):
# the bucket holds this many seconds of audio at the allowed rate.
AUDIO_BURST_S = 2.0


@dataclass(slots=True)
class MessageRates:
    """A room's two buckets: audio bytes, and JSON messages (None: no limit)."""

    audio: TokenBucket | None
    messages: TokenBucket | None

    @classmethod
    def from_settings(cls, settings: RateSettings, now: float) -> MessageRates:
        audio = None
        if settings.max_audio_rate:
            rate = settings.max_audio_rate * BYTES_PER_MS * 1000
            audio = TokenBucket(rate, rate * AUDIO_BURST_S, now)
        messages = None
        if settings.max_messages_per_s:
            per_s = settings.max_messages_per_s
            messages = TokenBucket(per_s, 2 * per_s, now)
        return cls(audio, messages)


class RateSettings(Protocol):
    max_audio_rate: float
    max_messages_per_s: float
