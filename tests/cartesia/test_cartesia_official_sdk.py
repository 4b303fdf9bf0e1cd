"""The official `cartesia` SDK (asyncio, run in a worker thread) against the emulator."""

from __future__ import annotations

import asyncio
from typing import Any

import trio
from cartesia_helpers import check_client_event, check_server_event, start_emulator

VOICE = {"mode": "id", "id": "a0e99841-438c-4a64-b679-ae501e7d6091"}
FORMAT = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000}


def _stream_with_contexts(base_url: str) -> dict[str, Any]:
    from cartesia import AsyncCartesia

    async def main() -> dict[str, Any]:
        client = AsyncCartesia(api_key="sdk-key", websocket_base_url=base_url)
        async with client.tts.websocket_connect() as conn:
            ctx = conn.context(
                model_id="sonic-3",
                voice=VOICE,
                output_format=FORMAT,
                language="en",
                add_timestamps=True,
            )
            await ctx.push("Hello from the official client, ")
            await ctx.push("streaming in two parts.")
            await ctx.no_more_inputs()
            audio, kinds, words = b"", [], []
            async for event in ctx.receive():
                kinds.append(event.type)
                if event.type == "chunk":
                    audio += event.audio or b""
                elif event.type == "timestamps" and event.word_timestamps:
                    words += event.word_timestamps.words
        await client.close()
        return {"audio": audio, "kinds": kinds, "words": words}

    return asyncio.run(asyncio.wait_for(main(), timeout=20))


def _whole_text_v2_style(base_url: str) -> bytes:
    from cartesia import AsyncCartesia

    async def main() -> bytes:
        client = AsyncCartesia(api_key="sdk-key", websocket_base_url=base_url)
        ws = await client.tts.websocket()
        out = await ws.send(
            model_id="sonic-3",
            transcript="One request.",
            voice=VOICE,
            output_format=FORMAT,
            stream=False,
        )
        await ws.close()
        await client.close()
        return out.audio or b""

    return asyncio.run(asyncio.wait_for(main(), timeout=20))


async def test_official_sdk_streams_a_context_to_done(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, api_key="sdk-key")
    base = emu.url.removesuffix("/tts/websocket")
    result = await trio.to_thread.run_sync(_stream_with_contexts, base)
    assert result["kinds"][-1] == "done"
    assert len(result["audio"]) > 0 and len(result["audio"]) % 2 == 0
    assert result["words"] == "Hello from the official client, streaming in two parts.".split()
    handshake = emu.log.handshakes[0]
    assert handshake["headers"]["authorization"] == "Bearer sdk-key"
    for _, request in emu.log.requests:
        check_client_event(request)
    for _, response in emu.log.responses:
        check_server_event(response)


async def test_official_sdk_whole_text_request(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    base = emu.url.removesuffix("/tts/websocket")
    audio = await trio.to_thread.run_sync(_whole_text_v2_style, base)
    assert len(audio) > 0
    (request,) = [r for _, r in emu.log.requests]
    assert request["continue"] is False
