"""Resume: a reconnect to the same room continues its conversation (real sockets)."""

from __future__ import annotations

from typing import Any

import orjson
import trio
from trio_websocket import open_websocket_url

from tests.conftest import Client, connect, running_app
from tests.store.conftest import backend_for
from tests.store.conversation import conversation_model, converse, shown, store_services
from voiceagent.access.tokens import mint_token
from voiceagent.config import Settings
from voiceagent.conversation import ConversationItem
from voiceagent.emulators.realtime import EmulatorConfig, serve_realtime
from voiceagent.emulators.realtime_parts import CannedTranscriber
from voiceagent.providers import build_services
from voiceagent.store.writer import Store

SECRET = "s" * 40


def without_suffix(item: dict[str, Any]) -> dict[str, Any]:
    """A restored item as first shown: its id without the `@<connection>` suffix."""
    return {**item, "id": item["id"].rsplit("@", 1)[0]}


async def test_reconnect_resumes_the_page_the_model_and_the_agent(
    database: dict[str, str],
) -> None:
    model = conversation_model()
    services = store_services(backend_for(database), model)
    async with running_app(services) as address:
        async with connect(address, "resume-room") as first:
            await converse(first)
        page = shown(first)
        async with connect(address, "resume-room") as second:
            started = await second.wait_for("session_started")
            assert started["agent"] == "Specialist"  # the agent that spoke last
            restored = [(await second.wait_for("history_added"))["item"] for _ in range(len(page))]
            assert [without_suffix(item) for item in restored] == page
            await second.send(type="text", text="what did you say?")
            await second.wait_for("text_done")
    given = [entry for kind, entry in model.log if kind == "history"]
    assert len(given) == 1  # once, on the second connection's model connect
    items: list[ConversationItem] = given[0]
    cut = items[-1]
    assert (cut.role, cut.status) == ("assistant", "interrupted")
    assert cut.text == page[-1]["text"]  # what the user heard, not the whole reply
    assert {i.type for i in items} == {"message", "function_call", "function_call_output"}
    report = backend_for(database).rows(
        "SELECT resumed_items FROM connections WHERE session_id = ? ORDER BY started_at",
        ["resume-room"],
    )
    assert [row["resumed_items"] for row in report] == [0, len(page)]


async def test_no_resume_after_the_window_or_for_another_user(tmp_path: Any) -> None:
    settings = Settings(resume_window_s=1.0, auth_secret=SECRET)
    services = store_services(
        backend_for({"VOICEAGENT_DATA_DIR": str(tmp_path)}), settings=settings
    )

    async def visit(address: str, sub: str, text: str | None = None) -> list[Any]:
        """Open win-room as `sub` (saying `text`); the history it was shown."""
        token = mint_token(SECRET, sub=sub, room="win-room", ttl_s=60)
        async with open_websocket_url(f"ws://{address}/ws/win-room?token={token}") as ws:
            client = Client(ws)
            await client.wait_for("session_started")
            if text is not None:
                await client.send(type="text", text=text)
                await client.wait_for("text_done")
            await client.drain(0.3)
            return client.of_type("history_added")

    async with running_app(services) as address:
        said = await visit(address, "alice", "where is my order")
        assert len(await visit(address, "alice")) == len(said)  # within the window
        await trio.sleep(1.3)  # past the window since alice left
        assert await visit(address, "alice") == []
        assert await visit(address, "mallory") == []  # within the window, another user


async def test_realtime_model_receives_the_earlier_items(tmp_path: Any) -> None:
    received: list[dict[str, Any]] = []

    def trace(direction: str, text: str) -> None:
        if direction == "in":
            received.append(orjson.loads(text))

    config = EmulatorConfig(transcriber=CannedTranscriber("hello"), trace=trace)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_API_KEY": "test-key",
                "AZURE_OPENAI_REALTIME_URL": (
                    f"ws://127.0.0.1:{port}/openai/v1/realtime?model=voice-demo"
                ),
                "VOICEAGENT_TTS": "none",
                "VOICEAGENT_DATA_DIR": str(tmp_path),
            }
        )
        services = build_services(settings)
        assert isinstance(services.store, Store)
        async with running_app(services) as address:
            async with connect(address, "rt-room") as first:
                await first.send(type="text", text="What is the baggage allowance?")
                done = await first.wait_for("text_done", within=20)
                await first.wait_for("response_done", within=20)
            received.clear()
            async with connect(address, "rt-room") as second:
                await second.wait_for("session_started")
                await second.send(type="text", text="and for children?")
                await second.wait_for("text_done", within=20)
        nursery.cancel_scope.cancel()
    created = [m["item"] for m in received if m["type"] == "conversation.item.create"]
    texts = [part["text"] for item in created for part in item.get("content", [])]
    # The earlier turn first (user, then the reply as heard), then the new message.
    assert texts == ["What is the baggage allowance?", done["text"], "and for children?"]
    kinds = [(item["type"], item.get("role")) for item in created]
    assert kinds == [
        ("message", "user"),
        ("function_call", None),  # the airline agent looked the answer up
        ("function_call_output", None),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert created[1]["call_id"] == created[2]["call_id"]
