"""`voiceagent serve` stopped mid-conversation: SIGTERM loses nothing, SIGKILL at most
the last VOICEAGENT_STORE_FLUSH_MS (plus one write) of items. Real processes, real
sockets, SQLite and PostgreSQL."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from tests.conftest import Client
from tests.store.conftest import backend_for
from tests.test_serve_transport import SERVE, server

# What one write may take on a loaded 2-core test machine, on top of FLUSH_MS.
WRITE_MARGIN_S = 0.5


async def turn(client: Client, text: str) -> None:
    await client.send(type="text", text=text)
    await client.wait_for("text_done", within=20)
    await client.wait_for("response_done", within=20)


def final_ids(client: Client) -> set[str]:
    items: list[dict[str, Any]] = client.of_type("history_updated")[-1]["items"]
    return {item["id"] for item in items if item["status"] != "in_progress"}


async def test_sigterm_loses_nothing(database: dict[str, str], tmp_path: Path) -> None:
    # A flush interval far longer than the test: only the shutdown flush can write.
    env = {**database, "VOICEAGENT_STORE_FLUSH_MS": "30000"}
    async with server(SERVE, tmp_path / "serve.log", **env) as (process, address):
        async with open_websocket_url(f"ws://{address}/ws/term-room") as ws:
            client = Client(ws)
            await client.wait_for("session_started")
            for text in ("hello", "what is my flight status", "thanks"):
                await turn(client, text)
            shown = final_ids(client)
            process.send_signal(signal.SIGTERM)
            with trio.fail_after(20):
                await process.wait()
    assert process.returncode == 0
    backend = backend_for(database)
    stored = {record.item_id for record in backend.items("term-room")}
    assert shown and stored == shown
    (row,) = backend.rows("SELECT close_code, billing FROM connections", [])
    assert row["close_code"] == 1001 and row["billing"]


async def test_sigkill_loses_at_most_the_flush_interval(
    database: dict[str, str], tmp_path: Path
) -> None:
    flush_ms = 100
    env = {**database, "VOICEAGENT_STORE_FLUSH_MS": str(flush_ms)}
    async with server(SERVE, tmp_path / "serve.log", **env) as (process, address):
        async with open_websocket_url(f"ws://{address}/ws/kill-room") as ws:
            client = Client(ws)
            await client.wait_for("session_started")
            await turn(client, "hello")
            await turn(client, "what is my flight status")
            safe = final_ids(client)  # final longer than the bound before the kill
            await trio.sleep(flush_ms / 1000 + WRITE_MARGIN_S)
            await turn(client, "thanks")  # may be lost: final just before the kill
            process.kill()
            with trio.fail_after(10):
                await process.wait()
    stored = {record.item_id for record in backend_for(database).items("kill-room")}
    assert safe and safe <= stored
