"""The Realtime client against the emulator over real sockets: the turns users have."""

from __future__ import annotations

import numpy as np
import pytest
import trio

from tests.realtime.conftest import ScriptedBrain
from voiceagent.conversation import AgentSetup, ToolSpec
from voiceagent.emulators.realtime_parts import CannedBrain
from voiceagent.events import (
    AudioDelta,
    FunctionCall,
    InputCommitted,
    ModelEvent,
    RateLimits,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptCompleted,
)
from voiceagent.models.base import ModelConnection

WEATHER = ToolSpec(
    "get_weather",
    "Get the weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
SETUP = AgentSetup("triage", "You are the triage agent.", (WEATHER,))
PLAIN = AgentSetup("triage", "You are the triage agent.")


def speech(ms: int, level: float = 6000.0) -> bytes:
    t = np.arange(ms * 24) / 24000
    return (level * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(ms * 48)


async def until_done(conn: ModelConnection) -> list[ModelEvent]:
    """Events up to and including the next ResponseDone (hang guard: 10 s)."""
    events: list[ModelEvent] = []
    with trio.fail_after(10):
        async for event in conn:
            events.append(event)
            if isinstance(event, ResponseDone):
                break
    return events


def text_of(events: list[ModelEvent]) -> str:
    return "".join(e.delta for e in events if isinstance(e, TextDelta))


@pytest.mark.parametrize("flavor", ["ga", "beta", "openai"])
async def test_text_turn_streams_the_reply_and_ends_with_usage(start_emulator, flavor):
    emu = await start_emulator(brain_factory=lambda: ScriptedBrain("Hello from the emulator."))
    async with emu.model(flavor).connect(PLAIN, output="text") as conn:
        await conn.send_text("hi there")
        events = await until_done(conn)
    assert isinstance(events[0], ResponseStarted)
    assert any(isinstance(e, RateLimits) and "tokens" in e.limits for e in events)
    assert text_of(events) == "Hello from the emulator. (You are the triage agent.)"
    done = events[-1]
    assert isinstance(done, ResponseDone) and done.status == "completed"
    assert done.usage is not None and done.usage.output_tokens > 0
    assert not [e for e in events if isinstance(e, AudioDelta)]
    # The session was configured from the agent, in the target's own shape.
    session = emu.sent("session.update")[0]["session"]
    assert session["instructions"] == "You are the triage agent."
    assert ("type" in session) == (flavor != "beta")


async def test_openai_target_authenticates_with_bearer_and_azure_with_api_key(start_emulator):
    emu = await start_emulator(brain_factory=ScriptedBrain)
    assert emu.model("openai").endpoint.headers[0] == ("Authorization", "Bearer test-key")
    assert emu.model("ga").endpoint.headers[0] == ("api-key", "test-key")


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_audio_turn_with_server_vad(start_emulator, flavor):
    emu = await start_emulator(brain_factory=lambda: ScriptedBrain("Got it."))
    model = emu.model(flavor, silence_duration_ms=300)
    async with model.connect(PLAIN, output="audio") as conn:
        for chunk in [silence(100), *[speech(100)] * 6, *[silence(100)] * 5]:
            await conn.send_audio(chunk)
        events = await until_done(conn)
    kinds = [type(e) for e in events]
    assert kinds.index(SpeechStarted) < kinds.index(SpeechStopped) < kinds.index(InputCommitted)
    started = next(e for e in events if isinstance(e, SpeechStarted))
    assert 90 <= started.audio_start_ms <= 140  # the speech began after 100 ms of silence
    committed = next(e for e in events if isinstance(e, InputCommitted))
    assert any(
        isinstance(e, TranscriptCompleted) and e.item_id == committed.item_id for e in events
    )
    audio = b"".join(e.pcm for e in events if isinstance(e, AudioDelta))
    assert len(audio) > 0 and len(audio) % 2 == 0
    assert text_of(events).startswith("Got it.")
    done = events[-1]
    assert isinstance(done, ResponseDone) and done.status == "completed"
    assert done.usage is not None and done.usage.output_audio_tokens > 0


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_function_call_round_trip(start_emulator, flavor):
    brain = ScriptedBrain()
    emu = await start_emulator(brain_factory=lambda: brain)
    async with emu.model(flavor).connect(SETUP, output="text") as conn:
        await conn.send_text("weather in Paris?")
        first = await until_done(conn)
        calls = [e for e in first if isinstance(e, FunctionCall)]
        assert [(c.name, c.arguments) for c in calls] == [("get_weather", '{"city": "Paris"}')]
        await conn.send_tool_result(calls[0].call_id, '{"temp": 21}')
        second = await until_done(conn)
    assert text_of(second) == 'The tool said {"temp": 21}'
    # Exactly one follow-up response.create, sent after the output item.
    sent = [e["type"] for _, e in emu.decoded() if _ == "in"]
    after_output = sent[sent.index("conversation.item.create", 2) :]
    assert after_output[:2] == ["conversation.item.create", "response.create"]
    assert sent.count("response.create") == 2


async def test_tool_result_without_respond_starts_no_response(start_emulator):
    brain = ScriptedBrain()
    emu = await start_emulator(brain_factory=lambda: brain)
    async with emu.model().connect(SETUP, output="text") as conn:
        await conn.send_text("weather?")
        call = next(e for e in await until_done(conn) if isinstance(e, FunctionCall))
        await conn.send_tool_result(call.call_id, "ok", respond=False)
        await conn.send_text("and tomorrow?")
        await until_done(conn)
    assert len(emu.sent("response.create")) == 2  # the two user turns only


async def test_tool_result_before_response_done_defers_the_follow_up(start_emulator):
    """A tool that answers before `response.done` must not start a second response early."""
    brain = ScriptedBrain()
    emu = await start_emulator(brain_factory=lambda: brain)
    async with emu.model().connect(SETUP, output="text") as conn:
        await conn.send_text("weather?")
        with trio.fail_after(10):
            async for event in conn:
                if isinstance(event, FunctionCall):
                    await conn.send_tool_result(event.call_id, "sunny")
                if isinstance(event, TextDone):
                    break
    assert not emu.emitted("error")
    assert brain.histories[-1][-1].output == "sunny"


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_handoff_updates_the_live_session(start_emulator, flavor):
    brain = ScriptedBrain(call_tools=False)
    emu = await start_emulator(brain_factory=lambda: brain)
    seats = AgentSetup("seats", "You are the seat agent.", (ToolSpec("book_seat", "Book a seat."),))
    async with emu.model(flavor).connect(PLAIN, output="text") as conn:
        await conn.update_agent(seats)
        await conn.send_text("a window seat please")
        events = await until_done(conn)
    updated = emu.emitted("session.updated")[-1]["session"]
    assert updated["instructions"] == "You are the seat agent."
    assert [t["name"] for t in updated["tools"]] == ["book_seat"]
    assert "(You are the seat agent.)" in text_of(events)
    assert [t.name for t in brain.setups[-1].tools] == ["book_seat"]


async def test_idle_timeout_makes_the_model_speak_after_silence(start_emulator):
    emu = await start_emulator(brain_factory=lambda: CannedBrain("Hm?"))  # 200 ms of audio
    async with emu.model(idle_timeout_ms=100).connect(PLAIN, output="audio") as conn:
        await conn.send_text("hi")
        first = await until_done(conn)
        second = await until_done(conn)  # nobody said anything
    assert first[-1].response_id != second[-1].response_id
    assert second[-1].status == "completed"
    triggered = emu.emitted("input_audio_buffer.timeout_triggered")
    assert len(triggered) == 1
    td = emu.sent("session.update")[0]["session"]["audio"]["input"]["turn_detection"]
    assert td["idle_timeout_ms"] == 100
