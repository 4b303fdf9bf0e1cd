"""The browser <-> server protocol (docs/protocol.md), as pure code.

Rules of this module:
- No sockets, no tasks, no session state: bytes or text in, typed messages out, and
  JSON text built from plain values. The session, the tests and the load generators all
  use these same functions.
- Every way a client message can be wrong maps to one `ProtocolError` with a stable
  `code` from docs/protocol.md; nothing here raises anything else on bad input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

PROTOCOL_VERSION = 2  # 2: `session_started.limits` announces the frame durations
SAMPLE_RATE = 24_000
MAX_RESPONSE_ID_CHARS = 128
MAX_CLIENT_E2E_MS = 60_000  # a client_metrics figure above this is refused


class ProtocolError(Exception):
    """The client sent something the protocol does not allow (the client's fault)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# The JSON around a message's payload (type, field names, quotes), with room to spare.
ENVELOPE_CHARS = 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """What `session_started.limits` announces, and what the parser enforces.

    The frame durations are the client's to choose (the server never asks a client for
    its framing: it re-batches whatever arrives, audio_batch.py): any frame from
    `min_audio_frame_ms` to `max_audio_frame_ms` is in the contract, and the client
    should send `preferred_audio_frame_ms`. Only `max_audio_frame_bytes` is enforced
    (`frame_too_large` above it), so a shorter frame (the tail of an utterance) is fine.
    """

    max_audio_frame_bytes: int = 32768
    max_text_chars: int = 4000
    min_audio_frame_ms: int = 10
    max_audio_frame_ms: int = 200
    preferred_audio_frame_ms: int = 100

    @property
    def max_text_message_chars(self) -> int:
        """The longest text message the protocol can need: JSON audio of a full frame
        (up to 8 characters a sample, as in `-32768, `) or a full `text` with every
        character escaped (6, as in `\\u00e9`), plus the envelope. 132 096 by default."""
        audio = self.max_audio_frame_bytes // 2 * 8
        return max(audio, self.max_text_chars * 6) + ENVELOPE_CHARS

    @property
    def max_message_size(self) -> int:
        """The largest WebSocket message the protocol can need: bytes of a binary one,
        characters of a text one (Hypercorn counts a text message in characters)."""
        return max(self.max_audio_frame_bytes, self.max_text_message_chars)

    @property
    def transport_limit(self) -> int:
        """The default transport limit: `max_message_size` rounded up to a power of two
        (256 KiB by default). Anything larger is cut with close 1009 before it is
        buffered whole; anything between the two gets a `frame_too_large` error."""
        return 1 << (self.max_message_size - 1).bit_length()


# -- client -> server messages --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioIn:
    pcm: bytes


@dataclass(frozen=True, slots=True)
class TextIn:
    text: str


@dataclass(frozen=True, slots=True)
class CommitAudio:
    pass


@dataclass(frozen=True, slots=True)
class Interrupt:
    pass


@dataclass(frozen=True, slots=True)
class ClientVadSpeechStart:
    pass


@dataclass(frozen=True, slots=True)
class Playback:
    response_id: str
    played_ms: int


@dataclass(frozen=True, slots=True)
class ClientMetrics:
    response_id: str
    e2e_ms: float


ClientMessage = (
    AudioIn | TextIn | CommitAudio | Interrupt | ClientVadSpeechStart | Playback | ClientMetrics
)


def parse_client_message(data: str | bytes, limits: Limits) -> ClientMessage:
    """Parse one WebSocket message; raises `ProtocolError` when it is not allowed."""
    if isinstance(data, bytes | bytearray | memoryview):
        return AudioIn(_check_pcm(bytes(data), limits))
    if len(data) > limits.max_text_message_chars:
        # Longer than any message the protocol allows, whatever it holds: refused before
        # parsing (a 252 KB text message padded with nested arrays took ~21 ms of the
        # event loop to parse, and was then accepted).
        raise ProtocolError(
            "frame_too_large",
            f"message of {len(data)} characters exceeds {limits.max_text_message_chars}",
        )
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ProtocolError("invalid_json", "message is not valid JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolError("invalid_message", "message must be a JSON object")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid_message", "message needs a string 'type'")
    parser = _PARSERS.get(kind)
    if parser is None:
        raise ProtocolError("unknown_type", f"unknown message type {kind[:40]!r}")
    return parser(obj, limits)


def _check_pcm(pcm: bytes, limits: Limits) -> bytes:
    if len(pcm) > limits.max_audio_frame_bytes:
        raise ProtocolError(
            "frame_too_large",
            f"audio frame of {len(pcm)} bytes exceeds {limits.max_audio_frame_bytes}",
        )
    if len(pcm) % 2:
        raise ProtocolError("audio_odd_length", "PCM16 audio needs an even number of bytes")
    return pcm


def _audio_json(obj: dict[str, Any], limits: Limits) -> AudioIn:
    data = obj.get("data")
    if not isinstance(data, list):
        raise ProtocolError("invalid_message", "'audio.data' must be a list of int16 samples")
    if len(data) * 2 > limits.max_audio_frame_bytes:
        raise ProtocolError("frame_too_large", f"audio of {len(data)} samples is too large")
    try:
        samples = np.asarray(data)
    except (ValueError, TypeError):
        raise ProtocolError("invalid_message", "'audio.data' must be flat integers") from None
    if samples.size and samples.dtype.kind not in "iu":
        raise ProtocolError("invalid_message", "'audio.data' must hold integers only")
    if samples.ndim != 1:
        raise ProtocolError("invalid_message", "'audio.data' must be a flat list")
    if samples.size and (samples.min() < -32768 or samples.max() > 32767):
        raise ProtocolError("audio_out_of_range", "samples must lie in -32768..32767")
    return AudioIn(samples.astype("<i2").tobytes())


def _text(obj: dict[str, Any], limits: Limits) -> TextIn:
    text = obj.get("text")
    if not isinstance(text, str):
        raise ProtocolError("invalid_message", "'text.text' must be a string")
    if len(text) > limits.max_text_chars:
        raise ProtocolError(
            "text_too_long", f"text of {len(text)} characters exceeds {limits.max_text_chars}"
        )
    text = text.strip()
    if not text:
        raise ProtocolError("invalid_message", "'text.text' must not be empty")
    return TextIn(text)


def _response_id(obj: dict[str, Any]) -> str:
    response_id = obj.get("response_id")
    if not isinstance(response_id, str) or not 0 < len(response_id) <= MAX_RESPONSE_ID_CHARS:
        raise ProtocolError("invalid_message", "'response_id' must be a non-empty string")
    return response_id


def _non_negative(obj: dict[str, Any], name: str) -> float:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e9:
        raise ProtocolError("invalid_message", f"'{name}' must be a number >= 0")
    return float(value)


def _playback(obj: dict[str, Any], limits: Limits) -> Playback:
    return Playback(_response_id(obj), int(_non_negative(obj, "played_ms")))


def _client_metrics(obj: dict[str, Any], limits: Limits) -> ClientMetrics:
    # The figure is the client's word, unverified: bound it so that no client can push
    # the `voiceagent_client_e2e_seconds` histogram past what a real turn can take.
    value = obj.get("e2e_ms")
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_CLIENT_E2E_MS
    ):
        raise ProtocolError(
            "invalid_message", f"'e2e_ms' must be a number > 0 and <= {MAX_CLIENT_E2E_MS}"
        )
    return ClientMetrics(_response_id(obj), float(value))


