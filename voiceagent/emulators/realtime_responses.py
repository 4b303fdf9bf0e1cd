"""One emulated response: its phases and the server events that describe it (sans-I/O).

Rules of this module: no I/O, no clock. Each builder applies one step to a
`ResponseState` (and, for conversation responses, to the conversation) and returns the
events that step means, in order; the caller sends them. The response generator calls
the step builders while it produces output; the server state machine moves the phases
(`ResponseState.move`, a table) and builds the `tail`. Events are built as the step
happens, so what they say is a snapshot of that moment.

Theory of operation (one response, from ``response.create`` to its task's end):

    GENERATING --finish--> FINISHING --end--> ENDED
    GENERATING --cancel--> CANCELLED --end--> ENDED
    FINISHING  --cancel--> FINISHING    (its tail is already on its way: it is awaited)
    CANCELLED  --finish--> CANCELLED    (the tail was built when it was cancelled)

*finish*: the generator returned; `tail` closes what is still open and builds
``response.done`` (status ``completed``, or ``failed`` after an injected error). *cancel*:
the server cancelled it (``response.cancel``, or speech with ``interrupt_response``) and
builds the tail at once, so it reflects the conversation at the moment of cancelling:
the open item is closed as ``incomplete`` and ``response.done`` says ``cancelled`` with
the reason. Either way the tail is built exactly once. *end*: the response's task ended,
however it ended (a client gone mid-response ends it with no tail at all).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Protocol

from voiceagent.emulators.realtime_items import Conversation, WireItem
from voiceagent.emulators.realtime_session import SessionState
from voiceagent.pcm import SAMPLE_RATE


class Phase(enum.Enum):
    GENERATING = "generating"
    FINISHING = "finishing"
    CANCELLED = "cancelled"
    ENDED = "ended"


_LIVE = (Phase.GENERATING, Phase.FINISHING, Phase.CANCELLED)
# (phase, event) -> next phase; see the diagram in the module docstring.
TRANSITIONS: dict[tuple[Phase, str], Phase] = {
    (Phase.GENERATING, "finish"): Phase.FINISHING,
    (Phase.GENERATING, "cancel"): Phase.CANCELLED,
    (Phase.FINISHING, "cancel"): Phase.FINISHING,
    (Phase.CANCELLED, "finish"): Phase.CANCELLED,
    **{(p, "end"): Phase.ENDED for p in _LIVE},
}


class ServerView(Protocol):
    """What the builders read of the server: its flavour, session and conversation."""

    flavor: str
    session: SessionState
    conversation: Conversation


@dataclass(slots=True)
class ResponseState:
    id: str
    number: int  # counts every response.create of the connection, from 1 (for faults)
    conversation: bool  # False for out-of-band (conversation "none") responses
    modalities: list[str]
    instructions: str | None = None
    tools: list[Any] | None = None
    metadata: Any = None
    phase: Phase = Phase.GENERATING
    output: list[WireItem] = field(default_factory=list)
    open_item: WireItem | None = None
    cancel_reason: str | None = None  # "client_cancelled", "turn_detected" or "error"
    output_chars: int = 0
    output_audio_ms: int = 0
    deltas: int = 0

    def move(self, event: str) -> Phase:
        """Apply `event`; returns the phase it was in (a bad event is a bug: KeyError)."""
        before = self.phase
        self.phase = TRANSITIONS[(before, event)]
        return before

    def index_of(self, item: WireItem) -> int:
        return next(i for i, out in enumerate(self.output) if out is item)


def names(flavor: str) -> dict[str, str]:
    """Event name stems of output deltas in `flavor`."""
    if flavor == "ga":
        return {
            "text": "response.output_text",
            "audio": "response.output_audio",
            "transcript": "response.output_audio_transcript",
        }
    return {
        "text": "response.text",
        "audio": "response.audio",
        "transcript": "response.audio_transcript",
    }


def response_object(server: ServerView, r: ResponseState, status: str) -> dict[str, Any]:
    session = server.session
    obj: dict[str, Any] = {
        "id": r.id,
        "object": "realtime.response",
        "status": status,
        "status_details": None,
        "output": [item.wire(server.flavor) for item in r.output],
        "conversation_id": "conv_" + session.id[5:] if r.conversation else None,
        "max_output_tokens": session.max_output_tokens,
        "usage": None,
        "metadata": r.metadata,
    }
    if server.flavor == "ga":
        obj["output_modalities"] = r.modalities
        obj["audio"] = {
            "output": {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": session.voice}
        }
    else:
        obj["modalities"] = ["audio", "text"] if r.modalities == ["audio"] else ["text"]
        obj["voice"] = session.voice
        obj["output_audio_format"] = "pcm16"
        obj["temperature"] = session.temperature
    return obj


def usage(server: ServerView, r: ResponseState) -> dict[str, Any]:
    """Synthetic token counts: ~4 characters a text token; audio 10 tokens a second in,
    20 out."""
    history = server.conversation.history()
    in_text = sum(len(i.text) for i in history) // 4 + len(server.session.instructions) // 4
    in_audio = server.conversation.user_audio_ms() // 100
    out_text = r.output_chars // 4
    out_audio = r.output_audio_ms // 50
    detail_in: dict[str, Any] = {
        "text_tokens": in_text,
        "audio_tokens": in_audio,
        "cached_tokens": 0,
    }
    if server.flavor == "ga":
        detail_in["image_tokens"] = 0
        detail_in["cached_tokens_details"] = {
            "text_tokens": 0,
            "audio_tokens": 0,
            "image_tokens": 0,
        }
    return {
        "total_tokens": in_text + in_audio + out_text + out_audio,
        "input_tokens": in_text + in_audio,
        "output_tokens": out_text + out_audio,
        "input_token_details": detail_in,
        "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
    }


def rate_limits_event(requests: int, tokens: int, responses: int) -> dict[str, Any]:
    return {
        "type": "rate_limits.updated",
        "rate_limits": [
            {
                "name": "requests",
                "limit": requests,
                "remaining": max(0, requests - responses),
                "reset_seconds": 0.06,
            },
            {"name": "tokens", "limit": tokens, "remaining": tokens, "reset_seconds": 1.2},
        ],
    }


SERVER_ERROR_EVENT: dict[str, Any] = {
    "type": "error",
    "error": {
        "type": "server_error",
        "code": "server_error",
        "message": "The server had an error while processing your request.",
        "param": None,
        "event_id": None,
    },
}


def created(server: ServerView, r: ResponseState) -> dict[str, Any]:
    return {"type": "response.created", "response": response_object(server, r, "in_progress")}


def open_output(server: ServerView, r: ResponseState, item: WireItem) -> list[dict[str, Any]]:
    """Add `item` to the output (and the conversation) as the open item; announce it."""
    r.output.append(item)
    r.open_item = item
    wire = item.wire(server.flavor)
    events: list[dict[str, Any]] = [
        {
            "type": "response.output_item.added",
            "response_id": r.id,
            "output_index": len(r.output) - 1,
            "item": wire,
        }
    ]
    if r.conversation:
        prev = server.conversation.insert(item)
        kind = "conversation.item.added" if server.flavor == "ga" else "conversation.item.created"
        events.append({"type": kind, "previous_item_id": prev, "item": item.wire(server.flavor)})
    return events


def item_base(r: ResponseState, item: WireItem) -> dict[str, Any]:
    """The fields every event about `item`'s content carries."""
    base = {"response_id": r.id, "item_id": item.id, "output_index": r.index_of(item)}
    if item.item.type == "function_call":
        return {**base, "call_id": item.item.call_id}
    return {**base, "content_index": 0}


