"""Redis faults with a real redis-server: down at start, down mid-run, paused (SIGSTOP).

Live rooms keep talking whatever Redis does; new rooms follow VOICEAGENT_REDIS_FAILURE
(open: admitted with local checks; closed: 503); /healthz and /metrics say so; when
Redis answers again the instance re-registers its rooms.
"""

from __future__ import annotations

from pathlib import Path

import trio

from tests.access.test_admission_over_socket import rejection, room
from tests.conftest import Client, eventually
from tests.fleet.helpers import Instance, instance
from tests.infra import RedisServer

FAST = {"redis_timeout_s": 0.3, "presence_ttl_s": 3.0}


async def talks(client: Client) -> None:
    await client.send(type="text", text="are you there?")
    await client.wait_for("response_done", within=5)


async def redis_state(node: Instance) -> str:
    return str((await node.get("/healthz")).json()["registry"]["redis"])


async def redis_up_metric(node: Instance) -> float:
    for line in (await node.get("/metrics")).text.splitlines():
        if line.startswith("voiceagent_redis_up "):
            return float(line.split()[1])
    raise AssertionError("voiceagent_redis_up is not exported")


async def wait_redis(node: Instance, state: str, within: float = 10) -> None:
    with trio.fail_after(within):
        while True:  # polled over HTTP, the way a load balancer sees it
            if await redis_state(node) == state:
                return
            await trio.sleep(0.05)


def holder(redis: RedisServer, session_id: str) -> object:
    return redis.call("HGET", f"voiceagent:room:{session_id}", "instance")


async def test_redis_down_mid_run_with_the_closed_policy(redis_server: RedisServer) -> None:
    async with instance(redis_server, redis_failure="closed", **FAST) as node:
        async with room(node.address, "room-1") as live:
            redis_server.stop()
            await talks(live)  # nothing on the per-frame path touches Redis
            assert await rejection(node.address, "room-2") == 503
            health = (await node.get("/healthz")).json()
            assert health["registry"]["redis"] == "down" and health["ready"] is False
            assert await redis_up_metric(node) == 0
            await talks(live)

            redis_server.start()  # back, empty: the instance writes its room again
            await wait_redis(node, "up")
            await eventually(lambda: holder(redis_server, "room-1") == node.registry.instance)
            assert (await node.get("/healthz")).json()["ready"] is True
            assert await redis_up_metric(node) == 1
            async with room(node.address, "room-2"):
                pass
            await talks(live)


async def test_redis_down_mid_run_with_the_open_policy(redis_server: RedisServer) -> None:
    async with instance(redis_server, redis_failure="open", **FAST) as node:
        async with room(node.address, "room-1") as first:
            redis_server.stop()
            async with room(node.address, "room-2") as second:  # local checks only
                health = (await node.get("/healthz")).json()
                assert health["registry"]["redis"] == "down" and health["ready"] is True
                await talks(first)
                await talks(second)
                redis_server.start()
                await wait_redis(node, "up")
                for session_id in ("room-1", "room-2"):
                    await eventually(
                        lambda s=session_id: holder(redis_server, s) == node.registry.instance
                    )
                await talks(second)


async def test_redis_down_at_start_then_up(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")  # a port with nothing on it yet
    try:
        async with instance(server.url, redis_failure="open", **FAST) as node:
            assert await redis_state(node) == "down"
            async with room(node.address, "room-1") as live:
                server.start()
                await wait_redis(node, "up")
                await eventually(lambda: holder(server, "room-1") == node.registry.instance)
                await talks(live)
    finally:
        server.stop()


async def test_redis_down_at_start_with_the_closed_policy_refuses(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    async with instance(server.url, redis_failure="closed", **FAST) as node:
        assert await rejection(node.address, "room-1") == 503
        assert (await node.get("/healthz")).json()["ready"] is False


async def test_a_paused_redis_delays_a_handshake_by_the_timeout_at_most(
    redis_server: RedisServer,
) -> None:
    async with instance(redis_server, redis_failure="closed", **FAST) as node:
        async with room(node.address, "room-1") as live:
            redis_server.pause()
            try:
                started = trio.current_time()
                assert await rejection(node.address, "room-2") == 503
                first = trio.current_time() - started
                started = trio.current_time()
                assert await rejection(node.address, "room-3") == 503
                second = trio.current_time() - started
                await talks(live)
            finally:
                redis_server.resume()
            assert first < 0.3 + 0.5, first  # one timeout, then...
            assert second < 0.2, second  # ...no wait at all while it is known down
            await wait_redis(node, "up")
            async with room(node.address, "room-2"):
                pass
            await talks(live)


async def test_a_paused_redis_with_the_open_policy_admits(redis_server: RedisServer) -> None:
    async with instance(redis_server, redis_failure="open", **FAST) as node:
        redis_server.pause()
        try:
            with trio.fail_after(2):
                async with room(node.address, "room-1") as live:
                    await talks(live)
        finally:
            redis_server.resume()
