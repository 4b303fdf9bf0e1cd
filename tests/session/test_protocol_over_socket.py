"""The browser protocol over a real Hypercorn socket: round trips and bad input."""

from __future__ import annotations

import orjson
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply, tone
from voiceagent.protocol import PROTOCOL_VERSION
from voiceagent.tts.scripted import ScriptedTTS


def services(**settings: object):
    model = ScriptedModel(replies={"hello": ScriptedReply("Hi there, how can I help?")})
    return make_services(
        model,
        ScriptedTTS(),
        agent=front_desk,
        settings=Settings(**settings),  # type: ignore[arg-type]
    )


async def test_session_announces_protocol_and_agent() -> None:
    async with running_app(services()) as address, connect(address, "room-1") as client:
        started = await client.wait_for("session_started")
        assert started["protocol"] == PROTOCOL_VERSION
        assert started["session_id"] == "room-1"
        assert started["model"] == "scripted" and started["tts"] == "scripted"
        assert started["audio"] == {"format": "pcm16", "sample_rate": 24000, "channels": 1}
        assert (await client.wait_for("agent_start"))["agent"] == "Front Desk"


async def test_text_turn_streams_text_then_audio_then_done() -> None:
    async with running_app(services()) as address, connect(address) as client:
        await client.send(type="text", text="hello there")
        done = await client.wait_for("response_done")
        await client.wait_for("metrics")
        kinds = client.order
        assert done["status"] == "completed"
        text = "".join(e["delta"] for e in client.of_type("text_delta"))
        assert text == "Hi there, how can I help?"
        assert client.of_type("text_done")[0]["text"] == text
        start = client.of_type("audio_start")[0]
        assert start["response_id"] == done["response_id"]
        # Audio frames arrive after audio_start, tagged to this response, within size.
        assert client.audio and all(owner == done["response_id"] for owner, _ in client.audio)
        largest = Settings().ws_tts_chunk_bytes
        assert all(0 < len(frame) <= largest and len(frame) % 2 == 0 for _, frame in client.audio)
        assert kinds.index(("event", "audio_start")) < kinds.index(("audio", done["response_id"]))
        end = client.of_type("audio_end")[0]
        assert end["audio_ms"] == sum(len(f) for _, f in client.audio) // 48
        metrics = client.of_type("metrics")[0]
        assert metrics["response_id"] == done["response_id"]
        assert metrics["turn_ms"] is not None and metrics["llm_ms"] is not None


async def test_tts_chunk_size_is_configurable() -> None:
    async with running_app(services(ws_tts_chunk_bytes=960)) as address:
        async with connect(address) as client:
            await client.send(type="text", text="hello")
            await client.wait_for("audio_end")
            assert max(len(frame) for _, frame in client.audio) == 960


async def test_binary_and_json_audio_reach_the_model() -> None:
    model = ScriptedModel(default=ScriptedReply("Got your audio."))
    async with running_app(make_services(model, ScriptedTTS(), agent=front_desk)) as address:
        async with connect(address) as client:
            speech = tone(400)
            for start in range(0, len(speech), 960):
                await client.send_audio(speech[start : start + 960])
            samples = [0] * 480
            for _ in range(20):  # 400 ms of silence as JSON int16: ends the turn
                await client.send(type="audio", data=samples)
            await client.wait_for("input_speech_started")
            await client.wait_for("input_speech_stopped")
            transcript = await client.wait_for("user_transcript")
            assert transcript["text"] == "(spoken)"
            done = await client.wait_for("text_done")
            assert done["text"] == "Got your audio."


BAD_MESSAGES = [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_message"),
    ('{"no_type": 1}', "invalid_message"),
    ('{"type": "dance"}', "unknown_type"),
    ('{"type": "text", "text": 42}', "invalid_message"),
    ('{"type": "text", "text": "   "}', "invalid_message"),
    ('{"type": "audio", "data": "abc"}', "invalid_message"),
    ('{"type": "audio", "data": [1.5, 2]}', "invalid_message"),
    ('{"type": "audio", "data": [[1], [2]]}', "invalid_message"),
    ('{"type": "audio", "data": [40000]}', "audio_out_of_range"),
    ('{"type": "playback", "response_id": "r", "played_ms": -3}', "invalid_message"),
    ('{"type": "playback", "played_ms": 3}', "invalid_message"),
    (b"\x01\x02\x03", "audio_odd_length"),
    (b"\x00" * 40000, "frame_too_large"),
    (orjson.dumps({"type": "audio", "data": [0] * 20000}).decode(), "frame_too_large"),
    (orjson.dumps({"type": "text", "text": "x" * 5000}).decode(), "text_too_long"),
]


@pytest.mark.parametrize(("message", "code"), BAD_MESSAGES)
async def test_bad_input_gets_typed_error_and_session_continues(
    message: str | bytes, code: str
) -> None:
    async with running_app(services()) as address, connect(address) as client:
        await client.wait_for("session_started")
        await client.ws.send_message(message)
        error = await client.wait_for("error")
        assert error["code"] == code
        assert error["message"]
        # The session is still alive and answers.
        await client.send(type="text", text="hello")
        assert (await client.wait_for("text_done"))["text"] == "Hi there, how can I help?"


async def test_client_that_keeps_sending_garbage_is_closed_1008() -> None:
    async with running_app(services(ws_max_errors=5)) as address, connect(address) as client:
        for _ in range(10):
            try:
                await client.ws.send_message("garbage")
            except ConnectionClosed:
                break
        assert await client.wait_closed() == 1008
        assert client.of_type("error")[-1]["code"] == "too_many_errors"
        assert len(client.of_type("error")) <= 7


@pytest.mark.parametrize("session_id", ["has space", "x" * 65, "semi;colon", "ümlaut"])
async def test_invalid_session_id_is_refused_at_the_handshake(session_id: str) -> None:
    """HTTP 400 instead of the WebSocket: no session is ever made for it."""
    from trio_websocket import ConnectionRejected

    svc = services()
    async with running_app(svc) as address:
        from urllib.parse import quote

        with pytest.raises(ConnectionRejected) as rejected, trio.fail_after(5):
            async with open_websocket_url(f"ws://{address}/ws/{quote(session_id)}"):
                pass
        assert rejected.value.status_code == 400
    assert len(svc.registry) == 0


async def test_no_provider_gives_clear_error_not_a_crash() -> None:
    svc = make_services(None, None, agent=front_desk)
    svc.model_problem = 'offline model needs pocketsphinx; pip install -e ".[offline]"'
    async with running_app(svc) as address, connect(address) as client:
        await client.send(type="text", text="hello")
        error = await client.wait_for("error")
        assert error["code"] == "no_provider"
        assert "[offline]" in error["message"]
        await client.send_audio(b"\x00\x00" * 480)
        assert (await client.wait_for("error"))["code"] == "no_provider"


async def test_empty_frames_are_harmless() -> None:
    """An empty binary frame is no audio (ignored); an empty text frame is bad JSON."""
    async with running_app(services()) as address, connect(address) as client:
        await client.wait_for("session_started")
        await client.ws.send_message(b"")
        await client.ws.send_message("")
        assert (await client.wait_for("error"))["code"] == "invalid_json"
        await client.send(type="text", text="hello")
        assert (await client.wait_for("text_done"))["text"] == "Hi there, how can I help?"
        assert len(client.of_type("error")) == 1  # the empty binary frame was no error
