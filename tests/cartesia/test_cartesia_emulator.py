"""The Cartesia emulator speaks the protocol: auth, validation, contexts, flush, cancel."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
import trio
from cartesia_helpers import check_server_event, start_emulator
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url

VOICE = {"mode": "id", "id": "a0e99841-438c-4a64-b679-ae501e7d6091"}
FORMAT = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000}
AUTH = [(b"Authorization", b"Bearer k"), (b"Cartesia-Version", b"2025-04-16")]


def request(context_id: str, transcript: str, *, more: bool = False, **extra: Any) -> bytes:
    msg = {
        "context_id": context_id,
        "model_id": "sonic-3",
        "transcript": transcript,
        "voice": VOICE,
        "output_format": FORMAT,
        "continue": more,
        **extra,
    }
    return orjson.dumps(msg)


async def until(
    ws: WebSocketConnection, kind: str, context_id: str, *, timeout_s: float = 5.0
) -> list[dict]:
    """Messages up to and including the first `kind` for `context_id` (all validated)."""
    seen = []
    with trio.fail_after(timeout_s):
        while True:
            msg = orjson.loads(await ws.get_message())
            check_server_event(msg)
            seen.append(msg)
            if msg["type"] == kind and msg.get("context_id") == context_id:
                return seen


@pytest.mark.parametrize(
    ("suffix", "headers"),
    [
        ("?api_key=k&cartesia_version=2024-11-13", []),
        ("?cartesia_version=2025-04-16", [(b"X-API-Key", b"k")]),
        ("", AUTH),
        ("?access_token=short-lived&cartesia_version=2026-03-01", []),
    ],
)
async def test_every_documented_auth_and_version_form_is_accepted(
    nursery: trio.Nursery, suffix: str, headers: list
) -> None:
    emu = await start_emulator(nursery, api_key="k")
    async with open_websocket_url(emu.url + suffix, extra_headers=headers) as ws:
        await ws.send_message(request("c1", "Hello there."))
        kinds = [m["type"] for m in await until(ws, "done", "c1")]
    assert "chunk" in kinds


@pytest.mark.parametrize(
    ("suffix", "headers", "status"),
    [
        ("", [(b"Cartesia-Version", b"2025-04-16")], 401),
        ("", [(b"Authorization", b"Bearer wrong"), (b"Cartesia-Version", b"2025-04-16")], 401),
        ("", [(b"Authorization", b"Bearer k")], 400),
    ],
)
async def test_missing_auth_or_version_is_refused(
    nursery: trio.Nursery, suffix: str, headers: list, status: int
) -> None:
    emu = await start_emulator(nursery, api_key="k")
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(emu.url + suffix, extra_headers=headers):
            pass
    assert caught.value.status_code == status


@pytest.mark.parametrize(
    ("message", "fragment"),
    [
        (
            {"context_id": "c", "transcript": "hi", "voice": VOICE, "output_format": FORMAT},
            "model_id",
        ),
        ({"output_format": {**FORMAT, "encoding": "mp3"}}, "encoding"),
        ({"output_format": {**FORMAT, "sample_rate": 11025}}, "sample_rate"),
        ({"output_format": {**FORMAT, "container": "wav"}}, "raw"),
        ({"voice": {"mode": "embedding", "embedding": [0.1]}}, "voice"),
        ({"max_buffer_delay_ms": 9000}, "max_buffer_delay_ms"),
        ({"colour": "blue"}, "unknown field"),
    ],
)
async def test_invalid_requests_get_an_error_in_cartesia_shape(
    nursery: trio.Nursery, message: dict, fragment: str
) -> None:
    emu = await start_emulator(nursery)
    base = orjson.loads(request("c", "Hello."))
    payload = message if "context_id" in message else {**base, **message}
    async with open_websocket_url(emu.url, extra_headers=AUTH) as ws:
        await ws.send_message(orjson.dumps(payload))
        error = (await until(ws, "error", "c"))[-1]
    assert error["done"] is True and error["status_code"] == 400
    assert fragment in error["message"]


async def test_fields_are_locked_across_a_context_and_closed_contexts_refuse_input(
    nursery: trio.Nursery,
) -> None:
    emu = await start_emulator(nursery)
    other_voice = {"mode": "id", "id": "another-voice"}
    async with open_websocket_url(emu.url, extra_headers=AUTH) as ws:
        await ws.send_message(request("a", "First part, ", more=True))
        await ws.send_message(request("a", "second part.", more=True, voice=other_voice))
        error = (await until(ws, "error", "a"))[-1]
        assert "stay the same" in error["message"]
        await ws.send_message(request("b", "All done."))
        await until(ws, "done", "b")
        await ws.send_message(request("b", "More?"))
        error = (await until(ws, "error", "b"))[-1]
        assert "closed" in error["message"]


async def test_contexts_interleave_on_one_socket_and_cancel_is_final(
    nursery: trio.Nursery,
) -> None:
    emu = await start_emulator(nursery, realtime_factor=0.3, chunk_ms=20)
    async with open_websocket_url(emu.url, extra_headers=AUTH) as ws:
        await ws.send_message(request("long", "This one talks for quite a while. " * 3))
        await ws.send_message(request("short", "Short one."))
        seen = await until(ws, "done", "short")
        assert any(m["type"] == "chunk" and m["context_id"] == "long" for m in seen)
        await ws.send_message(orjson.dumps({"context_id": "long", "cancel": True}))
        await ws.send_message(request("probe", "Probe."))
        after_cancel = await until(ws, "done", "probe")
    assert [m["type"] for m in after_cancel][-1] == "done"
    timeline = list(emu.log.timeline)
    cancel_at = timeline.index(("in", "long", "cancel"))
    assert ("out", "long", "chunk") in timeline[:cancel_at]
    assert [e for e in timeline[cancel_at:] if e[0] == "out" and e[1] == "long"] == []


async def test_flush_acknowledges_and_tags_later_audio(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    async with open_websocket_url(emu.url, extra_headers=AUTH) as ws:
        await ws.send_message(request("f", "Before the flush. ", more=True))
        await ws.send_message(request("f", "", more=True, flush=True))
        flushed = (await until(ws, "flush_done", "f"))[-1]
        assert flushed["flush_id"] == 1
        await ws.send_message(request("f", "After it.", more=False))
        later = await until(ws, "done", "f")
    assert {m.get("flush_id") for m in later if m["type"] == "chunk"} == {2}


@pytest.mark.parametrize(
    ("encoding", "rate", "width"),
    [
        ("pcm_s16le", 24000, 2),
        ("pcm_f32le", 44100, 4),
        ("pcm_mulaw", 8000, 1),
        ("pcm_alaw", 8000, 1),
    ],
)
async def test_audio_length_follows_encoding_and_rate_and_matches_timestamps(
    nursery: trio.Nursery, encoding: str, rate: int, width: int
) -> None:
    emu = await start_emulator(nursery)
    fmt = {"container": "raw", "encoding": encoding, "sample_rate": rate}
    async with open_websocket_url(emu.url, extra_headers=AUTH) as ws:
        await ws.send_message(
            request("e", "Testing one two three.", output_format=fmt, add_timestamps=True)
        )
        seen = await until(ws, "done", "e")
    audio = b"".join(base64.b64decode(m["data"]) for m in seen if m["type"] == "chunk")
    duration = len(audio) / width / rate
    (stamps,) = [m["word_timestamps"] for m in seen if m["type"] == "timestamps"]
    assert stamps["words"] == ["Testing", "one", "two", "three."]
    assert 0 < stamps["end"][-1] <= duration <= stamps["end"][-1] + 0.1


async def test_phoneme_timestamps_when_asked(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    async with open_websocket_url(emu.url, extra_headers=AUTH) as ws:
        await ws.send_message(request("p", "Hi you.", add_phoneme_timestamps=True))
        seen = await until(ws, "done", "p")
    (ph,) = [m["phoneme_timestamps"] for m in seen if m["type"] == "phoneme_timestamps"]
    assert len(ph["phonemes"]) == len(ph["start"]) == len(ph["end"]) > 0


async def test_command_line_help_runs() -> None:
    result = await trio.run_process(
        ["python", "-m", "voiceagent.emulators", "cartesia", "--help"], capture_stdout=True
    )
    assert b"--realtime-factor" in result.stdout


@pytest.mark.slow  # loads the piper voice: seconds of CPU on a busy machine
async def test_local_voice_mode_speaks_with_word_timestamps(nursery: trio.Nursery) -> None:
    pytest.importorskip("voiceagent.tts.local")
    emu = await start_emulator(nursery, voice="local", realtime_factor=0.0)
    async with open_websocket_url(emu.url, extra_headers=AUTH) as ws:
        await ws.send_message(request("v", "Hello from the local voice.", add_timestamps=True))
        seen = await until(ws, "done", "v", timeout_s=30)  # loading the voice takes seconds
    audio = b"".join(base64.b64decode(m["data"]) for m in seen if m["type"] == "chunk")
    (stamps,) = [m["word_timestamps"] for m in seen if m["type"] == "timestamps"]
    assert stamps["words"] == "Hello from the local voice.".split()
    assert 0 < stamps["end"][-1] <= len(audio) / 2 / 24000 + 0.05
