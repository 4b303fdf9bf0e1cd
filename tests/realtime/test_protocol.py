"""The sans-I/O Realtime client protocol, without sockets."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import orjson
import pytest

from tests.realtime.conformance import check_event
from voiceagent.conversation import AgentSetup, Heard, ToolSpec
from voiceagent.events import (
    FunctionCall,
    InputCommitted,
    ModelError,
    RateLimits,
    ResponseDone,
    SpeechStarted,
    TextDelta,
    TranscriptCompleted,
    TranscriptFailed,
)
from voiceagent.models.realtime import (
    ProtocolError,
    RealtimeConfig,
    RealtimeConfigError,
    RealtimeProtocol,
    endpoint,
)
from voiceagent.models.realtime.protocol import MAX_TRACKED_ITEMS

FIXTURES = Path(__file__).parent / "fixtures"
SETUP = AgentSetup(
    "triage",
    "Help.",
    (ToolSpec("transfer_to_seats", "Hand over."), ToolSpec("faq", "Answer.")),
    tool_choice="auto",
)


def test_azure_ga_url_uses_api_key_and_ga_events():
    ep = endpoint(
        RealtimeConfig(url="https://res.openai.azure.com/openai/v1/realtime?model=dep", api_key="k")
    )
    assert (ep.flavor, ep.provider, ep.model) == ("ga", "azure", "dep")
    assert ep.url == "wss://res.openai.azure.com/openai/v1/realtime?model=dep"
    assert ep.headers == (("api-key", "k"),)


def test_azure_preview_url_is_beta_and_takes_the_deployment_from_config():
    ep = endpoint(
        RealtimeConfig(
            url="wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview",
            api_key="k",
            model="dep",
        )
    )
    assert (ep.flavor, ep.model) == ("beta", "dep")
    assert "deployment=dep" in ep.url and ("api-key", "k") in ep.headers
    assert not any(k == "OpenAI-Beta" for k, _ in ep.headers)


def test_openai_url_uses_bearer_and_fills_the_model():
    ep = endpoint(RealtimeConfig(api_key="sk", model="gpt-realtime"))
    assert ep.url == "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    assert ep.headers == (("Authorization", "Bearer sk"),)
    beta = endpoint(RealtimeConfig(api_key="sk", model="gpt-realtime", beta=True))
    assert beta.flavor == "beta" and ("OpenAI-Beta", "realtime=v1") in beta.headers


@pytest.mark.parametrize(
    "url",
    [
        "wss://res.openai.azure.com/openai/v1/realtime?model=d&api-version=2025-04-01-preview",
        "wss://res.openai.azure.com/openai/v1/realtime",
        "wss://res.openai.azure.com/openai/realtime?deployment=d",
        "ftp://example.com/v1/realtime?model=m",
        "wss://example.com/v1/chat?model=m",
    ],
)
def test_unusable_urls_are_refused_at_startup(url):
    with pytest.raises(RealtimeConfigError):
        RealtimeConfig(url=url).validate()


CONFIGS = [
    RealtimeConfig(
        turn_detection=td, transcription_model=tm, noise_reduction=nr, max_output_tokens=mt
    )
    for td, tm, nr, mt in itertools.product(
        ["server_vad", "semantic_vad", "none"],
        ["whisper-1", None],
        [None, "far_field"],
        [None, 512],
    )
]


@pytest.mark.parametrize("flavor", ["ga", "beta"])
@pytest.mark.parametrize("output", ["text", "audio"])
def test_every_session_update_conforms_to_its_flavour(flavor, output):
    for config in CONFIGS:
        proto = RealtimeProtocol(config, flavor, output)
        check_event(flavor, "client", proto.session_update(SETUP))
        check_event(flavor, "client", proto.agent_update(SETUP))
        check_event(flavor, "client", proto.append_audio(b"\x00\x01" * 240))
        for message in [*proto.user_text("hi"), *proto.commit_audio()]:
            check_event(flavor, "client", message)


def test_session_update_never_mixes_vad_options():
    proto = RealtimeProtocol(RealtimeConfig(turn_detection="server_vad"), "ga", "audio")
    td = orjson.loads(proto.session_update(SETUP))["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad" and "eagerness" not in td
    proto = RealtimeProtocol(RealtimeConfig(turn_detection="semantic_vad"), "ga", "audio")
    td = orjson.loads(proto.session_update(SETUP))["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == "semantic_vad" and "threshold" not in td


def test_named_tool_choice_becomes_a_function_choice():
    setup = AgentSetup("a", "x", (ToolSpec("faq", "Answer."),), tool_choice="faq")
    session = orjson.loads(RealtimeProtocol(RealtimeConfig(), "ga", "text").agent_update(setup))
    assert session["session"]["tool_choice"] == {"type": "function", "name": "faq"}


def test_fixture_server_events_map_to_session_events():
    proto = RealtimeProtocol(RealtimeConfig(), "ga", "audio")
    events = []
    for raw in json.loads((FIXTURES / "ga_sample_events.json").read_text())["server_events_ga"]:
        events.extend(proto.receive(orjson.dumps(raw))[0])
    kinds = {type(e) for e in events}
    assert {
        SpeechStarted,
        InputCommitted,
        TranscriptCompleted,
        TranscriptFailed,
        RateLimits,
        FunctionCall,
        ResponseDone,
        TextDelta,
    } <= kinds
    # The fixture's error is a cancel that raced the end of a response: harmless, dropped.
    assert ModelError not in kinds
    call = next(e for e in events if isinstance(e, FunctionCall))
    assert (call.call_id, call.name, call.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Paris"}',
    )
    cancelled = next(e for e in events if isinstance(e, ResponseDone) and e.status == "cancelled")
    assert cancelled.reason == "turn_detected"
    assert cancelled.usage is not None and cancelled.usage.input_audio_tokens == 40
    assert not proto.response_in_progress


def test_beta_fixture_events_map_too():
    proto = RealtimeProtocol(RealtimeConfig(), "beta", "audio")
    events = []
    for raw in json.loads((FIXTURES / "beta_sample_events.json").read_text())["server_events_beta"]:
        events.extend(proto.receive(orjson.dumps(raw))[0])
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == "HiHi"
    assert isinstance(events[-1], ResponseDone) and events[-1].status == "completed"


def _feed(proto: RealtimeProtocol, *events: dict) -> list[str]:
    out: list[str] = []
    for i, event in enumerate(events):
        out.extend(proto.receive(orjson.dumps({"event_id": f"e{i}", **event}))[1])
    return out


def _start(response_id: str, item_id: str) -> list[dict]:
    return [
        {"type": "response.created", "response": {"id": response_id, "status": "in_progress"}},
        {
            "type": "response.output_item.added",
            "response_id": response_id,
            "output_index": 0,
            "item": {"id": item_id, "type": "message", "role": "assistant", "content": []},
        },
    ]


def _done(response_id: str, status: str = "completed") -> dict:
    return {"type": "response.done", "response": {"id": response_id, "status": status}}


def test_follow_up_waits_for_every_call_and_for_response_done():
    proto = RealtimeProtocol(RealtimeConfig(), "ga", "text")
    calls = [
        {
            "type": "response.output_item.done",
            "response_id": "r1",
            "output_index": i,
            "item": {
                "id": f"f{i}",
                "type": "function_call",
                "status": "completed",
                "name": "faq",
                "call_id": f"c{i}",
                "arguments": "{}",
            },
        }
        for i in (1, 2)
    ]
    assert _feed(proto, *_start("r1", "m1"), *calls) == []
    first = proto.tool_result("c1", "a", respond=True)
    assert [orjson.loads(m)["type"] for m in first] == ["conversation.item.create"]
    second = proto.tool_result("c2", "b", respond=True)
    assert [orjson.loads(m)["type"] for m in second] == ["conversation.item.create"]
    assert [orjson.loads(m)["type"] for m in _feed(proto, _done("r1"))] == ["response.create"]


def test_no_cancel_when_the_server_already_interrupted():
    config = RealtimeConfig(interrupt_response=True)
    proto = RealtimeProtocol(config, "ga", "audio")
    _feed(
        proto,
        *_start("r1", "m1"),
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "u2"},
    )
    sent = [orjson.loads(m)["type"] for m in proto.cancel(Heard("r1", "m1", 0))]
    assert "response.cancel" not in sent

    manual = RealtimeProtocol(RealtimeConfig(interrupt_response=False), "ga", "audio")
    _feed(
        manual,
        *_start("r1", "m1"),
        {"type": "input_audio_buffer.speech_started", "audio_start_ms": 5, "item_id": "u2"},
    )
    sent = [orjson.loads(m)["type"] for m in manual.cancel(Heard("r1", "m1", None))]
    assert sent == ["response.cancel"]
    assert manual.cancel(Heard("r1", "m1", None)) == []  # at most once per response


@pytest.mark.parametrize(("heard_ms", "expected"), [(-50, 0), (100, 100), (10_000, 200)])
def test_truncate_is_clamped_to_the_audio_received(heard_ms, expected):
    proto = RealtimeProtocol(RealtimeConfig(), "ga", "audio")
    import base64

    audio = base64.b64encode(bytes(200 * 48)).decode()
    _feed(
        proto,
        *_start("r1", "m1"),
        {
            "type": "response.output_audio.delta",
            "response_id": "r1",
            "item_id": "m1",
            "output_index": 0,
            "content_index": 0,
            "delta": audio,
        },
    )
    sent = [orjson.loads(m) for m in proto.cancel(Heard("r1", None, heard_ms))]
    truncate = [m for m in sent if m["type"] == "conversation.item.truncate"]
    assert truncate[0]["audio_end_ms"] == expected
    assert proto.cancel(Heard("r1", None, heard_ms)) == []  # settled items are left alone


def test_text_rewrite_places_the_heard_text_after_the_same_previous_item():
    proto = RealtimeProtocol(RealtimeConfig(), "beta", "text")
    _feed(
        proto,
        *_start("r1", "m1"),
        {
            "type": "conversation.item.created",
            "previous_item_id": "u1",
            "item": {"id": "m1", "type": "message", "role": "assistant", "content": []},
        },
        {
            "type": "response.text.delta",
            "response_id": "r1",
            "item_id": "m1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Hello there my friend",
        },
        _done("r1"),
    )
    sent = [orjson.loads(m) for m in proto.cancel(Heard("r1", None, None, "Hello there"))]
    assert [m["type"] for m in sent] == ["conversation.item.delete", "conversation.item.create"]
    assert sent[1]["previous_item_id"] == "u1"
    assert sent[1]["item"]["content"] == [{"type": "text", "text": "Hello there"}]
    for message in sent:
        check_event("beta", "client", orjson.dumps(message))


def test_a_fully_heard_reply_is_not_rewritten():
    proto = RealtimeProtocol(RealtimeConfig(), "ga", "text")
    _feed(
        proto,
        *_start("r1", "m1"),
        {
            "type": "response.output_text.done",
            "response_id": "r1",
            "item_id": "m1",
            "output_index": 0,
            "content_index": 0,
            "text": "All of it.",
        },
        _done("r1"),
    )
    assert proto.cancel(Heard("r1", None, None, "All of it.")) == []


def test_error_events_become_model_errors():
    proto = RealtimeProtocol(RealtimeConfig(), "ga", "text")
    events, _ = proto.receive(
        '{"type":"error","event_id":"e","error":{"type":"invalid_request_error",'
        '"code":"invalid_value","message":"Bad thing."}}'
    )
    assert events == [ModelError(code="invalid_value", message="Bad thing.")]


def test_garbage_is_a_protocol_error_and_unknown_events_are_ignored():
    proto = RealtimeProtocol(RealtimeConfig(), "ga", "text")
    with pytest.raises(ProtocolError):
        proto.receive("not json")
    with pytest.raises(ProtocolError):
        proto.receive('{"type": "response.done", "response": 3}')
    assert proto.receive('{"type": "mcp_list_tools.in_progress", "event_id": "x"}') == ([], [])


def test_bookkeeping_is_bounded():
    proto = RealtimeProtocol(RealtimeConfig(), "ga", "text")
    for n in range(3 * MAX_TRACKED_ITEMS):
        _feed(proto, *_start(f"r{n}", f"m{n}"), _done(f"r{n}"))
    assert len(proto._items) <= MAX_TRACKED_ITEMS
    assert len(proto._responses) <= MAX_TRACKED_ITEMS
