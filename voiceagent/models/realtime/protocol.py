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

The parts, each in its own module (the names stay importable from here):
- `session_setup`: ``session.update`` for a flavour (`session_update`, `agent_update`,
  `turn_detection`, `tool_choice_value`).
- `client_events`: the client events as JSON text and the items they carry.
- `server_events`: `parse` and the stateless readers into `voiceagent.events`;
  `ProtocolError`.
- `tracking`: the bounded records of responses and items (`TrackedItem`,
  `TrackedResponse`, `MAX_TRACKED_ITEMS`).
This module keeps the state machine: what is in progress, what is outstanding, what is
held, and so which client events each server event calls for.

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

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from voiceagent.conversation import AgentSetup, ConversationItem, Heard
from voiceagent.events import (
    AudioDelta,
    InputCommitted,
    ModelEvent,
    ResponseStarted,
    SpeechStarted,
    TextDelta,
    TextDone,
)
from voiceagent.models.base import OutputMode
from voiceagent.models.realtime import client_events as wire
from voiceagent.models.realtime import server_events as read
from voiceagent.models.realtime.config import Flavor, RealtimeConfig
from voiceagent.models.realtime.server_events import ProtocolError
from voiceagent.models.realtime.session_setup import (
    agent_update,
    session_update,
    tool_choice_value,
    turn_detection,
)
from voiceagent.models.realtime.tracking import (
    MAX_ITEM_TEXT,
    MAX_TRACKED_ITEMS,
    TrackedItem,
    TrackedResponse,
    remember,
)
from voiceagent.pcm import BYTES_PER_MS

__all__ = [
    "MAX_ITEM_TEXT",
    "MAX_TRACKED_ITEMS",
    "PCM_BYTES_PER_MS",
    "ProtocolError",
    "RealtimeProtocol",
    "agent_update",
    "session_update",
    "tool_choice_value",
    "turn_detection",
]

PCM_BYTES_PER_MS = BYTES_PER_MS  # PCM16 mono 24 kHz


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
        self.current: TrackedResponse | None = None  # the response in progress, if any
        self.server_cancelling = False
        self.cancel_sent = False
        self._responses: OrderedDict[str, TrackedResponse] = OrderedDict()
        self._items: OrderedDict[str, TrackedItem] = OrderedDict()
        self._prev: OrderedDict[str, str | None] = OrderedDict()
        self._call_response: dict[str, str] = {}
        self._ids = itertools.count(1)
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
        return wire.dumps(event)

    def agent_update(self, setup: AgentSetup) -> str:
        event = agent_update(setup, self.flavor)
        event["event_id"] = self._event_id()
        return wire.dumps(event)

    append_audio = staticmethod(wire.append_audio)

    def commit_audio(self) -> list[str]:
        """Manual end of turn: commit, then ask for a response."""
        self._manual_commits += 1  # its `committed` is answered already: never held
        out = [wire.commit_audio(self._event_id())]
        out.extend(self._request_response())
        return out

    def user_text(self, text: str) -> list[str]:
        out = [self._item_create(wire.user_message(text))]
        out.extend(self._request_response())
        return out

    def history(self, items: Sequence[ConversationItem]) -> list[str]:
        """`conversation.item.create` for each earlier item (a resumed room), in order.

        Ids are left to the server (earlier ids may repeat in a new conversation);
        assistant text is what the user heard; no response is requested.
        """
        out = []
        for item in items:
            shape = wire.history_item(item, self.flavor)
            if shape is not None:
                out.append(self._item_create(shape))
        return out

    def _request_response(self) -> list[str]:
        """``response.create`` now, or once the response in progress is done."""
        if self.current is None:
            return [self._response_create()]
        self._create_when_idle = True
        return []

    def _item_create(self, item: dict[str, Any], previous_item_id: str | None = None) -> str:
        return wire.item_create(self._event_id(), item, previous_item_id)

    def _item_delete(self, item_id: str) -> str:
        return wire.item_delete(self._event_id(), item_id)

    def _response_create(self) -> str:
        return wire.response_create(self._event_id())

    def tool_result(self, call_id: str, output: str, *, respond: bool) -> list[str]:
        """The tool output item, plus ``response.create`` when the round trip is complete."""
        out = [self._item_create(wire.function_call_output(call_id, output))]
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

    def _maybe_follow_up(self, response: TrackedResponse) -> list[str]:
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
            out.append(wire.response_cancel(self._event_id(), current.id))
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
                out.append(wire.item_truncate(self._event_id(), item_id, end_ms))
        elif heard.text is not None and heard.text.strip() != item.text.strip():
            item.settled = True
            out.append(self._item_delete(item_id))
            if heard.text.strip():
                message = wire.assistant_message(heard.text, self.flavor)
                out.append(self._item_create(message, item.previous_item_id))
        return out

    def answer(self, item_id: str, respond: bool) -> list[str]:
        """A held turn: ``response.create`` (now or once the response in progress is
        done), or ``conversation.item.delete`` so the model never sees it."""
        if item_id not in self._held:
            return []
        del self._held[item_id]
        return self._request_response() if respond else [self._item_delete(item_id)]

    # ----------------------------------------------------------------- server events

    def receive(self, message: str | bytes) -> tuple[list[ModelEvent], list[str]]:
        """Feed one server message; return (events for the session, client events to send).

        Raises `ProtocolError` for a message that is not a JSON object with a type.
        Unknown event types are ignored (the API grows; we read what we need).
        """
        data = read.parse(message)
        handler = _HANDLERS.get(data["type"])
        if handler is None:
            return [], []
        try:
            events = handler(self, data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"malformed {data['type']} event: {exc!r}") from None
        out, self._outbox = self._outbox, []
        return events, out

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

    def _committed(self, data: dict[str, Any]) -> list[ModelEvent]:
        item_id = data["item_id"]
        if self._manual_commits:
            self._manual_commits -= 1
        elif self.holds_turns:
            remember(self._held, item_id, None)
        return [InputCommitted(item_id)]

    def _item_added(self, data: dict[str, Any]) -> list[ModelEvent]:
        item = data["item"]
        item_id = item.get("id")
        if isinstance(item_id, str):
            prev = data.get("previous_item_id")
            remember(self._prev, item_id, prev)
            known = self._items.get(item_id)
            if known is not None:
                known.previous_item_id = prev
        return []

    def _response_created(self, data: dict[str, Any]) -> list[ModelEvent]:
        response_id = data["response"]["id"]
        response = TrackedResponse(response_id)
        remember(self._responses, response_id, response)
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
            tracked = TrackedItem(response.id, previous_item_id=self._prev.get(item_id))
            remember(self._items, item_id, tracked)
        return []

    def _output_item_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        call = read.function_call(data)
        if call is None:
            return []
        response = self._responses.get(call.response_id)
        if response is not None:
            response.outstanding.add(call.call_id)
            self._call_response[call.call_id] = call.response_id
            if len(self._call_response) > MAX_TRACKED_ITEMS:
                self._call_response.pop(next(iter(self._call_response)))
        return [call]

    def _text_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        delta = data["delta"]
        item = self._items.get(data["item_id"])
        if item is not None and len(item.text) < MAX_ITEM_TEXT:
            item.text += delta
        return [TextDelta(data["response_id"], data["item_id"], delta)]

    def _text_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        text = read.final_text(data)
        item = self._items.get(data["item_id"])
        if item is not None:
            item.text = text[:MAX_ITEM_TEXT]
        return [TextDone(data["response_id"], data["item_id"], text)]

    def _audio_delta(self, data: dict[str, Any]) -> list[ModelEvent]:
        pcm = read.audio_pcm(data)
        item = self._items.get(data["item_id"])
        if item is not None:
            item.audio_bytes += len(pcm)
        return [AudioDelta(data["response_id"], data["item_id"], pcm)]

    def _response_done(self, data: dict[str, Any]) -> list[ModelEvent]:
        done = read.response_done(data["response"])
        response_id = done.response_id
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
        return [done]


