"""The Lua scripts: each is one atomic step in Redis, sent as EVALSHA.

Keys (`P` is `VOICEAGENT_REDIS_PREFIX`):
- `P:room:<session id>`: a hash `{instance, token, sub}` with a TTL of
  `VOICEAGENT_PRESENCE_TTL_S`, refreshed by the owning instance's heartbeat. `token`
  names one claim (one session object): a release or a refresh by an older claim of the
  same room changes nothing.
- `P:slots:<key>` (`ip:<address>`, `sub:<user>`, `rooms`): a sorted set of holders
  scored by their expiry in Redis's own clock (milliseconds), so a slot of a crashed
  instance frees itself within the TTL; the key itself expires with its last holder.

Times come from Redis (`TIME`), never from the instances' clocks.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, cast

# KEYS[1] room; ARGV instance, token, sub, ttl_ms.
# Returns {previous instance, previous token} ({} when the room was free).
CLAIM = """
local previous = redis.call('HMGET', KEYS[1], 'instance', 'token')
redis.call('HSET', KEYS[1], 'instance', ARGV[1], 'token', ARGV[2], 'sub', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
if previous[1] then return previous end
return {}
"""

# KEYS[1] room; ARGV token. Deletes the room only if this claim still holds it.
RELEASE = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS rooms; ARGV instance, ttl_ms, then token and sub for each room.
# Extends the rooms this instance still holds, writes again the ones Redis lost (a
# restart, or an outage longer than the TTL), and returns the 1-based positions of
# the rooms another instance took meanwhile.
REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  local token = ARGV[1 + 2 * i]
  local held = redis.call('HGET', key, 'token')
  if held == token or not held then
    if not held then
      redis.call('HSET', key, 'instance', ARGV[1], 'token', token, 'sub', ARGV[2 + 2 * i])
    end
    redis.call('PEXPIRE', key, ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

# KEYS[1] slots; ARGV holder, limit (0: none), ttl_ms. Returns 1 (taken) or 0 (full).
ACQUIRE = """
local now = redis.call('TIME')
now = now[1] * 1000 + math.floor(now[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local limit = tonumber(ARGV[2])
if limit > 0 and redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS slot keys; ARGV ttl_ms, then the holder for each key. Extends (or writes again)
# each holder this instance still has.
REFRESH_SLOTS = """
local now = redis.call('TIME')
now = now[1] * 1000 + math.floor(now[2] / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1 + i])
  redis.call('PEXPIRE', key, ttl)
end
return #KEYS
"""

_loaded: dict[str, Any] = {}


def run(client: Any, source: str, keys: list[str], args: list[object]) -> Awaitable[Any]:
    """Run `source` by its SHA (EVALSHA; loaded again after a Redis restart)."""
    script = _loaded.get(source)
    if script is None:
        from coredis.commands.script import Script

        script = _loaded[source] = Script(script=source)
    return cast(Awaitable[Any], script(keys=keys, args=args, client=client))
