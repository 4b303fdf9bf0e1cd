"""What a room costs in Redis, counted by Redis itself (`INFO commandstats`, which counts
the commands scripts run too). docs/deploy.md quotes these figures.

- per heartbeat, per room: HGET + PEXPIRE for its presence, ZADD + PEXPIRE per slot it
  holds; per instance: one EVALSHA per 500 rooms and one (plus TIME) per 500 slots;
- per frame and per turn: nothing.
"""

from __future__ import annotations

import trio

from tests.access.test_admission_over_socket import room, token
from tests.conftest import eventually
from tests.fleet.helpers import SECRET, instance
from tests.infra import RedisServer

ROOMS = 20
# A long TTL keeps the background heartbeat out of the way: the test beats by hand.
QUIET = {"presence_ttl_s": 600.0, "auth_secret": SECRET}
LIMITS = {"max_sessions_per_user": 5, "max_rooms": 1000}


def counted(redis: RedisServer) -> dict[str, int]:
    calls = redis.command_calls()
    for own in ("info", "config|resetstat", "config", "exists"):  # the test's own
        calls.pop(own, None)
    return calls


async def test_a_heartbeat_costs_each_room_a_fixed_handful_and_turns_cost_nothing(
    redis_server: RedisServer,
) -> None:
    async with instance(redis_server, **QUIET, **LIMITS) as node, trio.open_nursery() as nursery:
        clients = []
        done = trio.Event()

        async def hold(index: int, task_status: trio.TaskStatus[object]) -> None:
            user = f"user{index % (ROOMS // 4)}"  # 4 rooms per user, each holds 2 slots
            async with room(node.address, f"room-{index}", with_token=token(user)) as client:
                task_status.started(client)
                await done.wait()

        for index in range(ROOMS):
            clients.append(await nursery.start(hold, index))

        redis_server.call("CONFIG", "RESETSTAT")
        for client in clients:  # a text turn in every room: no Redis at all
            await client.send(type="text", text="hello")
        for client in clients:
            await client.wait_for("response_done")
        assert counted(redis_server) == {}

        await node.registry.refresh()  # the first run of a script loads it: once per server
        redis_server.call("CONFIG", "RESETSTAT")
        beats = 3
        for _ in range(beats):
            await node.registry.refresh()
        calls = counted(redis_server)
        slots = 2 * ROOMS  # sub:<user> and rooms
        assert calls == {
            "evalsha": 2 * beats,
            "hget": ROOMS * beats,
            "pexpire": (ROOMS + slots) * beats,
            "zadd": slots * beats,
            "time": beats,
        }
        done.set()


async def test_opening_and_closing_a_room(redis_server: RedisServer) -> None:
    async with instance(redis_server, **QUIET, **LIMITS) as node:
        async with room(node.address, "room-0", with_token=token("bob")):
            pass  # loads the scripts (once per Redis server)
        await eventually(lambda: counted(redis_server).get("zrem", 0) >= 2)
        redis_server.call("CONFIG", "RESETSTAT")
        async with room(node.address, "room-1", with_token=token("alice")):
            opened = counted(redis_server)
        await eventually(lambda: redis_server.call("EXISTS", "voiceagent:room:room-1") == 0)
        await eventually(lambda: counted(redis_server).get("zrem", 0) >= 2)
        closed = counted(redis_server)
    # owner lookup; two slot acquires; the claim
    assert opened == {
        "hmget": 1 + 1,
        "evalsha": 2 + 1,
        "time": 2,
        "zremrangebyscore": 2,
        "zcard": 2,
        "zadd": 2,
        "pexpire": 2 + 1,
        "hset": 1,
    }
    # the release of the claim and of both slots
    lifetime = {name: closed.get(name, 0) - opened.get(name, 0) for name in closed}
    assert {name: n for name, n in lifetime.items() if n} == {
        "evalsha": 1,
        "hget": 1,
        "del": 1,
        "zrem": 2,
    }
