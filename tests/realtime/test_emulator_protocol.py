"""The emulator answers raw client events the way the service does.

(docs/architecture.md, "Provider protocols", summarises the protocol and links the
providers' documentation.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.realtime.conformance import check_event
from tests.realtime.conftest import KEY, ScriptedBrain

FIXTURES = Path(__file__).parent / "fixtures"
GA_FIXTURES = json.loads((FIXTURES / "ga_sample_events.json").read_text())
BETA_FIXTURES = json.loads((FIXTURES / "beta_sample_events.json").read_text())


class Raw:
    """A bare WebSocket client that sends JSON and reads server events."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send_message(orjson.dumps(event).decode())

    async def next(self, *types: str) -> dict[str, Any]:
        """The next event of one of `types` (others skipped; hang guard 5 s)."""
        with trio.fail_after(5):
            while True:
                event = orjson.loads(await self.ws.get_message())
                if not types or event["type"] in types:
                    return event


async def _raw(emu, flavor="ga", headers=None):
    headers = headers or [(b"api-key", KEY.encode())]
    return open_websocket_url(emu.url(flavor), extra_headers=headers)


async def test_beta_shaped_update_on_ga_is_missing_session_type(start_emulator):
    emu = await start_emulator()
    emu.strict = False
    async with await _raw(emu, "ga") as ws:
        raw = Raw(ws)
        created = await raw.next("session.created")
        assert created["session"]["type"] == "realtime"
        await raw.send(
            {
                "type": "session.update",
                "event_id": "c1",
                "session": {"modalities": ["text"], "instructions": "x"},
            }
        )
        error = (await raw.next("error"))["error"]
    assert error == {
        "type": "invalid_request_error",
        "code": "missing_required_parameter",
        "message": "Missing required parameter: 'session.type'.",
        "param": "session.type",
        "event_id": "c1",
    }


async def test_ga_shaped_update_on_preview_is_unknown_session_type(start_emulator):
    emu = await start_emulator()
    emu.strict = False
    async with await _raw(emu, "beta") as ws:
        raw = Raw(ws)
        created = await raw.next("session.created")
        assert "type" not in created["session"] and "modalities" in created["session"]
        await raw.send({"type": "session.update", "session": {"type": "realtime"}})
        error = (await raw.next("error"))["error"]
    assert (error["code"], error["param"]) == ("unknown_parameter", "session.type")
    assert error["message"] == "Unknown parameter: 'session.type'."


@pytest.mark.parametrize(
    ("event", "code", "param"),
    [
        ({"type": "response.explode"}, "invalid_value", "type"),
        (
            {"type": "conversation.item.truncate", "item_id": "i", "content_index": 0},
            "missing_required_parameter",
            "audio_end_ms",
        ),
        ({"type": "input_audio_buffer.append", "audio": 5}, "invalid_type", "audio"),
        (
            {
                "type": "session.update",
                "session": {"type": "realtime", "audio": {"input": {"format": "pcm16"}}},
            },
            "invalid_type",
            "session.audio.input.format",
        ),
        (
            {
                "type": "session.update",
                "session": {
                    "type": "realtime",
                    "audio": {
                        "input": {"turn_detection": {"type": "server_vad", "eagerness": "low"}}
                    },
                },
            },
            "unknown_parameter",
            "session.audio.input.turn_detection.eagerness",
        ),
        ({"type": "response.cancel", "extra": 1}, "unknown_parameter", "extra"),
        (
            {
                "type": "conversation.item.create",
                "item": {"type": "function_call_output", "call_id": "c"},
            },
            "missing_required_parameter",
            "item.output",
        ),
    ],
)
async def test_invalid_events_are_refused_with_the_services_codes(
    start_emulator, event, code, param
):
    emu = await start_emulator()
    emu.strict = False
    async with await _raw(emu) as ws:
        raw = Raw(ws)
        await raw.send({**event, "event_id": "evt_7"})
        error = (await raw.next("error"))["error"]
        # The connection survives a bad event.
        await raw.send({"type": "input_audio_buffer.clear"})
        await raw.next("input_audio_buffer.cleared")
    assert (error["code"], error["param"], error["event_id"]) == (code, param, "evt_7")


async def test_bad_json_is_an_error_not_a_disconnect(start_emulator):
    emu = await start_emulator()
    emu.strict = False
    async with await _raw(emu) as ws:
        raw = Raw(ws)
        await ws.send_message("{not json")
        assert (await raw.next("error"))["error"]["type"] == "invalid_request_error"
        await raw.send({"type": "input_audio_buffer.clear"})
        await raw.next("input_audio_buffer.cleared")