def add_part(r: ResponseState, item: WireItem, audio: bool) -> dict[str, Any]:
    """Give the open message its one part; ``content_part.added`` in the wire's naming."""
    if audio:
        item.parts = [{"type": "output_audio", "transcript": ""}]
        part = {"type": "audio", "transcript": ""}
    else:
        item.parts = [{"type": "output_text", "text": ""}]
        part = {"type": "text", "text": ""}
    return {"type": "response.content_part.added", **item_base(r, item), "part": part}


def close_function_call(
    server: ServerView, r: ResponseState, item: WireItem, status: str
) -> list[dict[str, Any]]:
    done = {
        "type": "response.function_call_arguments.done",
        **item_base(r, item),
        "arguments": item.item.arguments or "",
    }
    if server.flavor == "ga":
        done["name"] = item.item.name  # the beta event has no name
    item.item.status = status  # type: ignore[assignment]
    return [done, *_close_item(server, r, item)]


def close_message(
    server: ServerView, r: ResponseState, item: WireItem, status: str
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    if item.parts:
        stems = names(server.flavor)
        base = item_base(r, item)
        said = item.part_text(0)
        if item.parts[0]["type"] == "output_audio":
            events.append({"type": stems["audio"] + ".done", **base})
            events.append({"type": stems["transcript"] + ".done", **base, "transcript": said})
            part = {"type": "audio", "transcript": said}
        else:
            events.append({"type": stems["text"] + ".done", **base, "text": said})
            part = {"type": "text", "text": said}
        events.append({"type": "response.content_part.done", **base, "part": part})
    item.item.status = status  # type: ignore[assignment]
    return events + _close_item(server, r, item)


def _close_item(server: ServerView, r: ResponseState, item: WireItem) -> list[dict[str, Any]]:
    r.open_item = None
    wire = item.wire(server.flavor)
    events = [
        {
            "type": "response.output_item.done",
            "response_id": r.id,
            "output_index": r.index_of(item),
            "item": wire,
        }
    ]
    if r.conversation and server.flavor == "ga" and item.id in server.conversation:
        prev = server.conversation.previous_of(item.id)
        events.append({"type": "conversation.item.done", "previous_item_id": prev, "item": wire})
    return events


def tail(server: ServerView, r: ResponseState) -> list[dict[str, Any]]:
    """Close the open item (``incomplete``), then ``response.done`` with the status."""
    events: list[dict[str, Any]] = []
    item = r.open_item
    if item is not None:
        close = close_function_call if item.item.type == "function_call" else close_message
        events += close(server, r, item, "incomplete")
    body = response_object(server, r, "completed")
    if r.cancel_reason == "error":
        body["status"] = "failed"
        body["status_details"] = {
            "type": "failed",
            "error": {"type": "server_error", "code": "server_error"},
        }
    elif r.cancel_reason is not None:
        body["status"] = "cancelled"
        body["status_details"] = {"type": "cancelled", "reason": r.cancel_reason}
    body["usage"] = usage(server, r)
    events.append({"type": "response.done", "response": body})
    return events
