"""Server events of the Realtime API read into `voiceagent.events` (sans-I/O).

Rules of this module:

- `parse` turns one message into a dict with a string ``type`` or raises
  `ProtocolError`; the readers below turn one event's dict into the typed vocabulary.
  They keep no state: whatever the response tracker must remember is done by
  `RealtimeProtocol`, which calls them (or dispatches to them directly).
- A reader raises KeyError, TypeError, ValueError or AttributeError on a malformed
  event; `RealtimeProtocol.receive` turns those into one `ProtocolError` naming the
  event type. Optional fields missing is not malformed: they read as 0, "" or None.
- No sockets, no clocks.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from voiceagent.events import (
    FunctionCall,
    ModelError,
    ModelEvent,
    RateLimits,
    ResponseDone,
    ResponseStatus,
    SpeechStopped,
    TranscriptCompleted,
    TranscriptDelta,
    TranscriptFailed,
    Usage,
)

_STATUSES: frozenset[str] = frozenset({"completed", "cancelled", "failed", "incomplete"})
# Errors that only say "there was nothing to do": a cancel racing the end of a response.
_HARMLESS_ERRORS = frozenset({"response_cancel_not_active"})


class ProtocolError(Exception):
    """The server sent something we cannot read (a remote protocol error)."""


def parse(message: str | bytes) -> dict[str, Any]:
    """One server message as a dict with a string ``type``; else `ProtocolError`."""
    try:
        data = orjson.loads(message)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"server sent invalid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("server event is not an object with a string 'type'")
    return data


def usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    inp = raw.get("input_token_details") or {}
    out = raw.get("output_token_details") or {}
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        input_audio_tokens=int(inp.get("audio_tokens") or 0),
        output_audio_tokens=int(out.get("audio_tokens") or 0),
        input_text_tokens=int(inp.get("text_tokens") or 0),
        output_text_tokens=int(out.get("text_tokens") or 0),
        cached_tokens=int(inp.get("cached_tokens") or 0),
    )


def response_done(raw: dict[str, Any]) -> ResponseDone:
    """The ``response`` object of ``response.done``: its status, usage and reason."""
    status_raw = raw.get("status")
    status: ResponseStatus = status_raw if status_raw in _STATUSES else "failed"  # type: ignore[assignment]
    details = raw.get("status_details") or {}
    reason = details.get("reason")
    if reason is None and isinstance(details.get("error"), dict):
        reason = details["error"].get("code") or details["error"].get("type")
    return ResponseDone(raw["id"], status, usage(raw.get("usage")), reason)


def audio_pcm(data: dict[str, Any]) -> bytes:
    """The PCM of an audio delta; ValueError when it is not base64."""
    try:
        return base64.b64decode(data["delta"], validate=True)
    except binascii.Error as exc:
        raise ValueError(f"audio delta is not base64: {exc}") from None


def final_text(data: dict[str, Any]) -> str:
    """The whole text of a text or audio-transcript ``.done`` event."""
    text = data.get("text")
    if text is None:
        text = data.get("transcript") or ""
    return text


def function_call(data: dict[str, Any]) -> FunctionCall | None:
    """The call a ``response.output_item.done`` reports, or None for any other item
    (a message, or a call that did not complete)."""
    item = data["item"]
    if item.get("type") != "function_call" or item.get("status") != "completed":
        return None
    return FunctionCall(
        response_id=data["response_id"],
        item_id=item.get("id") or "",
        call_id=item["call_id"],
        name=item["name"],
        arguments=item.get("arguments") or "",
    )


def speech_stopped(data: dict[str, Any]) -> list[ModelEvent]:
    return [SpeechStopped(int(data.get("audio_end_ms") or 0), data.get("item_id"))]


def transcript_delta(data: dict[str, Any]) -> list[ModelEvent]:
    delta = data.get("delta") or ""
    return [TranscriptDelta(data["item_id"], delta)] if delta else []


def transcript_done(data: dict[str, Any]) -> list[ModelEvent]:
    return [TranscriptCompleted(data["item_id"], data.get("transcript") or "")]


def transcript_failed(data: dict[str, Any]) -> list[ModelEvent]:
    error = data.get("error") or {}
    return [TranscriptFailed(data["item_id"], error.get("message") or "transcription failed")]


def rate_limits(data: dict[str, Any]) -> list[ModelEvent]:
    limits: dict[str, dict[str, float]] = {}
    for entry in data.get("rate_limits") or ():
        name = entry.get("name")
        if isinstance(name, str):
            limits[name] = {
                k: float(entry[k])
                for k in ("limit", "remaining", "reset_seconds")
                if isinstance(entry.get(k), int | float)
            }
    return [RateLimits(limits)]


def error(data: dict[str, Any]) -> list[ModelEvent]:
    err = data.get("error") or {}
    code = err.get("code") or err.get("type") or "model_error"
    if code in _HARMLESS_ERRORS:
        return []
    return [ModelError(code=str(code), message=str(err.get("message") or code))]