@pytest.mark.parametrize(
    ("path", "headers", "accepted"),
    [
        ("/openai/v1/realtime?model=d", [(b"api-key", KEY.encode())], True),
        (f"/openai/v1/realtime?model=d&api-key={KEY}", [], True),
        ("/v1/realtime?model=m", [(b"authorization", f"Bearer {KEY}".encode())], True),
        ("/openai/v1/realtime?model=d", [], False),
        (
            "/openai/v1/realtime?model=d&api-version=2025-04-01-preview",
            [(b"api-key", KEY.encode())],
            False,
        ),
        ("/openai/v1/realtime?model=d", [(b"api-key", b"nope")], False),
    ],
)
async def test_handshake_auth_and_routes(start_emulator, path, headers, accepted):
    from trio_websocket import ConnectionRejected

    emu = await start_emulator()
    url = f"ws://127.0.0.1:{emu.port}{path}"
    if accepted:
        async with open_websocket_url(url, extra_headers=headers) as ws:
            assert (await Raw(ws).next())["type"] == "session.created"
    else:
        with pytest.raises(ConnectionRejected) as caught:
            async with open_websocket_url(url, extra_headers=headers):
                pass
        assert caught.value.status_code == 401


def _fixture_client_events(flavor: str) -> list[dict[str, Any]]:
    key = "client_events_ga" if flavor == "ga" else "client_events_beta"
    return (GA_FIXTURES if flavor == "ga" else BETA_FIXTURES)[key]


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_fixture_client_events_get_the_services_answers(start_emulator, flavor):
    """Each sample client event is accepted (or refused for state, never for shape)."""
    emu = await start_emulator(brain_factory=lambda: ScriptedBrain(call_tools=False))
    emu.strict = False  # the fixtures set output to G.711, which the answers then use
    answers: dict[str, list[str]] = {}
    async with await _raw(emu, flavor) as ws:
        raw = Raw(ws)
        await raw.next("session.created")
        for i, event in enumerate(_fixture_client_events(flavor)):
            await raw.send({**event, "event_id": f"fx_{i}"})
            await raw.send(
                {"type": "conversation.item.retrieve", "item_id": "none", "event_id": f"sync_{i}"}
            )
            seen: list[str] = []
            while True:
                reply = await raw.next()
                if reply["type"] == "error" and reply["error"]["event_id"] == f"sync_{i}":
                    break
                label = reply["type"]
                if reply["type"] == "error":
                    assert reply["error"]["code"] not in (
                        "unknown_parameter",
                        "missing_required_parameter",
                        "invalid_type",
                    ), reply
                    label = f"error:{reply['error']['code']}"
                seen.append(label)
            answers[f"{i}:{event['type']}"] = seen
            if event["type"] == "response.create":
                await raw.next("response.done")
    by_type = {k.split(":", 1)[1]: v for k, v in answers.items()}
    assert by_type["session.update"] == ["session.updated"]
    assert "conversation.item.create" in by_type
    if flavor == "ga":
        assert answers["3:input_audio_buffer.commit"] == ["error:input_audio_buffer_commit_empty"]
        assert answers["4:input_audio_buffer.clear"] == ["input_audio_buffer.cleared"]
        assert answers["5:conversation.item.create"] == [
            "conversation.item.added",
            "conversation.item.done",
        ]
        assert answers["7:conversation.item.truncate"] == ["error:invalid_value"]  # no such item
        assert answers["8:response.create"][0] == "response.created"
        assert answers["12:output_audio_buffer.clear"] == ["error:invalid_value"]
    else:
        assert by_type["conversation.item.create"] == ["conversation.item.created"]


@pytest.mark.parametrize("flavor", ["ga", "beta"])
async def test_cancel_and_item_operations_answer_like_the_service(start_emulator, flavor):
    emu = await start_emulator(
        brain_factory=lambda: ScriptedBrain("a b c d e f g", False), tokens_per_s=100
    )
    async with await _raw(emu, flavor) as ws:
        raw = Raw(ws)
        await raw.next("session.created")
        await raw.send({"type": "response.cancel", "event_id": "early"})
        error = (await raw.next("error"))["error"]
        assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "early")
        await raw.send({"type": "response.create"})
        created = await raw.next("response.created")
        await raw.send({"type": "response.create", "event_id": "second"})
        busy = (await raw.next("error"))["error"]
        assert busy["code"] == "conversation_already_has_active_response"
        await raw.send({"type": "response.cancel", "response_id": created["response"]["id"]})
        item_done = await raw.next("response.output_item.done")
        assert item_done["item"]["status"] == "incomplete"
        done = await raw.next("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        item_id = item_done["item"]["id"]
        await raw.send({"type": "conversation.item.delete", "item_id": item_id})
        assert (await raw.next("conversation.item.deleted"))["item_id"] == item_id
        await raw.send({"type": "conversation.item.delete", "item_id": item_id})
        assert (await raw.next("error"))["error"]["code"] == "invalid_value"


def test_every_fixture_server_event_is_conformant_with_the_checker():
    """The conformance checker itself accepts the validated fixtures (and so can fail)."""
    for event in GA_FIXTURES["server_events_ga"]:
        check_event("ga", "server", orjson.dumps(event))
    for event in BETA_FIXTURES["server_events_beta"]:
        check_event("beta", "server", orjson.dumps(event))
    with pytest.raises(AssertionError):
        check_event("ga", "client", b'{"type":"response.cancel","surprise":1}')
