"""The whole deployment on 127.0.0.1: three `voiceagent serve` instances sharing one
`redis-server`, behind HAProxy (deploy/haproxy.cfg as shipped), room tokens on, the
model being the realtime emulator; every client is a real WebSocket.

It shows that the fleet keeps the promises one process makes:
- a room id always reaches the same instance through HAProxy;
- a second connection for a live room replaces it exactly once, whichever path it
  takes (through HAProxy, or straight to another instance): one room per id fleet-wide;
- kick, mute and list sent to any instance reach the instance holding the room;
- the per-`sub` room limit counts the rooms of every instance;
- SIGKILL of an instance: its presence in Redis expires within the TTL, its rooms
  come back on the survivors, the other rooms keep their instance and connection;
- SIGTERM (drain): the room mid-response finishes it, every room gets a clean 1001
  with `reconnect`, and they all come back elsewhere.
Which instance holds a room is read from the fleet-wide admin list (each entry names
its instance); every instance must give the same list.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.access.test_admission_over_socket import SECRET, rejection, room
from tests.conftest import Client, eventually
from tests.infra import (
    ADMIN_TOKEN,
    REDIS_SERVER,
    Instance,
    Proxy,
    RedisServer,
    emulated_openai_env,
    haproxy,
    haproxy_available,
    realtime_emulator,
    voiceagent_fleet,
)
from voiceagent.access.tokens import mint_token

pytestmark = [
    pytest.mark.skipif(not haproxy_available(), reason="haproxy is not installed"),
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed"),
]

TTL_S = 3.0  # VOICEAGENT_PRESENCE_TTL_S: short, so a dead instance's rooms free quickly
ROOMS = [f"room-{index}" for index in range(12)]  # they spread over all three instances
# About 4 s of speech, sent in real time.
REPLY = "Your checked bag may weigh up to twenty three kilos on this flight."
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def token(sub: str) -> str:
    return mint_token(SECRET, sub=sub, room="room-*", ttl_s=600)


def owner(session_id: str) -> str:
    """Every room has a user of its own (the per-user limit is 1)."""
    return f"user-{session_id}"


@dataclass
class Fleet:
    proxy: Proxy
    instances: list[Instance]
    ids: dict[str, str]  # registry instance id -> instance name
    redis: RedisServer

    def instance(self, name: str) -> Instance:
        return next(instance for instance in self.instances if instance.name == name)

    def others(self, name: str) -> list[Instance]:
        return [i for i in self.instances if i.name != name and i.process.returncode is None]

    async def admin(self, instance: Instance, verb: str, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5) as http:
            return await http.request(verb, f"http://{instance.address}{path}", headers=ADMIN)

    async def placement(self) -> dict[str, str]:
        """room id -> name of the instance holding it, as every live instance lists it."""
        answers = []
        for instance in self.instances:
            if instance.process.returncode is not None:
                continue
            listed = (await self.admin(instance, "GET", "/admin/sessions")).json()
            assert "partial" not in listed, (instance.name, listed)
            where: dict[str, str] = {}
            for session in listed["sessions"]:
                room_id = session["session_id"]
                assert room_id not in where, f"{room_id} lives twice: {listed}"
                where[room_id] = self.ids[session["instance"]]
            answers.append(where)
        assert all(answer == answers[0] for answer in answers), answers
        return answers[0]

    def present(self, session_id: str) -> bool:
        return self.redis.call("EXISTS", f"voiceagent:room:{session_id}") == 1


@asynccontextmanager
async def fleet(tmp_path: Path, redis: RedisServer, reply: str) -> AsyncIterator[Fleet]:
    env = {
        "VOICEAGENT_REDIS_URL": redis.url,
        "VOICEAGENT_AUTH_SECRET": SECRET,
        "VOICEAGENT_PRESENCE_TTL_S": str(TTL_S),
        "VOICEAGENT_MAX_SESSIONS_PER_USER": "1",
        "VOICEAGENT_DRAIN_GRACE_S": "30",
    }
    args = ("--canned", reply, "--audio-rtf", "1.0", "--token-rate", "30")
    async with realtime_emulator(tmp_path / "emulator", *args) as (realtime_port, _):
        env |= emulated_openai_env(realtime_port)
        async with voiceagent_fleet(tmp_path, 3, env) as instances:
            ids = {}
            async with httpx.AsyncClient(timeout=5) as http:
                for instance in instances:
                    health = (await http.get(f"http://{instance.address}/healthz")).json()
                    assert health["registry"]["redis"] == "up", health
                    ids[health["registry"]["instance"]] = instance.name
            async with haproxy(tmp_path / "haproxy", [i.port for i in instances]) as proxy:
                yield Fleet(proxy, instances, ids, redis)


@asynccontextmanager
async def rooms(address: str, ids: Iterable[str]) -> AsyncIterator[dict[str, Client]]:
    """One open room per id at `address`, each with its owner's token."""
    async with AsyncExitStack() as exits:
        clients = {}
        for session_id in ids:
            opened = room(address, session_id, with_token=token(owner(session_id)))
            clients[session_id] = await exits.enter_async_context(opened)
        yield clients


