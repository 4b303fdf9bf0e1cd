"""deploy/nginx.conf as shipped, in front of three `voiceagent serve` instances on
127.0.0.1: a room id always reaches the same instance, the ids spread over all three,
and a handshake refused by a draining instance (503) is tried on the next one."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from trio_websocket import open_websocket_url

from tests.conftest import Client
from tests.infra import (
    ADMIN_TOKEN,
    Instance,
    emulated_openai_env,
    nginx,
    nginx_available,
    realtime_emulator,
    voiceagent_fleet,
)

pytestmark = pytest.mark.skipif(not nginx_available(), reason="nginx is not installed")

ROOMS = [f"room-{index}" for index in range(12)]


async def placement(instances: list[Instance]) -> dict[str, str]:
    return {room: one.name for one in instances for room in await one.session_ids()}


async def test_nginx_routes_each_room_id_to_one_instance(tmp_path: Path) -> None:
    async with realtime_emulator(tmp_path / "emulator", "--canned", "Hello.") as (port, _):
        env = emulated_openai_env(port)
        async with voiceagent_fleet(tmp_path, 3, env) as instances:
            ports = [instance.port for instance in instances]
            async with nginx(tmp_path / "nginx", ports) as address:
                seen = []
                for order in (ROOMS, ROOMS[::-1]):
                    async with AsyncExitStack() as exits:
                        for session_id in order:
                            url = f"ws://{address}/ws/{session_id}"
                            ws = await exits.enter_async_context(open_websocket_url(url))
                            await Client(ws).wait_for("session_started")
                        seen.append(await placement(instances))
                assert set(seen[0]) == set(ROOMS) and seen[0] == seen[1]
                assert len(set(seen[0].values())) == 3, seen[0]

                # Drain the instance of room-0: its id is refused there (503) and
                # nginx takes the next instance of the ring.
                drained = next(one for one in instances if one.name == seen[0][ROOMS[0]])
                auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                async with httpx.AsyncClient() as http:
                    url = f"http://{drained.address}/admin/drain"
                    assert (await http.post(url, headers=auth)).status_code == 202
                async with open_websocket_url(f"ws://{address}/ws/{ROOMS[0]}") as ws:
                    await Client(ws).wait_for("session_started")
                    moved = await placement(instances)
                assert moved[ROOMS[0]] != drained.name
