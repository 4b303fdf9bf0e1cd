"""A scripted conversation with a tool call, a handoff and a barge-in, for store tests."""

from __future__ import annotations

from typing import Any

import trio

from tests.conftest import Client, make_services
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.session.services import Services
from voiceagent.store.backend import SqlBackend
from voiceagent.store.writer import Store
from voiceagent.tts.scripted import ScriptedTTS

LONG_REPLY = " ".join(f"word{i}" for i in range(60))


def conversation_model() -> ScriptedModel:
    return ScriptedModel(
        replies={
            "order": ScriptedReply(calls=(("lookup_order", '{"order_id": "A12"}'),)),
            "transfer": ScriptedReply(
                calls=(("transfer_to_specialist", "{}"),), after_tools="Hi, specialist here."
            ),
        },
        default=ScriptedReply(LONG_REPLY),
        delta_delay=0.002,
    )


def store_services(
    backend: SqlBackend,
    model: ScriptedModel | None = None,
    *,
    settings: Settings | None = None,
    flush_ms: int = 50,
) -> Services:
    services = make_services(
        model or conversation_model(),
        ScriptedTTS(realtime_factor=0.25),
        agent=front_desk,
        settings=settings,
    )
    services.store = Store(backend, flush_ms=flush_ms)
    return services


async def converse(client: Client) -> dict[str, Any]:
    """Three turns: a tool call, a handoff, a story cut after 700 ms. Returns the
    `audio_interrupted` event."""
    await client.send(type="text", text="where is my order")
    await client.wait_for("text_done", where=lambda e: e["text"].startswith("Done:"))
    await client.wait_for("audio_end")
    await client.send(type="text", text="transfer me please")
    await client.wait_for("text_done", where=lambda e: e["text"] == "Hi, specialist here.")
    await client.wait_for("audio_end")
    await client.send(type="text", text="tell me a long story")
    start = await client.wait_for("audio_start")
    with trio.fail_after(5):
        while sum(1 for owner, _ in client.audio if owner == start["response_id"]) < 25:
            await client.receive()
    await client.send(type="playback", response_id=start["response_id"], played_ms=700)
    await client.send(type="interrupt")
    interrupted = await client.wait_for("audio_interrupted")
    await client.drain(0.5)
    return interrupted


def shown(client: Client) -> list[dict[str, Any]]:
    """The conversation as the page shows it: the last `history_updated` snapshot."""
    return client.of_type("history_updated")[-1]["items"]
