"""The server side of the Cartesia TTS WebSocket: requests in, responses out (sans-I/O).

`parse_request` validates one client message the way the Cartesia server does and
raises `RequestInvalid` (with the context id when there is one) for anything it would
refuse; the builders make the server's messages in Cartesia's shapes. Used by the
emulator (`voiceagent.emulators.cartesia`) and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from voiceagent.tts.cartesia.wire import (
    ENCODINGS,
    PER_INPUT_FIELDS,
    REQUEST_FIELDS,
    SAMPLE_RATES,
    SPEEDS,
    ProtocolError,
)

# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class CancelRequest:
    context_id: str


@dataclass(frozen=True, slots=True)
class InputRequest:
    """One validated generation input, as a server sees it."""

    context_id: str
    transcript: str
    more: bool
    flush: bool
    encoding: str
    sample_rate: int
    add_timestamps: bool
    add_phoneme_timestamps: bool
    max_buffer_delay_ms: int | None
    locked: tuple[tuple[str, bytes], ...]  # the fields that must not change in a context


class RequestInvalid(ProtocolError):
    """A client request the server must answer with an error message."""

    def __init__(self, message: str, context_id: str | None) -> None:
        super().__init__(message)
        self.context_id = context_id


def _check_optional(obj: dict[str, Any], key: str, kind: type, ctx: str | None) -> None:
    value = obj.get(key)
    if value is not None and not isinstance(value, kind):
        raise RequestInvalid(f"'{key}' must be of type {kind.__name__}", ctx)


def parse_request(raw: str | bytes) -> InputRequest | CancelRequest:
    """Validate one client message the way the Cartesia server does (RequestInvalid if bad)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestInvalid(f"invalid JSON: {exc}", None) from exc
    if not isinstance(obj, dict):
        raise RequestInvalid("message must be a JSON object", None)
    ctx = obj.get("context_id")
    ctx = ctx if isinstance(ctx, str) else None
    if "cancel" in obj:
        if obj["cancel"] is not True or not ctx or set(obj) != {"cancel", "context_id"}:
            raise RequestInvalid("cancel needs exactly {context_id: str, cancel: true}", ctx)
        return CancelRequest(ctx)
    unknown = set(obj) - REQUEST_FIELDS
    if unknown:
        raise RequestInvalid(f"unknown field(s): {', '.join(sorted(unknown))}", ctx)
    for key in ("context_id", "model_id", "transcript", "voice", "output_format"):
        if key not in obj:
            raise RequestInvalid(f"missing required field '{key}'", ctx)
    if not ctx:
        raise RequestInvalid("'context_id' must be a non-empty string", None)
    if not isinstance(obj["model_id"], str) or not obj["model_id"]:
        raise RequestInvalid("'model_id' must be a non-empty string", ctx)
    if not isinstance(obj["transcript"], str):
        raise RequestInvalid("'transcript' must be a string", ctx)
    voice = obj["voice"]
    if not (
        isinstance(voice, dict)
        and voice.get("mode") == "id"
        and isinstance(voice.get("id"), str)
        and voice["id"]
        and set(voice) == {"mode", "id"}
    ):
        raise RequestInvalid("'voice' must be {mode: 'id', id: str}", ctx)
    fmt = obj["output_format"]
    if not isinstance(fmt, dict) or set(fmt) != {"container", "encoding", "sample_rate"}:
        raise RequestInvalid("'output_format' needs container, encoding and sample_rate", ctx)
    if fmt["container"] != "raw":
        raise RequestInvalid("only container 'raw' is supported over WebSocket", ctx)
    if fmt["encoding"] not in ENCODINGS:
        raise RequestInvalid(f"unsupported encoding {fmt['encoding']!r}", ctx)
    if fmt["sample_rate"] not in SAMPLE_RATES or isinstance(fmt["sample_rate"], bool):
        raise RequestInvalid(f"unsupported sample_rate {fmt['sample_rate']!r}", ctx)
    for key in (
        "continue",
        "flush",
        "add_timestamps",
        "add_phoneme_timestamps",
        "use_normalized_timestamps",
    ):
        _check_optional(obj, key, bool, ctx)
    for key in ("language", "pronunciation_dict_id"):
        _check_optional(obj, key, str, ctx)
    delay = obj.get("max_buffer_delay_ms")
    if delay is not None and (
        not isinstance(delay, int) or isinstance(delay, bool) or not 0 <= delay <= 5000
    ):
        raise RequestInvalid("'max_buffer_delay_ms' must be an integer in [0, 5000]", ctx)
    if obj.get("speed") is not None and obj["speed"] not in SPEEDS:
        raise RequestInvalid("'speed' must be slow, normal or fast", ctx)
    gen = obj.get("generation_config")
    if gen is not None:
        _check_generation_config(gen, ctx)
    locked = tuple(
        sorted((k, orjson.dumps(v, option=orjson.OPT_SORT_KEYS)) for k, v in obj.items())
    )
    return InputRequest(
        context_id=ctx,
        transcript=obj["transcript"],
        more=bool(obj.get("continue")),
        flush=bool(obj.get("flush")),
        encoding=fmt["encoding"],
        sample_rate=fmt["sample_rate"],
        add_timestamps=bool(obj.get("add_timestamps")),
        add_phoneme_timestamps=bool(obj.get("add_phoneme_timestamps")),
        max_buffer_delay_ms=delay,
        locked=tuple((k, v) for k, v in locked if k not in PER_INPUT_FIELDS),
    )


