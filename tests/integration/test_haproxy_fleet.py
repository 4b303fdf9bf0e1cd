"""Three `voiceagent serve` instances behind HAProxy (deploy/haproxy.cfg as shipped),
all real processes on 127.0.0.1, the model being the realtime emulator.

It shows what the load balancer promises: a room id always reaches the same
instance, ids spread over the instances, a dead instance's rooms move to the
survivors while every other room stays put (consistent hashing), and a drained
instance (SIGTERM) lets its talking rooms finish before it sends them elsewhere.
Which instance holds a room is read from each instance's admin API.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
from trio_websocket import open_websocket_url

from tests.conftest import Client
from tests.infra import (
    Instance,
    Proxy,
    emulated_openai_env,
    haproxy,
    haproxy_available,
    realtime_emulator,
    voiceagent_fleet,
)

pytestmark = pytest.mark.skipif(not haproxy_available(), reason="haproxy is not installed")

ROOMS = [f"room-{index}" for index in range(12)]
# About 4 s of speech, sent in real time.
REPLY = "Your checked bag may weigh up to twenty three kilos on this flight."
# About 12 s: the answer a drained room is in the middle of, long enough for the other
# rooms of its instance to move (and a loaded machine) before it ends.
LONG_REPLY = " ".join([REPLY] * 3)


@dataclass
class Stack:
    proxy: Proxy
    instances: list[Instance]

    async def placement(self) -> dict[str, str]:
        """room id -> the name of the instance that holds it (each id at most once)."""
        where: dict[str, str] = {}
        for instance in self.instances:
            if instance.process.returncode is not None:
                continue
            for session_id in await instance.session_ids():
                assert session_id not in where, f"{session_id} lives on two instances"
                where[session_id] = instance.name
        return where

    def instance(self, name: str) -> Instance:
        return next(instance for instance in self.instances if instance.name == name)


@asynccontextmanager
async def stack(tmp_path: Path, reply: str = REPLY) -> AsyncIterator[Stack]:
    env = {"VOICEAGENT_DRAIN_GRACE_S": "30"}
    args = ("--canned", reply, "--audio-rtf", "1.0", "--token-rate", "30")
    async with realtime_emulator(tmp_path / "emulator", *args) as (realtime_port, _):
        env |= emulated_openai_env(realtime_port)
        async with voiceagent_fleet(tmp_path, 3, env) as instances:
            ports = [instance.port for instance in instances]
            async with haproxy(tmp_path / "haproxy", ports) as proxy:
                yield Stack(proxy, instances)


@asynccontextmanager
async def rooms(proxy: Proxy, ids: list[str]) -> AsyncIterator[dict[str, Client]]:
    """One open room per id, through HAProxy, each past `session_started`."""
    async with AsyncExitStack() as exits:
        clients = {}
        for session_id in ids:
            ws = await exits.enter_async_context(
                open_websocket_url(f"ws://{proxy.address}/ws/{session_id}")
            )
            clients[session_id] = client = Client(ws)
            await client.wait_for("session_started")
        yield clients


async def still_talking(client: Client) -> None:
    """The room answers a typed question on its old connection."""
    await client.send(type="text", text="still there?")
    await client.wait_for("response_done", within=20)


async def test_a_room_id_always_reaches_the_same_instance(tmp_path: Path) -> None:
    async with stack(tmp_path) as fleet:
        async with rooms(fleet.proxy, ROOMS):
            first = await fleet.placement()
        assert set(first) == set(ROOMS)
        assert len(set(first.values())) == 3, first  # the ids spread over all three
        # Reconnecting (every room again, in another order) lands on the same instance.
        async with rooms(fleet.proxy, ROOMS[::-1]):
            assert await fleet.placement() == first
        # A second connection for a live room replaces it there: still one room.
        async with rooms(fleet.proxy, ROOMS[:1]) as old:
            async with rooms(fleet.proxy, ROOMS[:1]):
                assert await old[ROOMS[0]].wait_closed() == 1012
                assert (await fleet.placement()) == {ROOMS[0]: first[ROOMS[0]]}


async def test_a_killed_instance_moves_only_its_own_rooms(tmp_path: Path) -> None:
    async with stack(tmp_path) as fleet, rooms(fleet.proxy, ROOMS) as clients:
        before = await fleet.placement()
        victim = fleet.instance(before[ROOMS[0]])
        lost = sorted(room for room, name in before.items() if name == victim.name)
        kept = sorted(room for room in ROOMS if room not in lost)
        victim.process.send_signal(signal.SIGKILL)
        for room in lost:  # HAProxy ends their tunnels when the server side drops
            assert await clients[room].wait_closed() not in (1000, 1001)
        down = {name: "DOWN" if name == victim.name else "UP" for name in before.values()}
        await fleet.proxy.wait_for_states(down)
        async with rooms(fleet.proxy, lost):
            after = await fleet.placement()
        for room in lost:
            assert after[room] != victim.name
        for room in kept:  # untouched: same instance, same connection, still talking
            assert after[room] == before[room]
        async with trio.open_nursery() as nursery:
            for room in kept:
                nursery.start_soon(still_talking, clients[room])


async def test_a_drained_instance_loses_no_room_mid_response(tmp_path: Path) -> None:
    async with stack(tmp_path, LONG_REPLY) as fleet, rooms(fleet.proxy, ROOMS) as clients:
        before = await fleet.placement()
        drained = fleet.instance(before[ROOMS[0]])
        on_it = sorted(room for room, name in before.items() if name == drained.name)
        assert len(on_it) >= 2, before
        talking, idle = on_it[0], on_it[1:]
        await clients[talking].send(type="text", text="how heavy may my bag be?")
        started = await clients[talking].wait_for("response_start")
        drained.process.send_signal(signal.SIGTERM)

        # The idle rooms are told at once, and reconnect at once with the same ids:
        # the drained instance refuses them (503) and HAProxy tries the next one.
        for room in idle:
            assert await clients[room].wait_closed(within=3) == 1001
        async with rooms(fleet.proxy, idle):
            moved = await fleet.placement()
            assert all(moved[room] != drained.name for room in idle), moved
            assert moved[talking] == drained.name  # still finishing its answer

        assert await clients[talking].wait_closed(within=30) == 1001
        talked = clients[talking].events
        kinds = [event["type"] for event in talked]
        done = talked[kinds.index("response_done")]
        assert done["response_id"] == started["response_id"] and done["status"] == "completed"
        assert kinds.index("audio_end") < kinds.index("error")
        for room in on_it:
            last = clients[room].events[-1]
            assert (last["code"], last["reconnect"]) == ("server_shutting_down", True)
        with trio.fail_after(10):
            assert await drained.process.wait() == 0
        async with rooms(fleet.proxy, [talking]):
            after = await fleet.placement()
        assert after[talking] != drained.name
        # The other instances' rooms never moved.
        assert all(after[room] == before[room] for room in ROOMS if room not in on_it)
