"""Client events of the Realtime API as JSON text, and the items they carry (sans-I/O).

Rules of this module:

- Pure builders: each takes what the event needs (the caller's ``event_id`` included,
  since the counter is per-connection state of `RealtimeProtocol`) and returns the text
  to send, or, for items, the dict that goes into ``conversation.item.create``.
- The flavour only changes the assistant text part: ``output_text`` (GA) or ``text``
  (beta); a server of the other flavour rejects it.
- No sockets, no clocks; nothing here raises on well-typed input.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from voiceagent.conversation import ConversationItem
from voiceagent.models.realtime.config import Flavor


def dumps(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def append_audio(pcm: bytes) -> str:
    """``input_audio_buffer.append``; built by hand because it is the hot path."""
    b64 = base64.b64encode(pcm).decode("ascii")
    return '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'


def commit_audio(event_id: str) -> str:
    return dumps({"type": "input_audio_buffer.commit", "event_id": event_id})


def item_create(event_id: str, item: dict[str, Any], previous_item_id: str | None = None) -> str:
    event: dict[str, Any] = {
        "type": "conversation.item.create",
        "event_id": event_id,
        "item": item,
    }
    if previous_item_id is not None:
        event["previous_item_id"] = previous_item_id
    return dumps(event)


def item_delete(event_id: str, item_id: str) -> str:
    return dumps({"type": "conversation.item.delete", "event_id": event_id, "item_id": item_id})


def item_truncate(event_id: str, item_id: str, audio_end_ms: int) -> str:
    return dumps(
        {
            "type": "conversation.item.truncate",
            "event_id": event_id,
            "item_id": item_id,
            "content_index": 0,
            "audio_end_ms": audio_end_ms,
        }
    )


def response_create(event_id: str) -> str:
    return dumps({"type": "response.create", "event_id": event_id})


def response_cancel(event_id: str, response_id: str) -> str:
    return dumps({"type": "response.cancel", "event_id": event_id, "response_id": response_id})


# ----------------------------------------------------------------- items


def user_message(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def _assistant_part(flavor: Flavor) -> str:
    return "output_text" if flavor == "ga" else "text"


def assistant_message(text: str, flavor: Flavor) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": _assistant_part(flavor), "text": text}],
    }


def function_call_output(call_id: str, output: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def history_item(item: ConversationItem, flavor: Flavor) -> dict[str, Any] | None:
    """An earlier item as the wire carries it (no id: the server gives new ones), or None
    for a type the Realtime conversation does not hold."""
    if item.type == "message":
        part = "input_text" if item.role == "user" else _assistant_part(flavor)
        content = [{"type": part, "text": item.text}]
        return {"type": "message", "role": item.role, "content": content}
    if item.type == "function_call":
        return {
            "type": "function_call",
            "call_id": item.call_id,
            "name": item.name,
            "arguments": item.arguments or "{}",
        }
    if item.type == "function_call_output":
        return {
            "type": "function_call_output",
            "call_id": item.call_id,
            "output": item.output or "",
        }
    return None
