"""The emulator's sans-I/O server half, transition by transition, without sockets.

Every server event a test sees is also checked against the official SDK types (with an
``event_id`` added, as the shell adds one when it sends).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest

from tests.realtime.conformance import check_event
from voiceagent.emulators import realtime_responses as steps
from voiceagent.emulators.realtime_items import assistant_message
from voiceagent.emulators.realtime_responses import Phase, ResponseState
from voiceagent.emulators.realtime_server import (
    CancelResponse,
    Output,
    RealtimeServer,
    SetIdleTimer,
    StartResponse,
    Transcribe,
)
from voiceagent.emulators.realtime_session import SessionState
from voiceagent.pcm import BYTES_PER_MS


def make(flavor: str = "ga") -> RealtimeServer:
    return RealtimeServer(flavor, SessionState(id="sess_1abcd", model="my-deployment"))


def send(server: RealtimeServer, event: dict[str, Any] | str | bytes) -> list[Output]:
    message = event if isinstance(event, str | bytes) else orjson.dumps(event).decode()
    outputs = server.receive(message)
    conform(server, outputs)
    return outputs


def conform(server: RealtimeServer, outputs: list[Output]) -> None:
    for out in outputs:
        if isinstance(out, dict):
            check_event(server.flavor, "server", orjson.dumps({"event_id": "e", **out}))


def kinds(outputs: list[Output]) -> list[str]:
    return [o["type"] if isinstance(o, dict) else type(o).__name__ for o in outputs]


def error_of(outputs: list[Output]) -> dict[str, Any]:
    assert kinds(outputs) == ["error"], outputs
    return outputs[0]["error"]  # type: ignore[index]


def audio(pcm: bytes) -> dict[str, Any]:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


def speech(ms: int) -> bytes:
    t = np.arange(ms * 24) / 24000
    return (6000 * np.sin(2 * np.pi * 300 * t)).astype("<i2").tobytes()


def silence(ms: int) -> bytes:
    return bytes(ms * BYTES_PER_MS)


def manual(server: RealtimeServer) -> None:
    send(server, {"type": "session.update", "session": {"type": "realtime", **NO_VAD}})


NO_VAD = {"audio": {"input": {"turn_detection": None}}}


def user_text(text: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }
    if item_id:
        item["id"] = item_id
    return {"type": "conversation.item.create", "item": item}


def start(server: RealtimeServer, **response: Any) -> ResponseState:
    outputs = send(server, {"type": "response.create", "response": response})
    assert kinds(outputs) == ["SetIdleTimer", "StartResponse"]
    start = outputs[1]
    assert isinstance(start, StartResponse)
    return start.response


# ---------------------------------------------------------------- refused messages


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (b"\x00binary", "invalid_value"),
        ("{not json", "invalid_json"),
        ('"a string"', "invalid_type"),
        ('{"type": "response.explode"}', "invalid_value"),
        ('{"type": "output_audio_buffer.clear"}', "invalid_value"),
    ],
)
def test_bad_messages_get_one_error_and_change_nothing(message, code):
    server = make()
    assert error_of(send(server, message))["code"] == code
    assert server.response is None and server.conversation.last_id is None


def test_an_error_carries_the_clients_event_id():
    error = error_of(send(make(), {"type": "response.cancel", "event_id": "c9", "x": 1}))
    assert (error["code"], error["param"], error["event_id"]) == ("unknown_parameter", "x", "c9")


# ---------------------------------------------------------------- session.update


def test_session_update_merges_and_answers_in_the_flavours_shape():
    server = make("ga")
    created = server.session_event()
    assert created["type"] == "session.created" and created["session"]["type"] == "realtime"
    outputs = send(
        server, {"type": "session.update", "session": {"type": "realtime", "instructions": "Hi."}}
    )
    assert kinds(outputs) == ["session.updated"]
    assert outputs[0]["session"]["instructions"] == "Hi."  # type: ignore[index]
    beta = make("beta")
    outputs = send(beta, {"type": "session.update", "session": {"modalities": ["text"]}})
    assert outputs[0]["session"]["modalities"] == ["text"]  # type: ignore[index]


def test_a_refused_session_update_leaves_the_session_as_it_was():
    server = make("ga")
    error = error_of(send(server, {"type": "session.update", "session": {"instructions": "x"}}))
    assert error["param"] == "session.type"
    assert server.session.instructions == ""


def test_new_instructions_after_a_handoff_call_name_the_agent():
    server = make()
    call = {"type": "function_call", "name": "transfer_to_seat_booking", "arguments": "{}"}
    send(server, {"type": "conversation.item.create", "item": {**call, "call_id": "c1"}})
    send(server, {"type": "session.update", "session": {"type": "realtime", "instructions": "S"}})
    assert server.session.agent_setup().agent_name == "seat booking"


# ---------------------------------------------------------------- input audio buffer


def test_append_refuses_audio_that_is_not_base64():
    server = make()
    error = error_of(send(server, {"type": "input_audio_buffer.append", "audio": "@@@"}))
    assert (error["code"], error["param"]) == ("invalid_value", "audio")
    assert server.input.ms == 0


def test_manual_commit_needs_100_ms_then_makes_a_user_item_to_transcribe():
    server = make()
    manual(server)
    assert send(server, audio(silence(60))) == []
    error = error_of(send(server, {"type": "input_audio_buffer.commit"}))
    assert error["code"] == "input_audio_buffer_commit_empty"
    assert "only has 60.00ms" in error["message"]
    send(server, audio(silence(60)))
    outputs = send(server, {"type": "input_audio_buffer.commit"})
    assert kinds(outputs) == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "Transcribe",
    ]
    job = outputs[-1]
    assert isinstance(job, Transcribe) and len(job.pcm) == 120 * BYTES_PER_MS
    item = server.conversation.get(job.item_id)
    assert item is not None and item.audio_ms == 120 and server.input.ms == 0


def test_clear_empties_the_buffer():
    server = make()
    manual(server)
    send(server, audio(silence(300)))
    assert kinds(send(server, {"type": "input_audio_buffer.clear"})) == [
        "input_audio_buffer.cleared"
    ]
    assert server.input.ms == 0


def test_transcripts_reach_the_item_and_events_only_when_enabled():
    server = make()
    manual(server)
    send(server, audio(silence(200)))
    quiet = send(server, {"type": "input_audio_buffer.commit"})[-1]
    transcription = {"transcription": {"model": "whisper-1"}}
    enable = {"audio": {"input": transcription}}
    send(server, {"type": "session.update", "session": {"type": "realtime", **enable}})
    send(server, audio(silence(200)))
    loud = send(server, {"type": "input_audio_buffer.commit"})[-1]
    assert isinstance(quiet, Transcribe) and isinstance(loud, Transcribe)
    assert server.transcribed(quiet.item_id, "first words") == []
    outputs = server.transcribed(loud.item_id, "book a seat")
    conform(server, outputs)
    assert kinds(outputs)[-1] == "conversation.item.input_audio_transcription.completed"
    deltas = [o["delta"] for o in outputs if o["type"].endswith(".delta")]  # type: ignore[index]
    assert "".join(deltas) == "book a seat"
    assert [i.text for i in server.conversation.history()] == ["first words", "book a seat"]


def test_a_failed_transcription_is_reported_and_leaves_an_empty_transcript():
    server = make()
    send(server, {"type": "session.update", "session": {"type": "realtime", **NO_VAD}})
    enable = {"audio": {"input": {"transcription": {"model": "whisper-1"}}}}
    send(server, {"type": "session.update", "session": {"type": "realtime", **enable}})
    send(server, audio(silence(200)))
    job = send(server, {"type": "input_audio_buffer.commit"})[-1]
    assert isinstance(job, Transcribe)
    outputs = server.transcription_failed(job.item_id, "boom")
    conform(server, outputs)
    assert kinds(outputs) == ["conversation.item.input_audio_transcription.failed"]
    assert server.conversation.history()[0].text == ""


def test_vad_turn_starts_stops_commits_and_starts_a_response():
    server = make()
    assert send(server, audio(silence(500))) == []
    outputs = send(server, audio(speech(400)))
    assert kinds(outputs) == ["SetIdleTimer", "input_audio_buffer.speech_started"]
    assert outputs[1]["audio_start_ms"] == 500  # type: ignore[index]
    outputs = send(server, audio(silence(600)))
    assert kinds(outputs) == [
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "Transcribe",
        "SetIdleTimer",
        "StartResponse",
    ]
    # The item is the one speech_started announced; it holds the 300 ms prefix padding.
    assert outputs[1]["item_id"] == outputs[0]["item_id"]  # type: ignore[index]
    item = server.conversation.get(outputs[1]["item_id"])  # type: ignore[index,arg-type]
    assert item is not None and item.audio_ms == 300 + 400 + 600
    assert server.response is not None


def test_outside_speech_the_buffer_keeps_only_the_prefix_padding():
    server = make()
    send(server, audio(silence(2000)))
    assert server.input.ms == 300
    assert server.input.start_ms == 1700


def test_vad_without_create_response_commits_but_does_not_respond():
    server = make()
    td = {"type": "server_vad", "create_response": False}
    send(server, {"type": "session.update", "session": {"type": "realtime", **vad(td)}})
    outputs = send(server, audio(speech(400) + silence(600)))
    assert "StartResponse" not in kinds(outputs) and "Transcribe" in kinds(outputs)


def vad(td: dict[str, Any]) -> dict[str, Any]:
    return {"audio": {"input": {"turn_detection": td}}}


# ---------------------------------------------------------------- conversation items


@pytest.mark.parametrize(
    ("flavor", "answer"),
    [
        ("ga", ["conversation.item.added", "conversation.item.done"]),
        ("beta", ["conversation.item.created"]),
    ],
)
def test_item_create_is_announced_in_the_flavours_events(flavor, answer):
    server = make(flavor)
    assert kinds(send(server, user_text("hi", "u1"))) == answer
    assert server.conversation.history()[0].text == "hi"


def test_item_create_refuses_a_duplicate_id_and_an_unknown_previous_item():
    server = make()
    send(server, user_text("one", "u1"))
    assert error_of(send(server, user_text("again", "u1")))["code"] == "item_already_exists"
    after_ghost = {**user_text("two"), "previous_item_id": "ghost"}
    assert error_of(send(server, after_ghost))["param"] == "previous_item_id"
    assert [i.id for i in server.conversation.history()] == ["u1"]


def test_item_create_after_a_previous_item_inserts_there():
    server = make()
    send(server, user_text("one", "u1"))
    send(server, user_text("three", "u3"))
    outputs = send(server, {**user_text("two", "u2"), "previous_item_id": "u1"})
    assert outputs[0]["previous_item_id"] == "u1"  # type: ignore[index]
    assert [i.id for i in server.conversation.history()] == ["u1", "u2", "u3"]


def _spoken_reply(server: RealtimeServer, text: str, audio_ms: int) -> str:
    item = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_audio", "transcript": text}],
    }
    send(server, {"type": "conversation.item.create", "item": {**item, "id": "a1"}})
    stored = server.conversation.get("a1")
    assert stored is not None
    stored.audio_ms = audio_ms
    return "a1"


def test_truncate_cuts_the_transcript_to_the_audio_heard():
    server = make()
    item_id = _spoken_reply(server, "one two three four", 1000)
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    outputs = send(server, {**truncate, "audio_end_ms": 500})
    assert kinds(outputs) == ["conversation.item.truncated"]
    assert server.conversation.history()[0].text == "one two t"  # 18 chars * 500 / 1000 ms
    too_long = error_of(send(server, {**truncate, "audio_end_ms": 600}))
    assert (too_long["code"], too_long["param"]) == ("invalid_value", "audio_end_ms")


@pytest.mark.parametrize(
    ("item_id", "content_index", "param"),
    [("ghost", 0, "item_id"), ("u1", 0, "item_id"), ("a1", 1, "content_index")],
)
def test_truncate_refuses_what_cannot_be_truncated(item_id, content_index, param):
    server = make()
    send(server, user_text("hi", "u1"))
    _spoken_reply(server, "hello there", 800)
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "audio_end_ms": 100}
    error = error_of(send(server, {**truncate, "content_index": content_index}))
    assert (error["code"], error["param"]) == ("invalid_value", param)


def test_delete_then_delete_again_is_not_found():
    server = make()
    send(server, user_text("hi", "u1"))
    assert send(server, {"type": "conversation.item.delete", "item_id": "u1"}) == [
        {"type": "conversation.item.deleted", "item_id": "u1"}
    ]
    assert error_of(send(server, {"type": "conversation.item.delete", "item_id": "u1"}))[
        "code"
    ] == ("invalid_value")


def test_retrieve_renders_the_item_in_the_flavours_shape():
    server = make("beta")
    item = {"type": "message", "role": "assistant", "content": [{"type": "text", "text": "Hi"}]}
    send(server, {"type": "conversation.item.create", "item": {**item, "id": "a1"}})
    outputs = send(server, {"type": "conversation.item.retrieve", "item_id": "a1"})
    assert outputs[0]["item"]["content"] == [{"type": "text", "text": "Hi"}]  # type: ignore[index]
    assert server.conversation.get("a1").parts == [{"type": "output_text", "text": "Hi"}]  # type: ignore[union-attr]


# ---------------------------------------------------------------- the response slot


def test_a_second_conversation_response_is_refused_an_out_of_band_one_is_not():
    server = make()
    first = start(server)
    busy = error_of(send(server, {"type": "response.create"}))
    assert (
        busy["code"] == "conversation_already_has_active_response" and first.id in busy["message"]
    )
    side = start(server, conversation="none")
    assert not side.conversation and server.response is first
    assert (first.number, side.number) == (1, 2)


def test_cancel_with_nothing_active_or_another_id_is_refused():
    server = make()
    assert (
        error_of(send(server, {"type": "response.cancel"}))["code"] == "response_cancel_not_active"
    )
    start(server)
    wrong = error_of(send(server, {"type": "response.cancel", "response_id": "resp_other"}))
    assert wrong["code"] == "response_cancel_not_active"


def test_cancel_frees_the_slot_and_builds_the_tail_once():
    server = make()
    response = start(server)
    item = assistant_message(server.new_id("item"))
    steps.open_output(server, response, item)
    steps.add_part(response, item, audio=False)
    item.add_text(0, "Hello")
    outputs = send(server, {"type": "response.cancel", "response_id": response.id})
    assert kinds(outputs) == [
        "CancelResponse",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
    ]
    done = outputs[-1]["response"]  # type: ignore[index]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    assert server.response is None and response.phase is Phase.CANCELLED
    assert server.finish_response(response) == []  # the task's own finish adds nothing
    server.response_ended(response)
    assert response.phase is Phase.ENDED
    start(server)  # the slot is free


def test_a_response_that_finishes_is_cancelled_without_a_second_tail():
    server = make()
    response = start(server)
    outputs = server.finish_response(response)
    conform(server, outputs)
    assert kinds(outputs) == ["response.done"]
    assert outputs[0]["response"]["status"] == "completed"  # type: ignore[index]
    assert kinds(send(server, {"type": "response.cancel"})) == ["CancelResponse"]
    server.response_ended(response)
    assert response.phase is Phase.ENDED


def test_speech_cancels_the_active_response_and_the_next_turn_starts_a_new_one():
    server = make()
    first = start(server)
    outputs = send(server, audio(speech(400) + silence(600)))  # start and stop in one chunk
    assert kinds(outputs)[:4] == [
        "SetIdleTimer",
        "input_audio_buffer.speech_started",
        "CancelResponse",
        "response.done",
    ]
    assert outputs[3]["response"]["status_details"]["reason"] == "turn_detected"  # type: ignore[index]
    assert kinds(outputs)[-1] == "StartResponse"
    second = outputs[-1]
    assert isinstance(second, StartResponse) and server.response is second.response is not first


def test_speech_does_not_cancel_without_interrupt_response():
    server = make()
    td = {"type": "server_vad", "interrupt_response": False}
    send(server, {"type": "session.update", "session": {"type": "realtime", **vad(td)}})
    first = start(server)
    outputs = send(server, audio(speech(400)))
    assert not any(isinstance(o, CancelResponse) for o in outputs)
    assert server.response is first


def test_an_injected_error_fails_the_response():
    server = make()
    response = start(server)
    response.cancel_reason = "error"  # what the generator does on error_on_response
    done = server.finish_response(response)[-1]["response"]  # type: ignore[index]
    assert done["status"] == "failed" and done["status_details"]["type"] == "failed"


def test_phases_refuse_what_the_table_does_not_allow():
    response = ResponseState(id="r", number=1, conversation=True, modalities=["text"])
    response.move("end")
    with pytest.raises(KeyError):
        response.move("finish")


# ---------------------------------------------------------------- idle timeout


def test_idle_timeout_counts_from_the_end_of_the_audio_then_commits_and_responds():
    server = make()
    td = {"type": "server_vad", "idle_timeout_ms": 2000}
    send(server, {"type": "session.update", "session": {"type": "realtime", **vad(td)}})
    response = start(server)
    response.output_audio_ms = 1500
    tail = server.finish_response(response)
    assert tail[-1] == SetIdleTimer(3.5)
    server.response_ended(response)
    send(server, audio(silence(400)))
    outputs = server.idle_timeout()
    conform(server, outputs)
    assert kinds(outputs) == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "SetIdleTimer",
        "StartResponse",
    ]
    assert (outputs[0]["audio_start_ms"], outputs[0]["audio_end_ms"]) == (100, 400)  # type: ignore[index]


def test_idle_timeout_does_nothing_while_a_response_is_active():
    server = make()
    start(server)
    assert server.idle_timeout() == []
