"""Sans-I/O Realtime API client protocol: build client events, parse server events.

Rules of this module:

- No sockets, no clocks, no tasks. `RealtimeProtocol` is fed the text of each server
  message and returns (a) the `voiceagent.events` it means and (b) the client events
  (JSON text) that must be sent in reply. Every send method returns JSON text too.
  The I/O layer (`client.py`) only moves those strings.
- One instance per connection; it speaks one flavour: ``"ga"`` (GA shapes) or
  ``"beta"`` (Azure preview / OpenAI beta shapes). It never emits a field the
  flavour's server rejects (docs/architecture.md, "Provider protocols").
- Memory is bounded: per-item bookkeeping is kept for the last `MAX_TRACKED_ITEMS`
  items, assistant text per item is capped at `MAX_ITEM_TEXT` characters.

Theory of operation (the response tracker):

``response.created`` opens a response; ``response.done`` closes it. In between, the
assistant message item of that response collects its text (for rewriting on
barge-in) and the number of audio bytes received (the upper bound of any truncate).
Function calls are reported on ``response.output_item.done`` with status
``completed``; each one stays *outstanding* until `tool_result` gives it an output.
The follow-up ``response.create`` is sent once every outstanding call of that
response has an output, at least one output asked for a response, and the response
itself is done (a second response while one is active is an error on the server).

Barge-in (`cancel`): ``response.cancel`` goes out only while a response is in
progress and the server has not already cancelled it itself (``interrupt_response``
fires on ``input_audio_buffer.speech_started``). Then the conversation is made to
match what the user heard: in audio mode ``conversation.item.truncate`` at
``min(heard, received)`` ms; in text mode the assistant item is deleted and a new
assistant message with the heard text is created after the same previous item.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from voiceagent.conversation import AgentSetup, ConversationItem, Heard
from voiceagent.events import (
    AudioDelta,
    FunctionCall,
    InputCommitted,
    ModelError,
    ModelEvent,
    RateLimits,
    ResponseDone,
    ResponseStarted,
    ResponseStatus,
    SpeechStarted,
    SpeechStopped,
    TextDelta,
    TextDone,
    TranscriptCompleted,
    TranscriptDelta,
    TranscriptFailed,
    Usage,
)
from voiceagent.models.base import OutputMode
from voiceagent.models.realtime.config import Flavor, RealtimeConfig

MAX_TRACKED_ITEMS = 256
MAX_ITEM_TEXT = 64 * 1024
PCM_BYTES_PER_MS = 48  # PCM16 mono 24 kHz
_STATUSES: frozenset[str] = frozenset({"completed", "cancelled", "failed", "incomplete"})
# Errors that only say "there was nothing to do": a cancel racing the end of a response.
_HARMLESS_ERRORS = frozenset({"response_cancel_not_active"})


def _dumps(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def tool_choice_value(choice: str) -> str | dict[str, str]:
    """`AgentSetup.tool_choice` as the wire wants it (a mode, or one named function)."""
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}


def turn_detection(config: RealtimeConfig, flavor: Flavor) -> dict[str, Any] | None:
    """The turn-detection object for `config`, or None for manual turns."""
    if config.turn_detection == "none":
        return None
    td: dict[str, Any] = {"type": config.turn_detection}
    if config.turn_detection == "server_vad":
        td["threshold"] = config.vad_threshold
        td["prefix_padding_ms"] = config.prefix_padding_ms
        td["silence_duration_ms"] = config.silence_duration_ms
        if config.idle_timeout_ms is not None and flavor == "ga":
            td["idle_timeout_ms"] = config.idle_timeout_ms
    else:
        td["eagerness"] = config.eagerness
    td["create_response"] = config.create_response and not config.hold_turns
    td["interrupt_response"] = config.interrupt_response and not config.hold_turns
    return td


def _transcription(config: RealtimeConfig) -> dict[str, Any] | None:
    if not config.transcription_model:
        return None
    t: dict[str, Any] = {"model": config.transcription_model}
    if config.transcription_language:
        t["language"] = config.transcription_language
    return t


def _agent_fields(setup: AgentSetup) -> dict[str, Any]:
    return {
        "instructions": setup.instructions,
        "tools": [tool.as_function() for tool in setup.tools],
        "tool_choice": tool_choice_value(setup.tool_choice),
    }


def session_update(
    config: RealtimeConfig, setup: AgentSetup, output: OutputMode, flavor: Flavor
) -> dict[str, Any]:
    """The full ``session.update`` sent right after connecting."""
    session: dict[str, Any]
    if flavor == "ga":
        audio_in: dict[str, Any] = {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": _transcription(config),
            "turn_detection": turn_detection(config, flavor),
        }
        if config.noise_reduction:
            audio_in["noise_reduction"] = {"type": config.noise_reduction}
        session = {
            "type": "realtime",
            "output_modalities": [output],
            "audio": {
                "input": audio_in,
                "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": config.voice},
            },
            **_agent_fields(setup),
        }
        if config.max_output_tokens is not None:
            session["max_output_tokens"] = config.max_output_tokens
    else:
        session = {
            # Beta servers require text alongside audio.
            "modalities": ["text"] if output == "text" else ["audio", "text"],
            "voice": config.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": _transcription(config),
            "turn_detection": turn_detection(config, flavor),
            **_agent_fields(setup),
        }
        if config.noise_reduction:
            session["input_audio_noise_reduction"] = {"type": config.noise_reduction}
        if config.max_output_tokens is not None:
            session["max_response_output_tokens"] = config.max_output_tokens
    return {"type": "session.update", "session": session}


def agent_update(setup: AgentSetup, flavor: Flavor) -> dict[str, Any]:
    """The partial ``session.update`` of a handoff: instructions, tools, tool_choice."""
    session = _agent_fields(setup)
    if flavor == "ga":
        session = {"type": "realtime", **session}
    return {"type": "session.update", "session": session}


def _usage(raw: Any) -> Usage | None:
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


@dataclass(slots=True)
class _TrackedItem:
    """What the client tracks of one assistant message item the server holds.

    Not a `ConversationItem`: the conversation lives on the server (and in the session's
    own history); this is only what the client needs to truncate, delete or rewrite the
    item after a barge-in (its response, the item before it, the text and audio so far).
    """

    response_id: str
    previous_item_id: str | None = None
    text: str = ""
    audio_bytes: int = 0
    # Set once the item was truncated, deleted or rewritten: it is not touched again.
    settled: bool = False


@dataclass(slots=True)
class _Response:
    id: str
    message_item: str | None = None
    outstanding: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    follow_up: bool = False
    done: bool = False


class ProtocolError(Exception):
    """The server sent something we cannot read (a remote protocol error)."""


class RealtimeProtocol:
    """Client side of one Realtime conversation; see the module docstring."""

    def __init__(
        self,
        config: RealtimeConfig,
        flavor: Flavor,
        output: OutputMode,
    ) -> None:
        self.config = config
        self.flavor: Flavor = flavor
        self.output: OutputMode = output
        self.current: _Response | None = None  # the response in progress, if any
        self.server_cancelling = False
        self.cancel_sent = False
        self._responses: OrderedDict[str, _Response] = OrderedDict()
        self._items: OrderedDict[str, _TrackedItem] = OrderedDict()
        self._prev: OrderedDict[str, str | None] = OrderedDict()
        self._call_response: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._handlers: dict[str, Callable[[dict[str, Any]], list[ModelEvent]]] = {
            "input_audio_buffer.speech_started": self._speech_started,
            "input_audio_buffer.speech_stopped": self._speech_stopped,
            "input_audio_buffer.committed": self._committed,
            "conversation.item.added": self._item_added,
            "conversation.item.created": self._item_added,
            "conversation.item.input_audio_transcription.delta": self._transcript_delta,
            "conversation.item.input_audio_transcription.completed": self._transcript_done,
            "conversation.item.input_audio_transcription.failed": self._transcript_failed,
            "response.created": self._response_created,
            "response.output_item.added": self._output_item_added,
            "response.output_item.done": self._output_item_done,
            "response.output_text.delta": self._text_delta,
            "response.text.delta": self._text_delta,
            "response.output_audio_transcript.delta": self._text_delta,
            "response.audio_transcript.delta": self._text_delta,
            "response.output_text.done": self._text_done,
            "response.text.done": self._text_done,
            "response.output_audio_transcript.done": self._text_done,
            "response.audio_transcript.done": self._text_done,
            "response.output_audio.delta": self._audio_delta,
            "response.audio.delta": self._audio_delta,
            "response.done": self._response_done,
            "rate_limits.updated": self._rate_limits,
            "error": self._error,
        }
        self._outbox: list[str] = []
        self._create_when_idle = False
        # Turns the server VAD committed, waiting for `answer()` (config.hold_turns).
        self.holds_turns = config.hold_turns and config.turn_detection != "none"
        self._held: OrderedDict[str, None] = OrderedDict()
        self._manual_commits = 0

    # ----------------------------------------------------------------- client events

    def _event_id(self) -> str:
        return f"va_{next(self._ids)}"

    def session_update(self, setup: AgentSetup) -> str:
        event = session_update(self.config, setup, self.output, self.flavor)
        event["event_id"] = self._event_id()
        return _dumps(event)

    def agent_update(self, setup: AgentSetup) -> str:
        event = agent_update(setup, self.flavor)
        event["event_id"] = self._event_id()
        return _dumps(event)

    @staticmethod
    def append_audio(pcm: bytes) -> str:
        """``input_audio_buffer.append``; built by hand because it is the hot path."""
        b64 = base64.b64encode(pcm).decode("ascii")
        return '{"type":"input_audio_buffer.append","audio":"' + b64 + '"}'

    def commit_audio(self) -> list[str]:
        """Manual end of turn: commit, then ask for a response."""
        self._manual_commits += 1  # its `committed` is answered already: never held
        out = [_dumps({"type": "input_audio_buffer.commit", "event_id": self._event_id()})]
        out.extend(self._request_response())
        return out

    def user_text(self, text: str) -> list[str]:
        item = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }
        out = [self._item_create(item)]
        out.extend(self._request_response())
        return out

    def history(self, items: Sequence[ConversationItem]) -> list[str]:
        """`conversation.item.create` for each earlier item (a resumed room), in order.

        Ids are left to the server (earlier ids may repeat in a new conversation);
        assistant text is what the user heard; no response is requested.
        """
        assistant_part = "output_text" if self.flavor == "ga" else "text"
        out = []
        for item in items:
            wire: dict[str, Any]
            if item.type == "message":
                part = "input_text" if item.role == "user" else assistant_part
                content = [{"type": part, "text": item.text}]
                wire = {"type": "message", "role": item.role, "content": content}
            elif item.type == "function_call":
                wire = {
                    "type": "function_call",
                    "call_id": item.call_id,
                    "name": item.name,
                    "arguments": item.arguments or "{}",
                }
            elif item.type == "function_call_output":
                wire = {
                    "type": "function_call_output",
                    "call_id": item.call_id,
                    "output": item.output or "",
                }
            else:
                continue
            out.append(self._item_create(wire))
        return out

    def _request_response(self) -> list[str]:
        """``response.create`` now, or once the response in progress is done."""
        if self.current is None:
            return [self._response_create()]
        self._create_when_idle = True
        return []

    def _item_create(self, item: dict[str, Any], previous_item_id: str | None = None) -> str:
        event: dict[str, Any] = {
            "type": "conversation.item.create",
            "event_id": self._event_id(),
            "item": item,
        }
        if previous_item_id is not None:
            event["previous_item_id"] = previous_item_id
        return _dumps(event)

    def _response_create(self) -> str:
        return _dumps({"type": "response.create", "event_id": self._event_id()})

    def tool_result(self, call_id: str, output: str, *, respond: bool) -> list[str]:
        """The tool output item, plus ``response.create`` when the round trip is complete."""
        out = [
            self._item_create(
                {"type": "function_call_output", "call_id": call_id, "output": output}
            )
        ]
        response = self._responses.get(self._call_response.pop(call_id, ""))
        if response is None:
            # A call we do not know (e.g. from before a reconnect): answer right away.
            if respond and self.current is None:
                out.append(self._response_create())
            return out
        response.outstanding.discard(call_id)
        response.answered.add(call_id)
        response.follow_up |= respond
        out.extend(self._maybe_follow_up(response))
        return out

    def _maybe_follow_up(self, response: _Response) -> list[str]:
        if response.follow_up and response.done and not response.outstanding:
            response.follow_up = False
            return self._request_response()
        return []

    def cancel(self, heard: Heard) -> list[str]:
        """Barge-in: the client events that stop the response and keep what was heard."""
        out: list[str] = []
        current = self.current
        if current is not None and not self.server_cancelling and not self.cancel_sent:
            self.cancel_sent = True
            out.append(
                _dumps(
                    {
                        "type": "response.cancel",
                        "event_id": self._event_id(),
                        "response_id": current.id,
                    }
                )
            )
        item_id = heard.item_id
        if item_id is None:
            response = self._responses.get(heard.response_id)
            item_id = response.message_item if response else None
        item = self._items.get(item_id) if item_id else None
        if item is None or item.settled or item_id is None:
            return out
        if self.output == "audio":
            if heard.audio_ms is None:
                return out
            item.settled = True
            received_ms = item.audio_bytes // PCM_BYTES_PER_MS
            if received_ms <= 0:
                out.append(self._item_delete(item_id))
            else:
                end_ms = min(max(heard.audio_ms, 0), received_ms)
                out.append(
                    _dumps(
                        {
                            "type": "conversation.item.truncate",
                            "event_id": self._event_id(),
                            "item_id": item_id,
                            "content_index": 0,
                            "audio_end_ms": end_ms,
                        }
                    )
                )
        elif heard.text is not None and heard.text.strip() != item.text.strip():
            item.settled = True
            out.append(self._item_delete(item_id))
            if heard.text.strip():
                part_type = "output_text" if self.flavor == "ga" else "text"
                message = {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": part_type, "text": heard.text}],
                }
                out.append(self._item_create(message, item.previous_item_id))
        return out

    def answer(self, item_id: str, respond: bool) -> list[str]:
        """A held turn: ``response.create`` (now or once the response in progress is
        done), or ``conversation.item.delete`` so the model never sees it."""
        if item_id not in self._held:
            return []
        del self._held[item_id]
        return self._request_response() if respond else [self._item_delete(item_id)]

    def _item_delete(self, item_id: str) -> str:
        return _dumps(
            {"type": "conversation.item.delete", "event_id": self._event_id(), "item_id": item_id}
        )

    # ----------------------------------------------------------------- server events

    def receive(self, message: str | bytes) -> tuple[list[ModelEvent], list[str]]:
        """Feed one server message; return (events for the session, client events to send).

        Raises `ProtocolError` for a message that is not a JSON object with a type.
        Unknown event types are ignored (the API grows; we read what we need).
        """
        try:
            data = orjson.loads(message)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(f"server sent invalid JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("type"), str):
            raise ProtocolError("server event is not an object with a string 'type'")
        handler = self._handlers.get(data["type"])
        if handler is None:
            return [], []
        try:
            events = handler(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"malformed {data['type']} event: {exc!r}") from None
        out, self._outbox = self._outbox, []
        return events, out

    def _remember(self, table: OrderedDict[str, Any], key: str, value: Any) -> None:
        table[key] = value
        table.move_to_end(key)
        while len(table) > MAX_TRACKED_ITEMS:
            table.popitem(last=False)

    @property
    def response_in_progress(self) -> bool:
        return self.current is not None

    def _interrupt_enabled(self) -> bool:
        config = self.config
        return (
            config.turn_detection != "none" and config.interrupt_response and not self.holds_turns
        )

    def _speech_started(self, data: dict[str, Any]) -> list[ModelEvent]:
        if self.current is not None and self._interrupt_enabled():
            self.server_cancelling = True
        return [SpeechStarted(int(data.get("audio_start_ms") or 0), data.get("item_id"))]

    def _speech_stopped(self, data: dict[str, Any]) -> list[ModelEvent]:
        return [SpeechStopped(int(data.get("audio_end_ms") or 0), data.get("item_id"))]

    def _committed(self, data: dict[str, Any]) -> list[ModelEvent]:
        item_id = data["item_id"]
        if self._manual_commits:
            self._manual_commits -= 1
        elif self.holds_turns:
            self._remember(self._held, item_id, None)
        return [InputCommitted(item_id)]

    def _item_added(self, data: dict[str, Any]) -> list[ModelEvent]:
        item = data["item"]
        item_id = item.get("id")
        if isinstance(item_id, str):
            prev = data.get("previous_item_id")
            self._remember(self._prev, item_id, prev)
            known = self._items.get(item_id)
            if known is not None:
                known.previous_item_id = prev
        return []

    def _transcript_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        delta = data.get("delta") or ""
        return [TranscriptDelta(data["item_id"], delta)] if delta else []

    def _transcript_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        return [TranscriptCompleted(data["item_id"], data.get("transcript") or "")]

    def _transcript_failed(self, data: dict[str, Any]) -> list[ModelEvent]:
        error = data.get("error") or {}
        return [TranscriptFailed(data["item_id"], error.get("message") or "transcription failed")]

    def _response_created(self, data: dict[str, Any]) -> list[ModelEvent]:
        response_id = data["response"]["id"]
        response = _Response(response_id)
        self._remember(self._responses, response_id, response)
        self.current = response
        self.server_cancelling = False
        self.cancel_sent = False
        return [ResponseStarted(response_id)]

    def _output_item_added(self, data: dict[str, Any]) -> list[ModelEvent]:
        item = data["item"]
        response = self._responses.get(data["response_id"])
        if item.get("type") == "message" and response is not None:
            item_id = item["id"]
            response.message_item = item_id
            self._remember(
                self._items,
                item_id,
                _TrackedItem(response.id, previous_item_id=self._prev.get(item_id)),
            )
        return []

    def _output_item_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        item = data["item"]
        if item.get("type") != "function_call" or item.get("status") != "completed":
            return []
        response_id = data["response_id"]
        call_id = item["call_id"]
        response = self._responses.get(response_id)
        if response is not None:
            response.outstanding.add(call_id)
            self._call_response[call_id] = response_id
            if len(self._call_response) > MAX_TRACKED_ITEMS:
                self._call_response.pop(next(iter(self._call_response)))
        return [
            FunctionCall(
                response_id=response_id,
                item_id=item.get("id") or "",
                call_id=call_id,
                name=item["name"],
                arguments=item.get("arguments") or "",
            )
        ]

    def _text_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        delta = data["delta"]
        item = self._items.get(data["item_id"])
        if item is not None and len(item.text) < MAX_ITEM_TEXT:
            item.text += delta
        return [TextDelta(data["response_id"], data["item_id"], delta)]

    def _text_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        text = data.get("text")
        if text is None:
            text = data.get("transcript") or ""
        item = self._items.get(data["item_id"])
        if item is not None:
            item.text = text[:MAX_ITEM_TEXT]
        return [TextDone(data["response_id"], data["item_id"], text)]

    def _audio_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        try:
            pcm = base64.b64decode(data["delta"], validate=True)
        except binascii.Error as exc:
            raise ValueError(f"audio delta is not base64: {exc}") from None
        item = self._items.get(data["item_id"])
        if item is not None:
            item.audio_bytes += len(pcm)
        return [AudioDelta(data["response_id"], data["item_id"], pcm)]

    def _response_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        raw = data["response"]
        response_id = raw["id"]
        status_raw = raw.get("status")
        status: ResponseStatus = status_raw if status_raw in _STATUSES else "failed"  # type: ignore[assignment]
        details = raw.get("status_details") or {}
        reason = details.get("reason")
        if reason is None and isinstance(details.get("error"), dict):
            reason = details["error"].get("code") or details["error"].get("type")
        if self.current is not None and self.current.id == response_id:
            self.current = None
            self.server_cancelling = False
            self.cancel_sent = False
        response = self._responses.get(response_id)
        if response is not None:
            response.done = True
            self._outbox.extend(self._maybe_follow_up(response))
        if self._create_when_idle and self.current is None and not self._outbox:
            self._create_when_idle = False
            self._outbox.append(self._response_create())
        return [ResponseDone(response_id, status, _usage(raw.get("usage")), reason)]

    def _rate_limits(self, data: dict[str, Any]) -> list[ModelEvent]:
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

    def _error(self, data: dict[str, Any]) -> list[ModelEvent]:
        error = data.get("error") or {}
        code = error.get("code") or error.get("type") or "model_error"
        if code in _HARMLESS_ERRORS:
            return []
        return [ModelError(code=str(code), message=str(error.get("message") or code))]
