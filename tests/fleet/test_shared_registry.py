"""Two instances sharing one real Redis, over real sockets: replacement, ownership,
admin commands from the other instance, limits across instances, presence expiry."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import trio

from tests.access.test_admission_over_socket import rejection, room, token
from tests.conftest import eventually
from tests.fleet.helpers import SECRET, instance
from tests.infra import RedisServer, free_port


async def test_a_room_moves_to_another_instance_exactly_once(redis_server: RedisServer) -> None:
    async with instance(redis_server) as a, instance(redis_server) as b:
        async with room(a.address, "room-1") as first:
            key = "voiceagent:room:room-1"
            assert redis_server.call("HGET", key, "instance") == a.registry.instance
            async with room(b.address, "room-1") as second:
                assert (await first.wait_for("error"))["code"] == "replaced"
                assert await first.wait_closed() == 1012
                await eventually(lambda: a.registry.get("room-1") is None, within=5)
                assert redis_server.call("HGET", key, "instance") == b.registry.instance
                # The new room talks; the old one's end released nothing of it.
                await second.send(type="text", text="still there?")
                await second.wait_for("response_done")
                assert redis_server.call("HGET", key, "instance") == b.registry.instance
                assert b.registry.get("room-1") is not None
                assert [e["code"] for e in second.of_type("error")] == []
            replaced = [e for e in first.of_type("error") if e["code"] == "replaced"]
            assert len(replaced) == 1
        # Closed for good: the record goes with the last session.
        await eventually(lambda: redis_server.call("EXISTS", key) == 0, within=5)


async def test_ownership_holds_across_instances(redis_server: RedisServer) -> None:
    async with instance(redis_server, auth_secret=SECRET) as a:
        async with instance(redis_server, auth_secret=SECRET) as b:
            async with room(a.address, "room-1", with_token=token("alice")) as first:
                assert await rejection(b.address, "room-1", with_token=token("mallory")) == 403
                await first.send(type="text", text="still here?")
                await first.wait_for("response_done")
                async with room(b.address, "room-1", with_token=token("alice")):
                    assert await first.wait_closed() == 1012


async def test_admin_commands_reach_the_instance_that_holds_the_room(
    redis_server: RedisServer,
) -> None:
    async with instance(redis_server) as a, instance(redis_server) as b:
        async with room(a.address, "room-a") as on_a, room(b.address, "room-b"):
            listed = (await b.get("/admin/sessions")).json()
            where = {s["session_id"]: s["instance"] for s in listed["sessions"]}
            assert where == {"room-a": a.registry.instance, "room-b": b.registry.instance}
            assert "partial" not in listed

            response = await b.post("/admin/sessions/room-a/mute")
            assert response.status_code == 200 and response.json()["muted"] is True
            assert (await on_a.wait_for("muted"))["muted"] is True
            await b.post("/admin/sessions/room-a/unmute")
            assert (await on_a.wait_for("muted"))["muted"] is False

            assert (await b.post("/admin/sessions/nowhere/kick")).status_code == 404
            response = await b.post("/admin/sessions/room-a/kick", reason="closing time")
            assert response.status_code == 200
            kicked = await on_a.wait_for("error", where=lambda e: e["code"] == "kicked")
            assert "closing time" in kicked["message"]
            assert await on_a.wait_closed() == 4000
            await eventually(lambda: a.registry.get("room-a") is None, within=5)
            listed = (await a.get("/admin/sessions")).json()["sessions"]
            assert [s["session_id"] for s in listed] == ["room-b"]


async def test_the_per_user_limit_holds_across_instances(redis_server: RedisServer) -> None:
    limits = {"auth_secret": SECRET, "max_sessions_per_user": 1}
    async with instance(redis_server, **limits) as a, instance(redis_server, **limits) as b:
        async with room(a.address, "room-1", with_token=token("alice")):
            assert await rejection(b.address, "room-2", with_token=token("alice")) == 429
            async with room(b.address, "room-3", with_token=token("bob")):
                pass
        # alice's slot came back when her room closed (released in the background)
        await eventually(lambda: redis_server.call("ZCARD", "voiceagent:slots:sub:alice") == 0)
        async with room(b.address, "room-2", with_token=token("alice")):
            pass


async def test_the_global_room_limit_holds_across_instances(redis_server: RedisServer) -> None:
    async with instance(redis_server, max_rooms=1) as a, instance(redis_server, max_rooms=1) as b:
        async with room(a.address, "room-1"):
            assert await rejection(b.address, "room-2") == 503


@asynccontextmanager
async def serve_one(redis: RedisServer, ttl: float) -> AsyncIterator[tuple[str, trio.Process]]:
    """`voiceagent serve` in a subprocess sharing `redis`; yields its address."""
    port = free_port()
    env = {
        **os.environ,
        "VOICEAGENT_REDIS_URL": redis.url,
        "VOICEAGENT_PRESENCE_TTL_S": str(ttl),
        "VOICEAGENT_TTS": "none",
        "VOICEAGENT_MODEL": "offline",
        "VOICEAGENT_AUTH_SECRET": SECRET,
        "VOICEAGENT_MAX_SESSIONS_PER_USER": "1",
    }
    command = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    process = await trio.lowlevel.open_process(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with trio.fail_after(60):
            while True:
                try:
                    async with httpx.AsyncClient() as http:
                        await http.get(f"http://127.0.0.1:{port}/healthz")
                    break
                except httpx.TransportError:
                    await trio.sleep(0.2)
        yield f"127.0.0.1:{port}", process
    finally:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(10):
            await process.wait()


async def test_a_killed_instance_frees_its_rooms_within_the_ttl(
    redis_server: RedisServer,
) -> None:
    """SIGKILL: no goodbye, no release. Its presence and slots expire with the TTL."""
    ttl = 2.0
    async with serve_one(redis_server, ttl) as (address, process):
        key = "voiceagent:room:room-1"
        async with room(address, "room-1", with_token=token("alice")):
            assert redis_server.call("HGET", key, "sub") == "alice"
            await trio.sleep(ttl)  # a heartbeat or two have kept it
            assert redis_server.call("EXISTS", key) == 1
            os.kill(process.pid, signal.SIGKILL)
            killed_at = trio.current_time()
            async with instance(redis_server, auth_secret=SECRET, max_sessions_per_user=1) as b:
                # Another user may not take it yet, nor alice open a second room.
                assert await rejection(b.address, "room-1", with_token=token("bob")) == 403
                assert await rejection(b.address, "room-2", with_token=token("alice")) == 429
                await eventually(lambda: redis_server.call("EXISTS", key) == 0, within=ttl + 1)
                assert trio.current_time() - killed_at <= ttl + 1
                async with room(b.address, "room-1", with_token=token("bob")):
                    assert redis_server.call("HGET", key, "sub") == "bob"
                async with room(b.address, "room-2", with_token=token("alice")):
                    pass


async def test_a_stopped_instance_releases_its_rooms_at_once(redis_server: RedisServer) -> None:
    """SIGTERM closes the rooms (1001), and their releases reach Redis before the exit."""
    async with serve_one(redis_server, ttl=600) as (address, process):
        async with room(address, "room-1", with_token=token("alice")) as live:
            assert redis_server.call("EXISTS", "voiceagent:room:room-1") == 1
            process.terminate()
            assert await live.wait_closed() == 1001
            with trio.fail_after(15):
                assert await process.wait() == 0
    assert redis_server.call("EXISTS", "voiceagent:room:room-1") == 0
    assert redis_server.call("EXISTS", "voiceagent:slots:sub:alice") == 0


def test_serve_refuses_several_workers_without_redis() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEAGENT_REDIS")}
    command = [sys.executable, "-m", "voiceagent", "serve", "--port", str(free_port()),
               "--workers", "2"]  # fmt: skip
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--workers 2 needs VOICEAGENT_REDIS_URL" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("value", ["localhost:6379", "http://redis"])
def test_a_bad_redis_url_fails_at_start(value: str) -> None:
    from voiceagent.config import ConfigError, Settings

    with pytest.raises(ConfigError, match="VOICEAGENT_REDIS_URL"):
        Settings.from_env({"VOICEAGENT_REDIS_URL": value}, dotenv=False)


async def test_a_lost_replace_message_is_made_up_by_the_heartbeat(
    redis_server: RedisServer,
) -> None:
    """Pub/sub delivers at most once: if the `replace` never arrives, the old holder
    finds at its next heartbeat that its claim was taken, and closes with 1012."""
    async with instance(redis_server) as a:
        async with room(a.address, "room-1") as first:
            key = "voiceagent:room:room-1"
            # Another instance's claim whose message was lost on the way.
            redis_server.call("HSET", key, "instance", "elsewhere", "token", "theirs")
            await first.send(type="text", text="anyone?")
            await first.wait_for("response_done")  # nothing noticed yet
            await a.registry.refresh()
            assert (await first.wait_for("error"))["code"] == "replaced"
            assert await first.wait_closed() == 1012
        assert redis_server.call("HGET", key, "token") == "theirs"  # not released by A


async def test_serve_workers_share_the_redis_registry(redis_server: RedisServer) -> None:
    """`voiceagent serve --workers 2`: connections for one room id land on either
    worker, and each new one replaces the previous exactly once."""
    from tests.test_package import _serve_workers, _stop

    port = free_port()
    process, workers = await _serve_workers(port, 2, redis_server)
    try:
        url = f"ws://127.0.0.1:{port}/ws/shared-room"
        holders: set[str] = set()  # instance ids are host-pid-random
        async with trio.open_nursery() as nursery:
            previous: trio.MemoryReceiveChannel[int | None] | None = None
            for _ in range(30):  # until both workers held it (2**-29 to fail by chance)
                send, receive = trio.open_memory_channel[int | None](1)
                opened = trio.Event()
                nursery.start_soon(_hold, url, opened, send)
                with trio.fail_after(10):
                    await opened.wait()
                if previous is not None:
                    with trio.fail_after(10):
                        assert await previous.receive() == 1012
                key = "voiceagent:room:shared-room"
                holders.add(str(redis_server.call("HGET", key, "instance")))
                previous = receive
                if len(holders) == 2:
                    break
            nursery.cancel_scope.cancel()
        assert {holder.split("-")[-2] for holder in holders} == {str(pid) for pid in workers}
    finally:
        await _stop(process, within=15)


async def _hold(url: str, opened: trio.Event, closed: trio.MemorySendChannel[int | None]) -> None:
    from trio_websocket import ConnectionClosed, open_websocket_url

    async with open_websocket_url(url) as ws:
        await ws.get_message()  # session_started
        opened.set()
        try:
            while True:
                await ws.get_message()
        except ConnectionClosed as exc:
            await closed.send(exc.reason.code)