_PARSERS = {
    "audio": _audio_json,
    "text": _text,
    "commit_audio": lambda obj, limits: CommitAudio(),
    "interrupt": lambda obj, limits: Interrupt(),
    "client_vad_speech_start": lambda obj, limits: ClientVadSpeechStart(),
    "playback": _playback,
    "client_metrics": _client_metrics,
}


# -- server -> client events ----------------------------------------------------------


def event(kind: str, **fields: Any) -> str:
    """One server event as JSON text (a WebSocket text frame)."""
    fields["type"] = kind
    return orjson.dumps(fields).decode()


def error_event(code: str, message: str, *, reconnect: bool = False) -> str:
    """An `error` event; `reconnect` adds `"reconnect": true` (open the same id again)."""
    if reconnect:
        return event("error", code=code, message=message, reconnect=True)
    return event("error", code=code, message=message)


def session_started(
    *,
    session_id: str,
    model: str,
    tts: str,
    agent: str,
    offline_brain: bool,
    limits: Limits,
) -> str:
    return event(
        "session_started",
        protocol=PROTOCOL_VERSION,
        session_id=session_id,
        model=model,
        tts=tts,
        agent=agent,
        offline_brain=offline_brain,
        audio={"format": "pcm16", "sample_rate": SAMPLE_RATE, "channels": 1},
        limits={
            "max_audio_frame_bytes": limits.max_audio_frame_bytes,
            "max_text_chars": limits.max_text_chars,
            "min_audio_frame_ms": limits.min_audio_frame_ms,
            "max_audio_frame_ms": limits.max_audio_frame_ms,
            "preferred_audio_frame_ms": limits.preferred_audio_frame_ms,
        },
    )


def chunk_pcm(pcm: bytes, chunk_bytes: int) -> list[bytes]:
    """Split audio into wire frames of at most `chunk_bytes` (an even number)."""
    if len(pcm) <= chunk_bytes:
        return [pcm]
    view = memoryview(pcm)
    return [bytes(view[i : i + chunk_bytes]) for i in range(0, len(pcm), chunk_bytes)]


def pcm_ms(byte_count: int) -> int:
    """Duration in ms of `byte_count` bytes of PCM16 mono at 24 kHz."""
    return byte_count * 1000 // (2 * SAMPLE_RATE)


SESSION_ID_MAX = 64


def valid_session_id(session_id: str) -> bool:
    return (
        0 < len(session_id) <= SESSION_ID_MAX
        and session_id.isascii()
        and all(ch.isalnum() or ch in "_-" for ch in session_id)
    )