# One lookup per server event: the class's functions, not bound methods held by each
# instance (those would make every connection a reference cycle).
_Handler = Callable[[RealtimeProtocol, dict[str, Any]], list[ModelEvent]]


def _stateless(reader: Callable[[dict[str, Any]], list[ModelEvent]]) -> _Handler:
    return lambda _protocol, data: reader(data)


_HANDLERS: dict[str, _Handler] = {
    "input_audio_buffer.speech_started": RealtimeProtocol._speech_started,
    "input_audio_buffer.speech_stopped": _stateless(read.speech_stopped),
    "input_audio_buffer.committed": RealtimeProtocol._committed,
    "conversation.item.added": RealtimeProtocol._item_added,
    "conversation.item.created": RealtimeProtocol._item_added,
    "conversation.item.input_audio_transcription.delta": _stateless(read.transcript_delta),
    "conversation.item.input_audio_transcription.completed": _stateless(read.transcript_done),
    "conversation.item.input_audio_transcription.failed": _stateless(read.transcript_failed),
    "response.created": RealtimeProtocol._response_created,
    "response.output_item.added": RealtimeProtocol._output_item_added,
    "response.output_item.done": RealtimeProtocol._output_item_done,
    "response.output_text.delta": RealtimeProtocol._text_delta,
    "response.text.delta": RealtimeProtocol._text_delta,
    "response.output_audio_transcript.delta": RealtimeProtocol._text_delta,
    "response.audio_transcript.delta": RealtimeProtocol._text_delta,
    "response.output_text.done": RealtimeProtocol._text_done,
    "response.text.done": RealtimeProtocol._text_done,
    "response.output_audio_transcript.done": RealtimeProtocol._text_done,
    "response.audio_transcript.done": RealtimeProtocol._text_done,
    "response.output_audio.delta": RealtimeProtocol._audio_delta,
    "response.audio.delta": RealtimeProtocol._audio_delta,
    "response.done": RealtimeProtocol._response_done,
    "rate_limits.updated": _stateless(read.rate_limits),
    "error": _stateless(read.error),
}
