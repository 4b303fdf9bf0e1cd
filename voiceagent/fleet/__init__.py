"""Several instances as one service: the shared registry in Redis (`VOICEAGENT_REDIS_URL`).

- link.py: the coredis client (Trio-native through anyio), up/down, reconnection;
- scripts.py: the atomic Lua steps (claim, release, heartbeat, slots);
- presence.py: `RedisRegistry`, the `Registry` shared by instances;
- slots.py: `RedisSlots`, the gate's shared `SlotCounter`;
- control.py: replace and admin commands between instances over pub/sub.

Needs the `redis` extra (`pip install 'voiceagent[redis]'`); the embedded default
(one process, no Redis) never imports this package.
"""

from __future__ import annotations

from voiceagent.fleet.presence import RedisRegistry

__all__ = ["RedisRegistry"]
