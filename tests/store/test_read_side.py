"""The read side over real sockets: the admin report, the list, and the export."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import trio

from tests.conftest import connect, running_app
from tests.store.conftest import backend_for
from tests.store.conversation import converse, shown, store_services
from voiceagent.app import create_app
from voiceagent.config import Settings

ADMIN = "admin-token-for-store-tests"
SCHEMA = Path(__file__).parent.parent.parent / "docs" / "session-report.schema.json"


def page_items(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's items in the page's shape (id, role, type, text, status, agent, name)."""
    shaped = []
    for item in report["items"]:
        text = item["text"]
        if item["type"] == "function_call":
            text = item["arguments"]
        elif item["type"] == "function_call_output":
            text = item["output"]
        entry = {k: item[k] for k in ("id", "role", "type", "status", "agent")}
        entry["text"] = text
        if item["name"] is not None:
            entry["name"] = item["name"]
        shaped.append(entry)
    return shaped


def check_report(report: dict[str, Any], page: list[dict[str, Any]]) -> None:
    assert report["session_id"] == "read-room"
    assert page_items(report) == page
    assert len(report["connections"]) == 1
    assert report["connections"][0]["close_code"] == 1000
    kinds = [event["kind"] for event in report["timeline"]]
    assert kinds[0] == "connected" and kinds[-1] == "closed"
    assert "handoff" in kinds and "barge_in" in kinds
    assert len(report["turns"]) >= 2
    assert set(report["usage"]) >= {"input_tokens", "output_tokens"}
    validate(report)


async def export(database: dict[str, str], cwd: Path, *args: str) -> list[str]:
    """`voiceagent sessions export ...` as an operator runs it; its stdout lines."""
    with trio.fail_after(60):
        done = await trio.run_process(
            [sys.executable, "-m", "voiceagent", "sessions", "export", *args],
            env={**os.environ, **database},
            capture_stdout=True,
            capture_stderr=True,
            cwd=cwd,
        )
    return done.stdout.decode().splitlines()


def validate(report: dict[str, Any]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(report, orjson.loads(SCHEMA.read_bytes()))


async def test_report_list_and_export(database: dict[str, str], tmp_path: Path) -> None:
    settings = Settings(admin_token=ADMIN)
    services = store_services(backend_for(database), settings=settings)
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    async with running_app(services) as address:
        async with connect(address, "read-room") as client:
            await converse(client)
        page = shown(client)
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            assert (await http.get("/admin/sessions/read-room")).status_code == 401
            response = await http.get("/admin/sessions/read-room", headers=bearer)
            assert response.status_code == 200
            check_report(response.json(), page)
            assert (await http.get("/admin/sessions/nobody", headers=bearer)).status_code == 404
            listed = await http.get(
                "/admin/sessions", params={"since": time.time() - 60}, headers=bearer
            )
            assert [row["session_id"] for row in listed.json()["stored"]] == ["read-room"]
            later = await http.get(
                "/admin/sessions", params={"since": "2999-01-01T00:00:00"}, headers=bearer
            )
            assert later.json()["stored"] == []
            bad = await http.get("/admin/sessions", params={"since": "soon"}, headers=bearer)
            assert bad.status_code == 400
    # The export, as an operator runs it.
    lines = await export(database, tmp_path, "--format", "jsonl")
    assert len(lines) == 1
    check_report(orjson.loads(lines[0]), page)
    # Started less than a minute ago: in; since a time to come: out.
    assert len(await export(database, tmp_path, "--since", "1m")) == 1
    assert await export(database, tmp_path, "--since", str(time.time() + 3600)) == []


async def test_without_a_token_reads_are_for_loopback_only(tmp_path: Path) -> None:
    services = store_services(backend_for({"VOICEAGENT_DATA_DIR": str(tmp_path)}))
    async with running_app(services) as address:
        async with connect(address, "read-room") as client:
            await client.send(type="text", text="where is my order")
            await client.wait_for("text_done", where=lambda e: e["text"].startswith("Done:"))
        async with httpx.AsyncClient(base_url=f"http://{address}") as http:
            assert (await http.get("/admin/sessions/read-room")).status_code == 200
            assert (await http.get("/admin/sessions")).status_code == 200
            # Kick and mute need the token: they do not exist without it.
            assert (await http.post("/admin/sessions/read-room/kick")).status_code in (404, 405)
    # The same routes asked from another address are not there.
    app = create_app(services=store_services(backend_for({"VOICEAGENT_DATA_DIR": str(tmp_path)})))
    remote = {"client": ("192.0.2.7", 40000)}
    test_client = app.test_client()
    for path in ("/admin/sessions/read-room", "/admin/sessions"):
        response = await test_client.get(path, scope_base=remote)
        assert response.status_code == 404
