"""Sans-I/O Cartesia code: the text aggregator, the context state machine, parsing."""

from __future__ import annotations

import base64
import subprocess
import sys

import orjson
import pytest
from cartesia_helpers import check_client_event

from voiceagent.tts.cartesia import protocol as proto
from voiceagent.tts.cartesia.aggregator import TextAggregator

SETTINGS = proto.GenerationSettings(model_id="sonic-3", voice_id="v-1", max_buffer_delay_ms=100)


def stream(aggregator: TextAggregator, deltas: list[str]) -> list[str]:
    pushes: list[str] = []
    for delta in deltas:
        pushes += aggregator.feed(delta)
    return pushes


def test_pushes_are_the_text_verbatim_with_trailing_spaces() -> None:
    text = "Hello there, how are you today? I am fine, thanks. And you"
    agg = TextAggregator()
    pushes = stream(agg, list(text))  # one character at a time
    pushes.append(agg.finish())
    assert "".join(pushes) == text
    assert all(p.endswith(" ") for p in pushes[:-1])


def test_first_push_waits_for_enough_words() -> None:
    agg = TextAggregator(min_first_words=4)
    assert stream(agg, ["Yes, ", "sure. "]) == []
    assert stream(agg, ["I can ", "help, "]) == ["Yes, sure. I can help, "]
    assert stream(agg, ["ok, "]) == ["ok, "]  # later pushes go at any boundary


def test_decimal_points_and_unfinished_words_are_not_boundaries() -> None:
    agg = TextAggregator(min_first_words=1)
    assert stream(agg, ["It costs 3.", "50 euros"]) == []
    assert agg.finish() == "It costs 3.50 euros"


def test_long_unpunctuated_runs_are_pushed_at_a_space() -> None:
    agg = TextAggregator(min_first_words=4, first_max_words=6, max_words=6)
    pushes = stream(agg, [f"word{i} " for i in range(8)])
    assert pushes and all(p.endswith(" ") for p in pushes)
    assert "".join(pushes) + agg.finish() == "".join(f"word{i} " for i in range(8))


def test_a_long_first_clause_is_pushed_before_its_punctuation() -> None:
    agg = TextAggregator(min_first_words=4, first_max_words=6)
    pushes = stream(agg, ["You ", "are ", "allowed ", "one ", "carry-on ", "bag ", "and "])
    assert pushes == ["You are allowed one carry-on bag "]


def test_a_short_opening_phrase_does_not_hold_back_the_first_push() -> None:
    agg = TextAggregator(min_first_words=4, first_max_words=6)
    deltas = ["Of ", "course. ", "Pets ", "under ", "eight ", "kilos ", "can ", "travel "]
    assert stream(agg, deltas) == ["Of course. Pets under eight kilos "]


def test_stale_releases_words_but_not_a_half_word() -> None:
    agg = TextAggregator(min_first_words=2)
    agg.feed("one two thr")
    assert agg.stale() == ["one two "]
    assert agg.finish() == "thr"


def test_context_lifecycle_builds_valid_requests() -> None:
    ctx = proto.ContextMachine("resp-1", SETTINGS)
    first = ctx.push("Hello there, ", more=True)
    last = ctx.push("", more=False)
    assert ctx.state is proto.ContextState.CLOSED
    for message in (first, last):
        check_client_event(message)
    assert first["continue"] is True and last["continue"] is False
    assert {k: v for k, v in first.items() if k not in ("transcript", "continue")} == {
        k: v for k, v in last.items() if k not in ("transcript", "continue")
    }
    with pytest.raises(proto.ProtocolError):
        ctx.push("more", more=True)
    ctx.receive(proto.Done("resp-1"))
    assert ctx.finished and ctx.cancel() is None


def test_flush_is_a_valid_request_only_while_streaming() -> None:
    ctx = proto.ContextMachine("resp-f", SETTINGS)
    with pytest.raises(proto.ProtocolError):
        ctx.flush()
    ctx.push("Hello there, friend. ", more=True)
    message = ctx.flush()
    check_client_event(message)
    assert (message["transcript"], message["continue"], message["flush"]) == ("", True, True)


