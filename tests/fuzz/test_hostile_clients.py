"""Hostile input over real sockets: every frame a client can send, generated.

Properties, for any sequence of frames on one connection:
- the server answers with typed JSON events (`error` events carry a code) or ignores
  the frame; it never closes with 1011 and never logs a traceback;
- a well-behaved neighbour room on the same server keeps receiving its audio with no
  gap longer than 100 ms beyond its pacing.

The server and the neighbour run in their own processes (tests/fuzz/scripted_server.py,
tests/fuzz/neighbour.py) so the figures are theirs, not the test process's. The default
run generates a few thousand frames (plus the parser's own property test); `-m slow`
runs the same properties over tens of thousands.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.raw_client import (
    BINARY,
    CLOSE,
    CONTINUATION,
    PING,
    PONG,
    TEXT,
    close_code_in,
    frame,
    open_raw,
)
from voiceagent.protocol import Limits, ProtocolError, parse_client_message

ROOT = Path(__file__).resolve().parents[2]
PACING_MS = 40  # the scripted voice's chunk (tests/fuzz/scripted_server.py)
ALLOWED_CLOSES = {1000, 1002, 1007, 1008, 1009, 1013}
TYPES = [
    "audio",
    "text",
    "commit_audio",
    "interrupt",
    "client_vad_speech_start",
    "playback",
    "client_metrics",
    "session.update",
    "",
]

# -- what a hostile client sends ------------------------------------------------------

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)


@st.composite
def protocol_messages(draw: st.DrawFn) -> bytes:
    """A JSON object shaped like a client message, with any field values."""
    fields = draw(
        st.dictionaries(
            st.sampled_from(["text", "data", "response_id", "played_ms", "e2e_ms", "x"]),
            json_values,
            max_size=4,
        )
    )
    fields["type"] = draw(st.sampled_from(TYPES) | st.text(max_size=20) | json_values)
    # allow_nan: NaN and Infinity literals are not JSON; the server must say so.
    return json.dumps(fields, allow_nan=True).encode()


# Well-formed messages, so that sequences interleave real turns, barge-ins and playback
# reports with the garbage.
valid_messages = st.one_of(
    st.builds(lambda text: {"type": "text", "text": text}, st.text(min_size=1, max_size=80)),
    st.just({"type": "text", "text": "tell me a story"}),
    st.just({"type": "interrupt"}),
    st.just({"type": "commit_audio"}),
    st.just({"type": "client_vad_speech_start"}),
    st.builds(
        lambda rid, ms: {"type": "playback", "response_id": rid, "played_ms": ms},
        st.text(min_size=1, max_size=20),
        st.integers(0, 10**6),
    ),
    st.builds(
        lambda rid, ms: {"type": "client_metrics", "response_id": rid, "e2e_ms": ms},
        st.text(min_size=1, max_size=20),
        st.floats(0, 1e6),
    ),
    st.builds(
        lambda data: {"type": "audio", "data": data},
        st.lists(st.integers(-32768, 32767), max_size=480),
    ),
).map(orjson.dumps)
nested = st.integers(min_value=1, max_value=100_000).map(lambda n: b"[" * n + b"]" * n)
padded = st.integers(min_value=1, max_value=300_000).map(
    lambda n: b'{"type":"interrupt","pad":[' + b"[]," * (n // 3) + b"[]]}"
)
text_payloads = st.one_of(
    valid_messages,
    valid_messages,
    valid_messages,
    protocol_messages(),
    protocol_messages(),
    protocol_messages(),
    nested,
    padded,
    st.binary(max_size=200),  # often invalid UTF-8
    st.text(max_size=200).map(str.encode),
)
audio_payloads = st.one_of(
    st.binary(max_size=4000),
    st.integers(min_value=0, max_value=70_000).map(lambda n: bytes(n)),  # up to 2x the limit
)
frames = st.one_of(
    text_payloads.map(lambda p: frame(TEXT, p)),
    text_payloads.map(lambda p: frame(TEXT, p)),
    audio_payloads.map(lambda p: frame(BINARY, p)),
    audio_payloads.map(lambda p: frame(BINARY, p)),
    st.binary(max_size=125).map(lambda p: frame(PING, p)),
    st.binary(max_size=125).map(lambda p: frame(PONG, p)),
    # Fragments, in order or not.
    st.tuples(st.sampled_from([TEXT, BINARY, CONTINUATION]), st.binary(max_size=100)).map(
        lambda t: frame(t[0], t[1], fin=False)
    ),
    st.binary(max_size=100).map(lambda p: frame(CONTINUATION, p)),
    # Rarely: what ends a connection (protocol errors, Close, then data after it).
    st.tuples(st.integers(0, 15), st.integers(0, 7), st.binary(max_size=130))
    .map(lambda t: frame(t[0], t[2], rsv=t[1]))
    .filter(lambda _: True),
    st.tuples(st.integers(0, 5000), st.binary(max_size=20)).map(
        lambda t: frame(CLOSE, t[0].to_bytes(2, "big") + t[1])
    ),
)
sequences = st.lists(frames, min_size=1, max_size=60)

SENTINEL = frame(TEXT, b'{"type":"fuzz_end"}')


def is_sentinel_answer(event: dict[str, object]) -> bool:
    return event.get("type") == "error" and "fuzz_end" in str(event.get("message"))


# -- the server and the neighbour, in their own processes -------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("fuzz")
    port_file, log_file = folder / "port", folder / "server.log"
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.scripted_server", str(port_file)],
            cwd=ROOT,
            stderr=log,
            stdout=log,
        )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            assert process.poll() is None, log_file.read_text()
            assert time.monotonic() < deadline, "the fuzz server did not start"
            time.sleep(0.05)
        yield f"127.0.0.1:{port_file.read_text()}", log_file
    finally:
        process.terminate()
        process.wait(10)


def start_neighbour(address: str, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fuzz.neighbour", address, str(seconds)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def neighbour_figures(process: subprocess.Popen[str]) -> dict[str, float]:
    out, _ = process.communicate(input="", timeout=60)
    assert process.returncode == 0, out
    return orjson.loads(out.strip().splitlines()[-1])


# -- one generated connection ---------------------------------------------------------


async def play(address: str, sequence: list[bytes], session_id: str) -> None:
    client = await open_raw(address, f"/ws/{session_id}")
    try:
        for data in [*sequence, SENTINEL]:
            if not await client.send_raw(data):
                break
        await client.read_until(is_sentinel_answer, within=15)
    finally:
        await client.stream.aclose()
    for event in client.events:
        assert isinstance(event.get("type"), str), event
        if event["type"] == "error":
            assert isinstance(event.get("code"), str) and event["code"], event
            assert event["code"] != "internal_error", event
    assert client.close_code not in (1011,), client.events[-3:]
    if client.close_code is not None:
        # A valid Close from the client is answered with its own code (RFC 6455 5.5.1).
        echoed = {close_code_in(data) for data in sequence}
        assert client.close_code in ALLOWED_CLOSES | echoed, client.close_code
    # Either the sentinel was answered, or the connection was ended for a reason.
    assert (
        client.eof or client.close_code is not None or any(map(is_sentinel_answer, client.events))
    )


def fuzz(address: str, examples: int) -> int:
    sent = 0
    counter = iter(range(10**9))

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=False,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(sequences)
    def one_connection(sequence: list[bytes]) -> None:
        nonlocal sent
        sent += len(sequence) + 1
        trio.run(play, address, sequence, f"fuzz-{next(counter)}")

    one_connection()
    return sent


def assert_no_traceback(log_file: Path) -> None:
    text = log_file.read_text()
    assert "Traceback" not in text, text[-4000:]


def run_fuzz(server: tuple[str, Path], examples: int, neighbour_seconds: float) -> None:
    address, log_file = server
    neighbour = start_neighbour(address, neighbour_seconds)
    time.sleep(1.0)  # the neighbour's reply is streaming
    sent = fuzz(address, examples)
    figures = neighbour_figures(neighbour)
    assert sent >= examples
    assert figures["frames"] > 0 and figures["replies"] >= 0
    assert figures["longest_gap_ms"] < PACING_MS + 100, figures
    assert_no_traceback(log_file)


def test_hostile_connections_get_typed_answers_and_spare_the_neighbour(
    server: tuple[str, Path],
) -> None:
    run_fuzz(server, examples=400, neighbour_seconds=600)


@pytest.mark.parametrize("code", [1000, 1001, 3000, 4999])
def test_a_client_close_is_answered_with_its_own_code(server: tuple[str, Path], code: int) -> None:
    async def close_with(code: int) -> int | None:
        client = await open_raw(server[0], f"/ws/closing-{code}")
        sent = frame(CLOSE, code.to_bytes(2, "big"))
        assert close_code_in(sent) == code
        await client.send_raw(sent)
        await client.read_until(lambda event: False, within=10)
        await client.stream.aclose()
        return client.close_code

    assert trio.run(close_with, code) == code


def test_a_client_close_without_a_status_is_answered_without_one(server: tuple[str, Path]) -> None:
    # The fuzz found it: the answer is an empty Close too, which wsproto reads as 1005.
    async def close_empty() -> int | None:
        client = await open_raw(server[0], "/ws/closing-empty")
        sent = frame(CLOSE, b"")
        assert close_code_in(sent) == 1005
        await client.send_raw(sent)
        await client.read_until(lambda event: False, within=10)
        await client.stream.aclose()
        return client.close_code

    assert trio.run(close_empty) == 1005


@pytest.mark.slow
def test_hostile_connections_at_volume(server: tuple[str, Path]) -> None:
    run_fuzz(server, examples=5000, neighbour_seconds=3600)


# -- the parser alone -------------------------------------------------------------------


@settings(max_examples=3000, deadline=None, database=None)
@given(st.one_of(text_payloads.map(lambda b: b.decode("utf-8", "replace")), audio_payloads))
def test_the_parser_answers_every_input_with_a_message_or_a_protocol_error(
    data: str | bytes,
) -> None:
    try:
        parse_client_message(data, Limits())
    except ProtocolError as exc:
        assert exc.code and exc.message
