"""The offline model end to end: spoken turns in, cloud-model events out."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
import trio

from tests.speech.sounds import frames, silence, white_noise
from voiceagent.brain import OfflineBrain
from voiceagent.conversation import AgentSetup, BrainReply, ConversationItem, Heard, ToolSpec
from voiceagent.events import (
    FunctionCall,
    InputCommitted,
    ModelError,
    ModelEvent,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptCompleted,
)
from voiceagent.models.base import ModelConnection, ModelConnectionError
from voiceagent.models.offline import OfflineModel, OfflineModelConfig, word_chunks

FAQ = AgentSetup(
    agent_name="faq",
    instructions="Answer questions about baggage, pets and wifi.",
    tools=(
        ToolSpec(
            name="faq_lookup",
            description="Look up the answer to a question about baggage, pets or wifi.",
            parameters={
                "type": "object",
                "properties": {"question": {"type": "string", "description": "the question"}},
                "required": ["question"],
            },
            examples=("what is the baggage allowance", "can I bring my dog"),
        ),
    ),
)
SEATS = AgentSetup(
    agent_name="seats",
    instructions="Change seats.",
    tools=(
        ToolSpec(
            name="update_seat",
            description="Change the passenger's seat.",
            parameters={
                "type": "object",
                "properties": {"seat": {"type": "string", "description": "the new seat"}},
                "required": ["seat"],
            },
            examples=("change my seat", "I want a window seat"),
        ),
    ),
)
ANSWER = "You may check one bag of twenty three kilos and bring one small carry on bag."


@asynccontextmanager
async def connected(
    setup: AgentSetup = FAQ, model: OfflineModel | None = None
) -> AsyncIterator[ModelConnection]:
    model = model or OfflineModel(
        OfflineModelConfig(delta_interval_s=0.0), brain_factory=OfflineBrain
    )
    with trio.fail_after(60):
        async with model.connect(setup, output="text") as connection:
            yield connection


async def next_event(connection: ModelConnection, kind: type) -> ModelEvent:
    """Skip to the next event of `kind`; fails (instead of hanging) after 30 s."""
    with trio.fail_after(30):
        async for event in connection:
            if isinstance(event, kind):
                return event
    raise AssertionError(f"events ended before a {kind.__name__}")


async def events_until_done(connection: ModelConnection) -> list[ModelEvent]:
    seen: list[ModelEvent] = []
    with trio.fail_after(30):
        async for event in connection:
            seen.append(event)
            if isinstance(event, ResponseDone):
                return seen
    raise AssertionError("events ended before ResponseDone")


def pending_events(connection: ModelConnection) -> list[ModelEvent]:
    """Events already emitted and not yet read (without waiting)."""
    channel = connection._events_rx  # type: ignore[attr-defined]
    seen = []
    while True:
        try:
            seen.append(channel.receive_nowait())
        except trio.WouldBlock:
            return seen


async def test_a_spoken_question_becomes_a_turn_and_an_answer(spoken_turn: bytes) -> None:
    async with connected() as connection:
        for frame in frames(spoken_turn):  # 20 ms frames, faster than real time
            await connection.send_audio(frame)
        seen = await events_until_done(connection)
        kinds = [type(event) for event in seen]
        assert kinds[:5] == [
            SpeechStarted,
            SpeechStopped,
            InputCommitted,
            TranscriptCompleted,
            ResponseStarted,
        ]
        started, stopped, committed, transcript = seen[:4]
        assert started.item_id == stopped.item_id == committed.item_id == transcript.item_id
        assert stopped.audio_end_ms > started.audio_start_ms
        assert "baggage" in transcript.transcript.lower()
        # The brain picks the FAQ tool with the question as its argument.
        call = next(event for event in seen if isinstance(event, FunctionCall))
        assert call.name == "faq_lookup"
        assert "baggage" in json.loads(call.arguments)["question"]
        assert seen[-1].status == "completed"

        await connection.send_tool_result(call.call_id, ANSWER)
        reply = await events_until_done(connection)
        deltas = [event.delta for event in reply if isinstance(event, TextDelta)]
        done = next(event for event in reply if isinstance(event, TextDone))
        assert len(deltas) > 1  # streamed, not in one piece
        assert "".join(deltas) == done.text
        assert "twenty three" in done.text
        assert reply[-1].status == "completed" and reply[-1].usage is None


async def test_silence_and_noise_make_no_turn() -> None:
    async with connected() as connection:
        for frame in frames(silence(2.0) + white_noise(3.0) + silence(1.0)):
            await connection.send_audio(frame)
        await trio.sleep(0.2)
        assert pending_events(connection) == []


async def test_typed_text_gets_an_answer_even_when_the_tool_answers_at_once() -> None:
    async with connected() as connection:
        await connection.send_text("Can I bring my dog on the plane?")
        seen: list[ModelEvent] = []
        with trio.fail_after(30):
            async for event in connection:
                seen.append(event)
                if isinstance(event, FunctionCall):
                    # Before the model's own task has run again, like a fast session.
                    await connection.send_tool_result(event.call_id, "Small pets may fly.")
                if isinstance(event, TextDone):
                    break
        assert not [event for event in seen if isinstance(event, ModelError)]
        call = next(event for event in seen if isinstance(event, FunctionCall))
        assert call.name == "faq_lookup"
        assert "pets" in seen[-1].text.lower()


async def test_cancel_mid_response_keeps_only_what_was_heard() -> None:
    model = OfflineModel(
        OfflineModelConfig(words_per_delta=1, delta_interval_s=0.05), brain_factory=OfflineBrain
    )
    async with connected(model=model) as connection:
        await connection.send_text("What is the baggage allowance?")
        call = await next_event(connection, FunctionCall)
        await next_event(connection, ResponseDone)
        await connection.send_tool_result(call.call_id, ANSWER)
        first = await next_event(connection, TextDelta)
        await connection.cancel_response(Heard(first.response_id, text="You may"))
        done = await next_event(connection, ResponseDone)
        assert done.response_id == first.response_id
        assert done.status == "cancelled"
        history = connection.history  # type: ignore[attr-defined]
        assert history[-1].role == "assistant" and history[-1].text == "You may"


async def test_cancel_without_a_response_is_harmless() -> None:
    async with connected() as connection:
        await connection.cancel_response(Heard("resp_none", text=""))
        assert pending_events(connection) == []


async def test_speech_during_a_response_is_reported_for_barge_in(spoken_turn: bytes) -> None:
    model = OfflineModel(OfflineModelConfig(delta_interval_s=0.2), brain_factory=OfflineBrain)
    async with connected(model=model) as connection:
        await connection.send_text("What is the baggage allowance?")
        call = await next_event(connection, FunctionCall)
        await next_event(connection, ResponseDone)
        await connection.send_tool_result(call.call_id, ANSWER)
        await next_event(connection, TextDelta)
        for frame in frames(spoken_turn[: len(spoken_turn) // 2 // 2 * 2]):
            await connection.send_audio(frame)
        started = await next_event(connection, SpeechStarted)
        assert started.audio_start_ms >= 0


class TwoCalls:
    """A brain that makes two calls at once, then reports how many outputs it saw."""

    def respond(self, setup: AgentSetup, history: Sequence[ConversationItem]) -> BrainReply:
        outputs = [item for item in history if item.type == "function_call_output"]
        if outputs:
            return BrainReply(text=f"{len(outputs)} done.")
        return BrainReply(calls=(("faq_lookup", "{}"), ("faq_lookup", "{}")))


async def test_responses_wait_for_every_tool_output() -> None:
    model = OfflineModel(OfflineModelConfig(delta_interval_s=0.0), brain_factory=TwoCalls)
    async with connected(model=model) as connection:
        await connection.send_text("two things please")
        seen = await events_until_done(connection)
        calls = [event for event in seen if isinstance(event, FunctionCall)]
        assert len(calls) == 2
        await connection.send_tool_result(calls[0].call_id, "one")
        await trio.sleep(0.1)
        assert pending_events(connection) == []  # still waiting for the second output
        await connection.send_tool_result(calls[1].call_id, "two")
        reply = await events_until_done(connection)
        assert next(e for e in reply if isinstance(e, TextDone)).text == "2 done."


async def test_answering_each_call_at_once_gives_one_follow_up_with_both() -> None:
    model = OfflineModel(OfflineModelConfig(delta_interval_s=0.0), brain_factory=TwoCalls)
    async with connected(model=model) as connection:
        await connection.send_text("two things please")
        seen: list[ModelEvent] = []
        with trio.fail_after(30):
            async for event in connection:
                seen.append(event)
                if isinstance(event, FunctionCall):
                    # Like the session: each tool answers as soon as its call arrives.
                    await connection.send_tool_result(event.call_id, "ok")
                if isinstance(event, TextDone):
                    break
        assert len([e for e in seen if isinstance(e, FunctionCall)]) == 2
        statuses = [e.status for e in seen if isinstance(e, ResponseDone)]
        assert statuses == ["completed"]  # the call response; nothing was cancelled
        assert seen[-1].text == "2 done."


async def test_handoff_switches_the_tools_in_use() -> None:
    async with connected(FAQ) as connection:
        await connection.update_agent(SEATS)
        await connection.send_text("I want to change my seat to 14C")
        seen = await events_until_done(connection)
        call = next(event for event in seen if isinstance(event, FunctionCall))
        assert call.name == "update_seat"


async def test_commit_without_speech_is_an_error_event() -> None:
    async with connected() as connection:
        await connection.commit_audio()
        error = await next_event(connection, ModelError)
        assert error.code == "input_audio_buffer_commit_empty"


async def test_commit_ends_the_turn_of_a_speaker_still_talking(spoken_question: bytes) -> None:
    async with connected() as connection:
        for frame in frames(silence(0.5) + spoken_question):
            await connection.send_audio(frame)
        await next_event(connection, SpeechStarted)
        await connection.commit_audio()
        await next_event(connection, SpeechStopped)
        transcript = await next_event(connection, TranscriptCompleted)
        assert "baggage" in transcript.transcript.lower()


async def test_audio_output_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ModelConnectionError, match="local TTS"):
        OfflineModel(brain_factory=OfflineBrain).connect(FAQ, output="audio")


async def test_sending_after_close_raises() -> None:
    async with connected() as connection:
        pass
    with pytest.raises(ModelConnectionError):
        await connection.send_text("hello")


@pytest.mark.parametrize("text", ["", "Yes.", "You may check  one bag, and bring one carry on."])
def test_reply_chunks_join_back_to_the_reply(text: str) -> None:
    chunks = word_chunks(text, 3)
    assert "".join(chunks) == text
    assert all(len(chunk.split()) <= 3 for chunk in chunks)
