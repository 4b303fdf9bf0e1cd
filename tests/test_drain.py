"""Draining an instance over real sockets: /healthz turns 503, new rooms are refused,
a room mid-response finishes it before its 1001, an idle room is told at once."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.conftest import Client, connect, make_services, running_app
from tests.infra import emulated_openai_env, realtime_emulator, voiceagent_serve
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.session.services import Services
from voiceagent.tts.scripted import ScriptedTTS

ADMIN = "admin-token-for-drain-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
# Twelve words, 0.1 s apart: a response that takes over a second to write.
LONG_REPLY = "one two three four five six seven eight nine ten eleven twelve"


@asynccontextmanager
async def server(**settings: Any) -> AsyncIterator[tuple[str, Services]]:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), delta_delay=0.1)
    services = make_services(
        model,
        ScriptedTTS(ms_per_char=20),
        agent=front_desk,
        settings=Settings(admin_token=ADMIN, **settings),
    )
    async with running_app(services) as address:
        yield address, services


async def start_drain(address: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"http://{address}/admin/drain", headers=AUTH)
    assert response.status_code == 202, response.text
    return response.json()


async def until_closed(client: Client, within: float) -> tuple[int | None, float]:
    """The close code, and how long after the call it came."""
    began = trio.current_time()
    code = await client.wait_closed(within)
    return code, trio.current_time() - began


def assert_told_to_reconnect(client: Client) -> None:
    last = client.events[-1]
    assert last["type"] == "error" and last["code"] == "server_shutting_down", last
    assert last["reconnect"] is True


async def test_a_room_mid_response_finishes_it_and_an_idle_room_is_told_at_once() -> None:
    async with (
        server(drain_grace_s=10) as (address, services),
        connect(address, "busy") as busy,
        connect(address, "idle") as idle,
    ):
        await busy.wait_for("session_started")
        await idle.wait_for("session_started")
        await busy.send(type="text", text="tell me a story")
        started = await busy.wait_for("response_start")
        await busy.wait_for("text_delta")
        state = await start_drain(address)
        assert state["draining"] is True and state["sessions"] == 2

        async with trio.open_nursery() as nursery:
            closes: dict[str, tuple[int | None, float]] = {}

            async def watch(name: str, client: Client) -> None:
                closes[name] = await until_closed(client, within=10)

            nursery.start_soon(watch, "busy", busy)
            nursery.start_soon(watch, "idle", idle)
        code, after = closes["idle"]
        assert code == 1001 and after < 1.0, closes
        assert_told_to_reconnect(idle)
        code, after = closes["busy"]
        assert code == 1001, closes
        kinds = [e["type"] for e in busy.events]
        done = kinds.index("response_done")
        assert busy.events[done]["response_id"] == started["response_id"]
        assert busy.events[done]["status"] == "completed"
        assert done < kinds.index("error") and kinds.index("audio_end") < kinds.index("error")
        assert_told_to_reconnect(busy)
        assert len(services.registry) == 0


async def test_while_draining_healthz_is_503_and_handshakes_are_refused() -> None:
    async with server(drain_grace_s=10) as (address, _), httpx.AsyncClient() as http:
        before = await http.get(f"http://{address}/healthz")
        assert before.status_code == 200 and before.json()["draining"] is False
        await start_drain(address)
        health = await http.get(f"http://{address}/healthz")
        assert health.status_code == 503
        body = health.json()
        assert body["draining"] is True and body["ready"] is False and body["status"] == "ok"
        with pytest.raises(ConnectionRejected) as caught:
            async with open_websocket_url(f"ws://{address}/ws/newcomer"):
                pass
        assert caught.value.status_code == 503
        headers = dict(caught.value.headers or [])
        assert headers.get(b"retry-after") == b"2"
        again = await http.post(f"http://{address}/admin/drain", headers=AUTH)
        assert again.status_code == 202  # a repeat is harmless


async def test_the_grace_bounds_a_response_that_runs_too_long() -> None:
    async with server(drain_grace_s=0.3) as (address, _), connect(address, "slow") as slow:
        await slow.wait_for("session_started")
        await slow.send(type="text", text="tell me a story")
        await slow.wait_for("text_delta")
        await start_drain(address)
        code, after = await until_closed(slow, within=5)
        assert code == 1001 and after < 1.5
        assert "response_done" not in [e["type"] for e in slow.events]
        assert_told_to_reconnect(slow)


async def test_drain_needs_the_admin_token() -> None:
    async with server() as (address, _), httpx.AsyncClient() as http:
        response = await http.post(f"http://{address}/admin/drain")
        assert response.status_code == 401
        health = await http.get(f"http://{address}/healthz")
        assert health.status_code == 200 and health.json()["draining"] is False


# -- `voiceagent serve` and its signals --------------------------------------------------


async def test_a_second_sigterm_cuts_the_grace_short(tmp_path: Path) -> None:
    """The first SIGTERM drains (the talking room keeps going); a second one, later
    than a second after it, closes the room at once; the process still exits 0."""
    story = " ".join(["a long answer that goes on"] * 12)  # about 20 s of speech
    args = ("--canned", story, "--audio-rtf", "1.0")
    async with realtime_emulator(tmp_path / "emulator", *args) as (port, _):
        env = emulated_openai_env(port) | {"VOICEAGENT_DRAIN_GRACE_S": "60"}
        async with voiceagent_serve("va", tmp_path / "va", env) as instance:
            async with open_websocket_url(f"ws://{instance.address}/ws/talking") as ws:
                client = Client(ws)
                await client.send(type="text", text="tell me a long story")
                await client.wait_for("response_start")
                instance.process.send_signal(signal.SIGTERM)
                await client.drain(1.5)  # still answering: nothing closes
                assert not [e for e in client.events if e["type"] == "error"]
                instance.process.send_signal(signal.SIGTERM)
                code, after = await until_closed(client, within=10)
                assert code == 1001 and after < 3
                assert_told_to_reconnect(client)
            with trio.fail_after(10):
                assert await instance.process.wait() == 0