async def replaced_once(client: Client) -> None:
    assert await client.wait_closed() == 1012
    codes = [event["code"] for event in client.of_type("error")]
    assert codes == ["replaced"], codes


async def talks(client: Client, within: float = 25) -> dict[str, Any]:
    """The room answers a typed question on its connection."""
    await client.send(type="text", text="still there?")
    done = await client.wait_for("response_done", within=within)
    assert done["status"] == "completed", done
    return done


async def test_rooms_stick_and_are_replaced_controlled_and_limited_fleet_wide(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    async with fleet(tmp_path, redis_server, REPLY) as va:
        proxy = va.proxy.address
        async with rooms(proxy, ROOMS) as first:
            placed = await va.placement()
            assert set(placed) == set(ROOMS)
            assert len(set(placed.values())) == 3, placed  # spread over all three

            # 1 + 2. Every id again through HAProxy: the same instance, where the new
            # connection replaces the old one exactly once.
            async with rooms(proxy, ROOMS[::-1]) as second:
                for session_id in ROOMS:
                    await replaced_once(first[session_id])
                assert await va.placement() == placed

                # 2. Straight to another instance's port: it takes the room over there,
                # once; then through HAProxy again: back home, once.
                moved = ROOMS[0]
                home = placed[moved]
                elsewhere = va.others(home)[0]
                async with rooms(elsewhere.address, [moved]) as third:
                    await replaced_once(second[moved])
                    assert (await va.placement())[moved] == elsewhere.name
                    async with rooms(proxy, [moved]) as fourth:
                        await replaced_once(third[moved])
                        assert await va.placement() == placed
                        await talks(fourth[moved])

                # 3. Mute, unmute, kick sent to another instance's admin API.
                target = ROOMS[1]
                admin_at = va.others(placed[target])[0]
                path = f"/admin/sessions/{target}"
                assert (await va.admin(admin_at, "POST", f"{path}/mute")).status_code == 200
                assert (await second[target].wait_for("muted"))["muted"] is True
                assert (await va.admin(admin_at, "POST", f"{path}/unmute")).status_code == 200
                assert (await second[target].wait_for("muted"))["muted"] is False
                assert (await va.admin(admin_at, "POST", f"{path}/kick")).status_code == 200
                kicked = await second[target].wait_for("error")
                assert kicked["code"] == "kicked", kicked
                assert await second[target].wait_closed() == 4000
                assert target not in await va.placement()
                missing = await va.admin(admin_at, "POST", f"{path}/kick")
                assert missing.status_code == 404

                # 4. The per-user limit (1) counts the rooms of every instance: the
                # owner of a live room may open no second room, anywhere.
                holder = ROOMS[2]
                second_room = {"with_token": token(owner(holder))}
                for instance in va.others(placed[holder]):
                    assert await rejection(instance.address, "room-extra", **second_room) == 429
                assert await rejection(proxy, "room-extra", **second_room) == 429
                await talks(second[holder])


async def test_a_killed_and_a_drained_instance_lose_no_room(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    # About 8 s: long enough that a drained room is still answering when its idle
    # neighbours have moved.
    async with fleet(tmp_path, redis_server, f"{REPLY} {REPLY}") as va:
        proxy = va.proxy.address
        async with AsyncExitStack() as exits:
            clients = await exits.enter_async_context(rooms(proxy, ROOMS))
            before = await va.placement()

            # 5. SIGKILL: no goodbye, no release.
            victim = va.instance(before[ROOMS[0]])
            lost = sorted(r for r, name in before.items() if name == victim.name)
            kept = sorted(r for r in ROOMS if r not in lost)
            assert len(lost) >= 2, before
            victim.process.send_signal(signal.SIGKILL)
            killed_at = trio.current_time()
            # Until its presence expires a dead instance's room still has its owner.
            newcomer, stranger = lost[0], {"with_token": token("someone-new")}
            assert await rejection(proxy, newcomer, **stranger) == 403
            for session_id in lost:  # HAProxy ends their tunnels
                assert await clients[session_id].wait_closed() not in (1000, 1001)
            # Their owners reconnect at once through HAProxy and land on the survivors
            # (the dead instance's slots for them have not expired yet).
            back = await exits.enter_async_context(rooms(proxy, lost[1:]))
            # The room nobody took back: its presence outlives the instance by at most
            # the TTL (plus a heartbeat's slack); then a new user may take the id.
            await eventually(lambda: not va.present(newcomer), within=TTL_S + 2)
            assert trio.current_time() - killed_at <= TTL_S + 2
            back[newcomer] = await exits.enter_async_context(room(proxy, newcomer, **stranger))
            down = {name: "DOWN" if name == victim.name else "UP" for name in before.values()}
            await va.proxy.wait_for_states(down)

            after = await va.placement()
            for session_id in lost:
                assert after[session_id] != victim.name, after
            for session_id in kept:  # untouched: same instance, same connection
                assert after[session_id] == before[session_id]
            async with trio.open_nursery() as nursery:
                for client in [*(clients[r] for r in kept), *back.values()]:
                    nursery.start_soon(talks, client)
            live = {**{r: clients[r] for r in kept}, **back}
            users = {r: owner(r) for r in ROOMS} | {newcomer: "someone-new"}

            # 6. SIGTERM a survivor while its rooms but one are mid-response.
            drained = va.instance(after[kept[0]])
            on_it = sorted(r for r, name in after.items() if name == drained.name)
            idle, talking = on_it[0], on_it[1:]
            assert talking, after
            for session_id in talking:
                await live[session_id].send(type="text", text="how heavy may my bag be?")
            started = {r: await live[r].wait_for("response_start") for r in talking}
            drained.process.send_signal(signal.SIGTERM)
            # The idle room is sent away at once and comes back on the other survivor
            # while its neighbours are still answering.
            assert await live[idle].wait_closed(within=5) == 1001
            async with room(proxy, idle, with_token=token(users[idle])):
                moved = await va.placement()
                assert moved[idle] != drained.name, moved
                assert all(moved[r] == drained.name for r in talking), moved
            for session_id in talking:  # each finishes its answer, then 1001
                assert await live[session_id].wait_closed(within=30) == 1001
                events = live[session_id].events
                kinds = [event["type"] for event in events]
                last_done = len(kinds) - 1 - kinds[::-1].index("response_done")
                done = events[last_done]
                assert done["response_id"] == started[session_id]["response_id"], done
                assert done["status"] == "completed", done
                # nothing cut short after it: its audio's end, then the goodbye
                assert "response_start" not in kinds[last_done:], kinds[last_done:]
                assert kinds.index("audio_end", last_done) < len(kinds) - 1
            for session_id in on_it:
                last = live[session_id].events[-1]
                assert (last["code"], last["reconnect"]) == ("server_shutting_down", True)
            with trio.fail_after(15):
                assert await drained.process.wait() == 0
            # They all come back on the last instance.
            async with AsyncExitStack() as returning:
                for session_id in on_it:
                    opened = room(proxy, session_id, with_token=token(users[session_id]))
                    await returning.enter_async_context(opened)
                final = await va.placement()
            (survivor,) = va.others(drained.name)
            assert all(final[r] == survivor.name for r in on_it), final