def test_cancel_makes_later_traffic_late() -> None:
    ctx = proto.ContextMachine("resp-2", SETTINGS)
    assert ctx.cancel() is None  # nothing sent yet: nothing to tell the server
    ctx = proto.ContextMachine("resp-3", SETTINGS)
    ctx.push("Hello there, friend. ", more=True)
    message = ctx.cancel()
    assert message == {"context_id": "resp-3", "cancel": True}
    check_client_event(message)
    assert not ctx.accepts(proto.AudioChunk("resp-3", b"\0\0", 1.0, None))


def test_other_contexts_are_not_accepted() -> None:
    ctx = proto.ContextMachine("mine", SETTINGS)
    ctx.push("Hello there, friend. ", more=True)
    assert ctx.accepts(proto.AudioChunk("mine", b"", 0.0, None))
    assert not ctx.accepts(proto.AudioChunk("old", b"", 0.0, None))


def test_parse_every_response_type() -> None:
    data = base64.b64encode(b"\x01\x02").decode()
    messages = [
        proto.chunk_message("c", data, 3.0, None),
        proto.timestamps_message("c", ["a"], [0.0], [0.2], 1),
        proto.phoneme_timestamps_message("c", ["a"], [0.0], [0.1]),
        proto.flush_done_message("c", 1),
        proto.done_message("c"),
        proto.error_message("c", "bad", status_code=429, title="Too many"),
    ]
    parsed = [proto.parse_response(orjson.dumps(m)) for m in messages]
    assert parsed == [
        proto.AudioChunk("c", b"\x01\x02", 3.0, None),
        proto.WordTimestamps("c", ("a",), (0.0,), (0.2,)),
        proto.PhonemeTimestamps("c", ("a",), (0.0,), (0.1,)),
        proto.FlushDone("c", 1),
        proto.Done("c"),
        proto.ErrorResponse("c", 429, "Too many", "bad", "invalid_request"),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[1]",
        b'{"context_id": "c"}',
        b'{"type": "chunk", "context_id": "c", "data": "***"}',
        b'{"type": "timestamps", "context_id": "c", "word_timestamps": {"words": ["a"], '
        b'"start": [], "end": []}}',
    ],
)
def test_malformed_responses_raise_protocol_error(raw: bytes) -> None:
    with pytest.raises(proto.ProtocolError):
        proto.parse_response(raw)


def test_old_error_shape_is_understood() -> None:
    raw = b'{"type": "error", "done": true, "error": "Context has closed", "status_code": 400}'
    parsed = proto.parse_response(raw)
    assert isinstance(parsed, proto.ErrorResponse) and parsed.message == "Context has closed"


def test_server_side_validation_locks_fields_but_not_transcript() -> None:
    a = proto.parse_request(orjson.dumps(proto.generation_request(SETTINGS, "c", "Hi ", more=True)))
    b = proto.parse_request(orjson.dumps(proto.generation_request(SETTINGS, "c", "yo", more=False)))
    other = proto.GenerationSettings(model_id="sonic-3", voice_id="v-2")
    c = proto.parse_request(orjson.dumps(proto.generation_request(other, "c", "x", more=False)))
    assert isinstance(a, proto.InputRequest) and isinstance(b, proto.InputRequest)
    assert isinstance(c, proto.InputRequest)
    assert a.locked == b.locked != c.locked
    with pytest.raises(proto.RequestInvalid):
        proto.parse_request(b'{"context_id": "c", "cancel": false}')


def test_the_protocol_and_its_default_model_load_no_trio_and_no_websocket() -> None:
    # voiceagent.config reads DEFAULT_MODEL_ID from here: settings must stay cheap.
    code = (
        "import sys\n"
        "from voiceagent.tts.cartesia.protocol import DEFAULT_MODEL_ID\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'trio', 'trio_websocket', 'wsproto', 'httpx'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
