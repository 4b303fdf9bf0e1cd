"""The browser protocol as pure code (no sockets)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from voiceagent.protocol import (
    AudioIn,
    ClientMetrics,
    Limits,
    Playback,
    ProtocolError,
    TextIn,
    chunk_pcm,
    parse_client_message,
    session_started,
    valid_session_id,
)

LIMITS = Limits()


def test_json_audio_converts_to_the_same_bytes_as_binary() -> None:
    samples = [0, 1, -1, 32767, -32768, 1234]
    parsed = parse_client_message(orjson.dumps({"type": "audio", "data": samples}).decode(), LIMITS)
    assert parsed == AudioIn(np.array(samples, dtype="<i2").tobytes())
    assert parse_client_message(parsed.pcm, LIMITS) == parsed  # type: ignore[union-attr]


def test_text_is_trimmed_and_playback_parsed() -> None:
    assert parse_client_message('{"type":"text","text":"  hi  "}', LIMITS) == TextIn("hi")
    message = '{"type":"playback","response_id":"resp_1","played_ms":250}'
    assert parse_client_message(message, LIMITS) == Playback("resp_1", 250)
    message = '{"type":"client_metrics","response_id":"resp_1","e2e_ms":812.5}'
    assert parse_client_message(message, LIMITS) == ClientMetrics("resp_1", 812.5)


@pytest.mark.parametrize("value", [True, "10", None, 1e12])
def test_playback_rejects_non_numbers(value: object) -> None:
    message = orjson.dumps({"type": "playback", "response_id": "r", "played_ms": value}).decode()
    with pytest.raises(ProtocolError) as error:
        parse_client_message(message, LIMITS)
    assert error.value.code == "invalid_message"


def test_huge_text_message_is_refused_before_parsing() -> None:
    with pytest.raises(ProtocolError) as error:
        parse_client_message("x" * (LIMITS.max_audio_frame_bytes * 9), LIMITS)
    assert error.value.code == "frame_too_large"


def test_chunking_keeps_every_byte_in_order() -> None:
    pcm = bytes(range(256)) * 40
    chunks = chunk_pcm(pcm, 4096)
    assert b"".join(chunks) == pcm and max(map(len, chunks)) == 4096


@pytest.mark.parametrize(
    ("session_id", "ok"),
    [
        ("room-1", True),
        ("A_b-9", True),
        ("", False),
        ("a" * 65, False),
        ("a b", False),
        ("é", False),
        ("../x", False),
    ],
)
def test_session_ids(session_id: str, ok: bool) -> None:
    assert valid_session_id(session_id) is ok


def test_text_messages_longer_than_the_protocol_needs_are_refused_before_parsing() -> None:
    """The longest allowed message is a full JSON audio frame (8 characters a sample) or
    a full text with every character escaped; nested-array padding beyond it is refused
    without being parsed."""
    longest = LIMITS.max_text_message_chars
    assert longest == max(LIMITS.max_audio_frame_bytes // 2 * 8, LIMITS.max_text_chars * 6) + 1024
    samples = [-32768] * (LIMITS.max_audio_frame_bytes // 2)
    full_frame = '{"type": "audio", "data": [' + ", ".join(map(str, samples)) + "]}"
    assert isinstance(parse_client_message(full_frame, LIMITS), AudioIn)
    escaped = orjson.dumps({"type": "text", "text": "\x01" * LIMITS.max_text_chars}).decode()
    assert isinstance(parse_client_message(escaped, LIMITS), TextIn)
    padded = '{"type":"text","text":"hi","pad":[' + ",".join(["[[[]]]"] * 36_000) + "]}"
    assert longest < len(padded) < 262_144
    with pytest.raises(ProtocolError) as error:
        parse_client_message(padded, LIMITS)
    assert error.value.code == "frame_too_large"


@pytest.mark.parametrize("value", ["0", "-1", "60000.5", "1e12", "1e400", "true", '"812"', "null"])
def test_client_metrics_figures_are_bounded(value: str) -> None:
    """Any client can send one: it must not skew the client-reported histogram."""
    message = '{"type":"client_metrics","response_id":"r","e2e_ms":' + value + "}"
    with pytest.raises(ProtocolError) as error:
        parse_client_message(message, LIMITS)
    assert error.value.code in ("invalid_message", "invalid_json")


def test_client_metrics_accepts_the_whole_range() -> None:
    for value in (0.5, 812, 60_000):
        message = orjson.dumps({"type": "client_metrics", "response_id": "r", "e2e_ms": value})
        assert parse_client_message(message.decode(), LIMITS) == ClientMetrics("r", float(value))


def test_session_started_announces_the_frame_durations() -> None:
    limits = Limits(min_audio_frame_ms=10, max_audio_frame_ms=200, preferred_audio_frame_ms=60)
    started = orjson.loads(
        session_started(
            session_id="r", model="m", tts="t", agent="a", offline_brain=False, limits=limits
        )
    )
    assert started["protocol"] == 2
    assert started["limits"] == {
        "max_audio_frame_bytes": 32768,
        "max_text_chars": 4000,
        "min_audio_frame_ms": 10,
        "max_audio_frame_ms": 200,
        "preferred_audio_frame_ms": 60,
    }


@pytest.mark.parametrize("frame_ms", [1, 10, 20, 40, 60, 100, 200, 682])
def test_any_frame_duration_up_to_the_byte_limit_is_audio(frame_ms: int) -> None:
    """The parser knows bytes, not durations: a short tail and a long frame both pass."""
    pcm = bytes(frame_ms * 48)
    assert parse_client_message(pcm, LIMITS) == AudioIn(pcm)
    with pytest.raises(ProtocolError) as refused:
        parse_client_message(bytes(LIMITS.max_audio_frame_bytes + 2), LIMITS)
    assert refused.value.code == "frame_too_large"