def _check_generation_config(gen: Any, ctx: str | None) -> None:
    if not isinstance(gen, dict) or set(gen) - {"speed", "volume", "emotion"}:
        raise RequestInvalid("'generation_config' allows speed, volume and emotion", ctx)
    for key, low, high in (("speed", 0.6, 1.5), ("volume", 0.5, 2.0)):
        value = gen.get(key)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if value is not None and not (is_number and low <= value <= high):
            raise RequestInvalid(f"generation_config.{key} must be in [{low}, {high}]", ctx)
    if gen.get("emotion") is not None and not isinstance(gen["emotion"], str):
        raise RequestInvalid("generation_config.emotion must be a string", ctx)


# ---------------------------------------------------------------- responses


def chunk_message(context_id: str, b64: str, step_time_ms: float, flush_id: int | None) -> dict:
    msg: dict[str, Any] = {
        "type": "chunk",
        "context_id": context_id,
        "data": b64,
        "done": False,
        "status_code": 206,
        "step_time": round(step_time_ms, 3),
    }
    if flush_id is not None:
        msg["flush_id"] = flush_id
    return msg


def timestamps_message(
    context_id: str,
    words: list[str],
    start: list[float],
    end: list[float],
    flush_id: int | None,
) -> dict:
    msg: dict[str, Any] = {
        "type": "timestamps",
        "context_id": context_id,
        "done": False,
        "status_code": 206,
        "word_timestamps": {"words": words, "start": start, "end": end},
    }
    if flush_id is not None:
        msg["flush_id"] = flush_id
    return msg


def phoneme_timestamps_message(
    context_id: str, phonemes: list[str], start: list[float], end: list[float]
) -> dict:
    return {
        "type": "phoneme_timestamps",
        "context_id": context_id,
        "done": False,
        "status_code": 206,
        "phoneme_timestamps": {"phonemes": phonemes, "start": start, "end": end},
    }


def flush_done_message(context_id: str, flush_id: int) -> dict:
    return {
        "type": "flush_done",
        "context_id": context_id,
        "done": False,
        "flush_done": True,
        "flush_id": flush_id,
        "status_code": 206,
    }


def done_message(context_id: str) -> dict:
    return {"type": "done", "context_id": context_id, "done": True, "status_code": 206}


def error_message(
    context_id: str | None,
    message: str,
    *,
    status_code: int = 400,
    title: str = "Invalid request",
    error_code: str = "invalid_request",
    request_id: str | None = None,
) -> dict:
    msg: dict[str, Any] = {
        "type": "error",
        "done": True,
        "status_code": status_code,
        "title": title,
        "message": message,
        "error_code": error_code,
    }
    if context_id is not None:
        msg["context_id"] = context_id
    if request_id is not None:
        msg["request_id"] = request_id
    return msg
