"""The interruption policy over the Realtime protocol (emulated Azure on 127.0.0.1).

The session asks the provider not to answer or cancel by itself (`create_response` and
`interrupt_response` false in `turn_detection`); speech over the agent pauses it, a
backchannel is deleted from the provider's conversation and playback resumes, real
words cancel the response and are answered with `response.create`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from tests.conftest import Client, connect, running_app
from voiceagent.config import Settings
from voiceagent.emulators.realtime import EmulatorConfig, serve_realtime
from voiceagent.models.scripted import tone
from voiceagent.providers import build_services
from voiceagent.tts.scripted import ScriptedTTS

QUESTION = "What is the baggage allowance?"


class QueuedTranscriber:
    """The next of `texts` for each committed utterance (then the question again)."""

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)

    async def __call__(self, pcm: bytes, sample_rate: int) -> str:
        return self.texts.pop(0) if self.texts else QUESTION


@asynccontextmanager
async def azure_stack(*spoken: str) -> AsyncIterator[str]:
    config = EmulatorConfig(transcriber=QueuedTranscriber(*spoken), audio_rtf=0.25)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_API_KEY": "test-key",
                "AZURE_OPENAI_REALTIME_URL": (
                    f"ws://127.0.0.1:{port}/openai/v1/realtime?model=voice-demo"
                ),
                "VOICEAGENT_TTS": "none",
            }
        )
        services = build_services(settings)
        services.tts = ScriptedTTS(realtime_factor=0.25)  # deterministic and paced
        async with running_app(services) as address:
            yield address
        nursery.cancel_scope.cancel()


async def speak(client: Client, speech_ms: int) -> None:
    speech = tone(speech_ms, amplitude=9000)
    silence = b"\x00\x00" * 24000  # one second: the provider's VAD ends the turn
    for chunk in (speech, silence):
        for offset in range(0, len(chunk), 960):
            await client.send_audio(chunk[offset : offset + 960])
            await trio.sleep(0.002)


async def agent_talking(client: Client) -> str:
    await client.send(type="text", text=QUESTION)
    start = await client.wait_for("audio_start", within=20)
    with trio.fail_after(10):
        while len(client.audio) < 3:
            await client.receive()
    return str(start["response_id"])


async def test_a_backchannel_is_dropped_at_the_provider_and_playback_resumes() -> None:
    async with azure_stack("Mm-hmm.") as address, connect(address) as client:
        rid = await agent_talking(client)
        await speak(client, 700)
        resumed = await client.wait_for("playback_resume", within=10)
        assert resumed["response_id"] == rid and resumed["reason"] == "backchannel"
        end = await client.wait_for("audio_end", within=30, where=lambda e: e["response_id"] == rid)
        frames = sum(len(f) for owner, f in client.audio if owner == rid)
        assert frames // 48 == end["audio_ms"]  # every byte, once
        await client.drain(0.5)
        assert client.of_type("audio_interrupted") == []
        assert client.of_type("user_transcript") == []
        # The provider answered nothing: no response began after the pause.
        paused = client.order.index(("event", "playback_pause"))
        assert ("event", "response_start") not in client.order[paused:]


async def test_real_words_cancel_the_response_and_are_answered() -> None:
    async with azure_stack("Stop, wait, I need something else.") as address:
        async with connect(address) as client:
            rid = await agent_talking(client)
            await speak(client, 1200)
            interrupted = await client.wait_for("audio_interrupted", within=10)
            assert interrupted["response_id"] == rid
            transcript = await client.wait_for("user_transcript", within=10)
            assert transcript["text"] == "Stop, wait, I need something else."
            # The session asked for the answer itself (response.create).
            later = await client.wait_for(
                "response_start", within=20, where=lambda e: e["response_id"] != rid
            )
            assert later
            cut = client.order.index(("event", "audio_interrupted"))
            stale = [o for kind, o in client.order[cut:] if kind == "audio" and o == rid]
            assert stale == []
