"""The official `openai` SDK realtime client completes sessions against the emulator.

The SDK is asyncio-based (its client is built on `websockets.asyncio`), so it runs in a
worker thread with its own event loop while the emulator serves on the test's Trio loop;
`websocket_base_url` points it at the emulator's `ws://127.0.0.1` address.
"""

from __future__ import annotations

import asyncio
from typing import Any

import trio

from tests.realtime.conftest import KEY, ScriptedBrain


async def _ga_session(port: int) -> dict[str, Any]:
    import openai

    client = openai.AsyncOpenAI(api_key=KEY, websocket_base_url=f"ws://127.0.0.1:{port}/openai/v1")
    seen: dict[str, Any] = {"types": [], "text": ""}
    async with client.realtime.connect(
        model="my-deployment", extra_headers={"api-key": KEY, "Authorization": openai.Omit()}
    ) as conn:
        await conn.session.update(
            session={"type": "realtime", "instructions": "be brief", "output_modalities": ["text"]}
        )
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            }
        )
        await conn.response.create()
        async for event in conn:
            seen["types"].append(event.type)
            if event.type == "response.output_text.delta":
                seen["text"] += event.delta
            if event.type == "response.done":
                seen["status"] = event.response.status
                break
    return seen


async def _beta_session(port: int) -> dict[str, Any]:
    import openai

    client = openai.AsyncAzureOpenAI(
        azure_endpoint=f"http://127.0.0.1:{port}",
        api_key=KEY,
        api_version="2025-04-01-preview",
        websocket_base_url=f"ws://127.0.0.1:{port}/openai",
    )
    seen: dict[str, Any] = {"types": [], "text": ""}
    async with client.beta.realtime.connect(model="my-deployment") as conn:
        await conn.session.update(session={"modalities": ["text"], "instructions": "be brief"})
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            }
        )
        await conn.response.create()
        async for event in conn:
            seen["types"].append(event.type)
            if event.type == "response.text.delta":
                seen["text"] += event.delta
            if event.type == "response.done":
                seen["status"] = event.response.status
                break
    return seen


def _in_asyncio(session: Any, port: int) -> dict[str, Any]:
    async def bounded() -> dict[str, Any]:
        return await asyncio.wait_for(session(port), 20)

    return asyncio.run(bounded())


async def test_official_sdk_completes_a_ga_session(start_emulator):
    emu = await start_emulator(brain_factory=lambda: ScriptedBrain("Hi!", call_tools=False))
    seen = await trio.to_thread.run_sync(_in_asyncio, _ga_session, emu.port)
    assert seen["types"][:2] == ["session.created", "session.updated"]
    assert seen["text"] == "Hi! (be brief)"
    assert seen["status"] == "completed"


async def test_official_sdk_completes_a_preview_session(start_emulator):
    emu = await start_emulator(brain_factory=lambda: ScriptedBrain("Hi!", call_tools=False))
    seen = await trio.to_thread.run_sync(_in_asyncio, _beta_session, emu.port)
    assert "conversation.item.created" in seen["types"]
    assert seen["text"] == "Hi! (be brief)"
    assert seen["status"] == "completed"
