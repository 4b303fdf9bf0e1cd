"""The client side of the Cartesia TTS WebSocket: requests out, responses in (sans-I/O).

Builders return dicts (send them with `wire.encode`); `parse_response` validates one
server message into a small frozen dataclass, raises `ProtocolError` (remote) for a
malformed one and returns None for a well-formed type the client ignores. Shapes follow
the official `cartesia` package's types (`GenerationRequest`, `CancelContextRequest`,
`WebsocketResponse`).
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from voiceagent.tts.cartesia.wire import ProtocolError

# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class GenerationSettings:
    """The fields locked for the whole life of a context."""

    model_id: str
    voice_id: str
    language: str | None = "en"
    encoding: str = "pcm_s16le"
    sample_rate: int = 24_000
    add_timestamps: bool = True
    max_buffer_delay_ms: int | None = None

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model_id": self.model_id,
            "voice": {"mode": "id", "id": self.voice_id},
            "output_format": {
                "container": "raw",
                "encoding": self.encoding,
                "sample_rate": self.sample_rate,
            },
        }
        if self.language:
            out["language"] = self.language
        if self.add_timestamps:
            out["add_timestamps"] = True
        if self.max_buffer_delay_ms is not None:
            out["max_buffer_delay_ms"] = self.max_buffer_delay_ms
        return out


def generation_request(
    settings: GenerationSettings,
    context_id: str,
    transcript: str,
    *,
    more: bool,
    flush: bool = False,
) -> dict[str, Any]:
    """One input of a context; `more=True` sends `continue: true`."""
    msg = {"context_id": context_id, "transcript": transcript, **settings.fields()}
    msg["continue"] = more
    if flush:
        msg["flush"] = True
    return msg


def cancel_request(context_id: str) -> dict[str, Any]:
    return {"context_id": context_id, "cancel": True}


# ---------------------------------------------------------------- responses


@dataclass(frozen=True, slots=True)
class AudioChunk:
    context_id: str
    audio: bytes
    step_time_ms: float
    flush_id: int | None


@dataclass(frozen=True, slots=True)
class WordTimestamps:
    context_id: str
    words: tuple[str, ...]
    start: tuple[float, ...]
    end: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class PhonemeTimestamps:
    context_id: str
    phonemes: tuple[str, ...]
    start: tuple[float, ...]
    end: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class FlushDone:
    context_id: str
    flush_id: int


@dataclass(frozen=True, slots=True)
class Done:
    context_id: str


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    context_id: str | None
    status_code: int | None
    title: str
    message: str
    error_code: str | None

    def describe(self) -> str:
        code = f" [{self.error_code}]" if self.error_code else ""
        return f"{self.title}: {self.message}{code}"


Response = AudioChunk | WordTimestamps | PhonemeTimestamps | FlushDone | Done | ErrorResponse


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise ProtocolError(f"{obj.get('type')!r} message: {key!r} must be a string")
    return value


def _timing(obj: Any, names: str) -> tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]:
    if not isinstance(obj, dict):
        raise ProtocolError("timestamps must be an object")
    labels, start, end = obj.get(names), obj.get("start"), obj.get("end")
    if not (isinstance(labels, list) and isinstance(start, list) and isinstance(end, list)):
        raise ProtocolError(f"timestamps need {names}/start/end lists")
    if not len(labels) == len(start) == len(end):
        raise ProtocolError("timestamps lists differ in length")
    try:
        return (
            tuple(str(w) for w in labels),
            tuple(float(s) for s in start),
            tuple(float(e) for e in end),
        )
    except (TypeError, ValueError) as exc:
        raise ProtocolError("timestamps must be numbers") from exc


def parse_response(raw: str | bytes) -> Response | None:
    """Parse one server message; None for a well-formed type this client ignores."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"server sent invalid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ProtocolError("server message is not a JSON object")
    kind = obj.get("type")
    if kind == "chunk":
        try:
            audio = binascii.a2b_base64(_str(obj, "data"), strict_mode=True)
        except binascii.Error as exc:
            raise ProtocolError("chunk data is not base64") from exc
        flush_id = obj.get("flush_id")
        step_time = obj.get("step_time")
        return AudioChunk(
            _str(obj, "context_id"),
            audio,
            float(step_time) if isinstance(step_time, int | float) else 0.0,
            flush_id if isinstance(flush_id, int) else None,
        )
    if kind == "timestamps":
        words, start, end = _timing(obj.get("word_timestamps") or {}, "words")
        return WordTimestamps(_str(obj, "context_id"), words, start, end)
    if kind == "phoneme_timestamps":
        phonemes, start, end = _timing(obj.get("phoneme_timestamps") or {}, "phonemes")
        return PhonemeTimestamps(_str(obj, "context_id"), phonemes, start, end)
    if kind == "flush_done":
        flush_id = obj.get("flush_id")
        if not isinstance(flush_id, int):
            raise ProtocolError("flush_done without an integer flush_id")
        return FlushDone(_str(obj, "context_id"), flush_id)
    if kind == "done":
        return Done(_str(obj, "context_id"))
    if kind == "error":
        context_id = obj.get("context_id")
        status = obj.get("status_code")
        code = obj.get("error_code")
        # Older servers put a plain string in "error" instead of title/message.
        message = obj.get("message") or obj.get("error") or "no message"
        return ErrorResponse(
            context_id if isinstance(context_id, str) else None,
            status if isinstance(status, int) else None,
            str(obj.get("title") or "Error"),
            str(message),
            code if isinstance(code, str) else None,
        )
    if isinstance(kind, str):
        return None
    raise ProtocolError("server message without a 'type'")
