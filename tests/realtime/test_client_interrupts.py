"""Barge-in: the response stops and the conversation keeps only what the user heard."""

from __future__ import annotations

import pytest
import trio

from tests.realtime.conftest import ScriptedBrain
from tests.realtime.test_client_turns import PLAIN, silence, speech, until_done
from voiceagent.conversation import Heard
from voiceagent.events import AudioDelta, ResponseDone, SpeechStarted, TextDelta

LONG = "one two three four five six seven eight nine ten eleven twelve"


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_text_mode_interrupt_rewrites_the_item_to_the_heard_text(start_emulator, flavor):
    brain = ScriptedBrain(LONG, call_tools=False)
    emu = await start_emulator(brain_factory=lambda: brain, tokens_per_s=50)
    async with emu.model(flavor).connect(PLAIN, output="text") as conn:
        await conn.send_text("count for me")
        with trio.fail_after(10):
            async for event in conn:
                if isinstance(event, TextDelta):
                    await conn.cancel_response(
                        Heard(event.response_id, event.item_id, text="one two")
                    )
                    break
        done = (await until_done(conn))[-1]
        assert isinstance(done, ResponseDone) and done.status == "cancelled"
        await conn.send_text("go on")
        await until_done(conn)
    assert emu.sent("response.cancel")
    assert not emu.emitted("error")
    history = brain.histories[-1]
    assistant = [item for item in history if item.role == "assistant"]
    assert [item.text for item in assistant] == ["one two"]
    # The heard text sits where the interrupted reply was: right after the user's turn.
    assert [item.role for item in history] == ["user", "assistant", "user"]


async def test_text_mode_interrupt_after_the_response_finished_still_rewrites(start_emulator):
    brain = ScriptedBrain(LONG, call_tools=False)
    emu = await start_emulator(brain_factory=lambda: brain)
    async with emu.model().connect(PLAIN, output="text") as conn:
        await conn.send_text("count")
        done = (await until_done(conn))[-1]
        # The TTS was still speaking when the user barged in.
        await conn.cancel_response(Heard(done.response_id, text="one two three"))
        await conn.send_text("stop")
        await until_done(conn)
    assert not emu.sent("response.cancel")  # nothing was in progress
    assert [i.text for i in brain.histories[-1] if i.role == "assistant"] == ["one two three"]


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_audio_mode_interrupt_truncates_clamped_to_audio_received(start_emulator, flavor):
    brain = ScriptedBrain(LONG, call_tools=False)
    emu = await start_emulator(brain_factory=lambda: brain, audio_rtf=0.05, audio_chunk_ms=100)
    async with emu.model(flavor).connect(PLAIN, output="audio") as conn:
        await conn.send_text("count")
        received = 0
        with trio.fail_after(10):
            async for event in conn:
                if isinstance(event, AudioDelta):
                    received += len(event.pcm)
                    if received >= 3 * 4800:
                        # The client claims more than was ever sent: it must be clamped.
                        await conn.cancel_response(Heard(event.response_id, event.item_id, 60_000))
                        break
        await until_done(conn)
        await conn.send_text("again")
        await until_done(conn)
    truncate = emu.sent("conversation.item.truncate")
    assert len(truncate) == 1
    assert 0 < truncate[0]["audio_end_ms"] <= received // 48
    assert (
        emu.emitted("conversation.item.truncated")[0]["audio_end_ms"] == truncate[0]["audio_end_ms"]
    )
    assert not emu.emitted("error")
    heard = next(i.text for i in brain.histories[-1] if i.role == "assistant")
    assert heard and LONG.startswith(heard) and heard != LONG


async def test_audio_mode_interrupt_keeps_the_audio_actually_played(start_emulator):
    brain = ScriptedBrain(LONG, call_tools=False)
    emu = await start_emulator(brain_factory=lambda: brain, audio_rtf=0.05, audio_chunk_ms=100)
    async with emu.model().connect(PLAIN, output="audio") as conn:
        await conn.send_text("count")
        with trio.fail_after(10):
            async for event in conn:
                if isinstance(event, AudioDelta):
                    await conn.cancel_response(Heard(event.response_id, event.item_id, 40))
                    break
        await until_done(conn)
    assert emu.sent("conversation.item.truncate")[0]["audio_end_ms"] == 40


async def test_server_side_interrupt_is_not_cancelled_twice(start_emulator):
    """With interrupt_response the service cancels on speech start; the client must not."""
    brain = ScriptedBrain(LONG, call_tools=False)
    emu = await start_emulator(brain_factory=lambda: brain, audio_rtf=0.2, audio_chunk_ms=100)
    async with emu.model(silence_duration_ms=300).connect(PLAIN, output="audio") as conn:
        await conn.send_text("count")
        with trio.fail_after(10):
            async for event in conn:
                if isinstance(event, AudioDelta):
                    response_id = event.response_id
                    break
            for chunk in [speech(100)] * 3:
                await conn.send_audio(chunk)
            async for event in conn:
                if isinstance(event, SpeechStarted):
                    await conn.cancel_response(Heard(response_id, None, 100))
                    break
            status = None
            async for event in conn:
                if isinstance(event, ResponseDone):
                    status = event.status
                    break
        for chunk in [silence(100)] * 5:
            await conn.send_audio(chunk)
        await until_done(conn)
    assert status == "cancelled"
    assert not emu.sent("response.cancel")
    assert not emu.emitted("error")


async def test_cancel_with_nothing_in_progress_is_harmless(start_emulator):
    emu = await start_emulator(brain_factory=ScriptedBrain)
    async with emu.model().connect(PLAIN, output="audio") as conn:
        await conn.cancel_response(Heard("resp_unknown", None, 500, "hi"))
        await conn.send_text("hello")
        events = await until_done(conn)
    assert events[-1].status == "completed"
    assert not emu.sent("response.cancel") and not emu.emitted("error")
