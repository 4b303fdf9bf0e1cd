"""The server half of the Realtime protocol, sans-I/O: client events in, server events out.

Rules of this module:

- No sockets, no clocks, no Trio. `RealtimeServer.receive(text)` validates one client
  message (`realtime_schema`) and returns its *outputs* in the order they must happen:
  server events (dicts without ``event_id``; the shell numbers them as it sends) and
  *effects*, work only the shell can do, performed at that point of the list:
  `StartResponse` (run the response generator in a task), `CancelResponse` (cancel that
  task and wait for it to end), `Transcribe` (transcribe this audio, then call
  `transcribed` or `transcription_failed`), `SetIdleTimer` (arm or stop the idle timer,
  then call `idle_timeout` when it fires).
- Everything the protocol decides lives here: the session (`realtime_session`), the
  conversation (`realtime_items`), the input audio buffer and its turn detection
  (`realtime_input`), which response is active, and the ``error`` events of refused
  client events, worded the way the service words them. Pacing, faults and the brain
  live in the generator (`realtime_generator`) and the shell (`realtime_connection`).
- A refused client event changes nothing and is answered by one ``error`` event that
  carries the client's ``event_id``. The session goes on.

Theory of operation.

Input audio. ``input_audio_buffer.append`` adds to the buffer. With turn detection on,
a VAD start sends ``speech_started`` (and cancels the active response when
``interrupt_response``); a stop sends ``speech_stopped``, commits the buffer as a user
item and, with ``create_response``, starts a response. A manual commit needs 100 ms of
audio. A commit announces the item (GA: ``conversation.item.added`` + ``.done``; beta:
``.created``) and asks for its transcription; transcription events follow only when the
session enables transcription. After a conversation response ends, a ``server_vad``
``idle_timeout_ms`` counts from the end of its audio: on expiry (no response, no speech)
the buffer is committed as a silent item and a response starts.

The response slot: a conversation has at most one active response.

    IDLE --response.create--> ACTIVE --response.cancel / speech--> IDLE  (+ CancelResponse)
    ACTIVE --its task ends--> IDLE
    ACTIVE --response.create--> error conversation_already_has_active_response
    IDLE --response.cancel--> error response_cancel_not_active

Out-of-band responses (``conversation: "none"``) never take the slot and cannot be
cancelled. A cancel frees the slot at once: the shell performs `CancelResponse` by
waiting for the task to end before it goes on with the outputs after it, which are the
cancelled response's tail (see `realtime_responses`) and then whatever came next, so a
``response.cancel`` followed by ``conversation.item.delete`` applies in that order, and
a speech start and stop in one appended chunk cancel one response and start the next.
"""

from __future__ import annotations

import base64
import binascii
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from voiceagent.emulators import realtime_responses as responses
from voiceagent.emulators.realtime_input import (
    MIN_COMMIT_MS,
    InputBuffer,
    transcription_events,
    transcription_failed_event,
)
from voiceagent.emulators.realtime_items import (
    Conversation,
    WireItem,
    announce,
    create_item,
    delete_item,
    retrieve_item,
    truncate_item,
    user_audio_item,
)
from voiceagent.emulators.realtime_responses import Phase, ResponseState
from voiceagent.emulators.realtime_schema import ClientEventError, validate_client_event
from voiceagent.emulators.realtime_session import SessionState
from voiceagent.pcm import pcm_ms


@dataclass(frozen=True, slots=True)
class StartResponse:
    response: ResponseState


@dataclass(frozen=True, slots=True)
class CancelResponse:
    response: ResponseState


@dataclass(frozen=True, slots=True)
class Transcribe:
    item_id: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class SetIdleTimer:
    delay_s: float | None  # None stops the timer


Effect = StartResponse | CancelResponse | Transcribe | SetIdleTimer
Output = dict[str, Any] | Effect


def error_event(exc: ClientEventError, event_id: str | None) -> dict[str, Any]:
    error = {"type": exc.kind, "code": exc.code, "message": exc.message, "param": exc.param}
    return {"type": "error", "error": {**error, "event_id": event_id}}


class RealtimeServer:
    """One emulated session's protocol state; see the module docstring."""

    def __init__(self, flavor: str, session: SessionState, max_items: int = 512) -> None:
        self.flavor = flavor
        self.session = session
        self.conversation = Conversation(max_items)
        td = session.turn_detection or {}
        self.input = InputBuffer(float(td.get("threshold", 0.5)), session.silence_ms)
        self.response: ResponseState | None = None  # the slot: the active conversation one
        self.responses = 0  # response.create count (every response, for faults and limits)
        self._ids = itertools.count(1)
        # item id -> (item, transcription enabled when committed, audio bytes)
        self._transcribing: dict[str, tuple[WireItem, bool, int]] = {}

    def new_id(self, prefix: str) -> str:
        return f"{prefix}_{self.session.id[5:]}{next(self._ids):04d}"

    def session_event(self, kind: str = "session.created") -> dict[str, Any]:
        rendered = self.session.render_ga() if self.flavor == "ga" else self.session.render_beta()
        return {"type": kind, "session": rendered}

    def receive(self, message: str | bytes) -> list[Output]:
        """Validate and apply one client message; a refusal is one ``error`` event."""
        event_id = None
        try:
            if isinstance(message, bytes):
                raise ClientEventError("invalid_value", "Binary frames are not supported.", None)
            try:
                data = orjson.loads(message)
            except orjson.JSONDecodeError:
                raise ClientEventError(
                    "invalid_json", "The message could not be parsed as JSON.", None
                ) from None
            if isinstance(data, dict) and isinstance(data.get("event_id"), str):
                event_id = data["event_id"]
            validate_client_event(data, self.flavor)
            return self._HANDLERS[data["type"]](self, data)
        except ClientEventError as exc:
            return [error_event(exc, event_id)]

    # ------------------------------------------------------------------ session & audio

    def _session_update(self, data: dict[str, Any]) -> list[Output]:
        session = self.session
        before = (session.instructions, session.tools)
        if self.flavor == "ga":
            session.apply_ga(data["session"])
        else:
            session.apply_beta(data["session"])
        td = session.turn_detection or {}
        self.input.vad.configure(float(td.get("threshold", 0.5)), session.silence_ms)
        if (session.instructions, session.tools) != before:
            # The service knows no agent names; the latest handoff call gives one.
            session.agent_name = self.conversation.last_transfer_target() or "assistant"
        return [self.session_event("session.updated")]

    def _append(self, data: dict[str, Any]) -> list[Output]:
        try:
            pcm = base64.b64decode(data["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ClientEventError(
                "invalid_value", "Invalid 'audio': not base64.", "audio"
            ) from None
        td = self.session.turn_detection
        outputs: list[Output] = []
        for kind, at_ms in self.input.append(pcm, td is not None):
            step = self._speech_started if kind == "start" else self._speech_stopped
            outputs += step(at_ms)
        if td is not None:
            self.input.keep_padding(int(td.get("prefix_padding_ms") or 300))
        return outputs

    def _speech_started(self, at_ms: int) -> list[Output]:
        item_id = self.input.speech_item = self.new_id("item")
        started = {"type": "input_audio_buffer.speech_started", "audio_start_ms": at_ms}
        outputs: list[Output] = [SetIdleTimer(None), {**started, "item_id": item_id}]
        td = self.session.turn_detection or {}
        if self.response is not None and td.get("interrupt_response", True):
            outputs += self._cancel(self.response, "turn_detected")
        return outputs

    def _speech_stopped(self, at_ms: int) -> list[Output]:
        item_id = self.input.speech_item or self.new_id("item")
        self.input.speech_item = None
        outputs: list[Output] = [
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms, "item_id": item_id}
        ]
        outputs += self._commit_buffer(item_id)
        td = self.session.turn_detection or {}
        if td.get("create_response", True) and self.response is None:
            outputs += self._start_response({})
        return outputs

    def _commit(self, data: dict[str, Any]) -> list[Output]:
        buffered_ms = self.input.ms
        if buffered_ms < MIN_COMMIT_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
                None,
            )
        outputs = self._commit_buffer(self.input.speech_item or self.new_id("item"))
        self.input.speech_item = None
        return outputs

    def _commit_buffer(self, item_id: str, *, silent: bool = False) -> list[Output]:
        """Make the buffer a user item and have it transcribed (`silent`: no speech in it)."""
        pcm = self.input.take()
        item = user_audio_item(item_id, pcm_ms(len(pcm)))
        prev = self.conversation.insert(item)
        outputs: list[Output] = [
            {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": prev},
            *announce(item, prev, self.flavor),
        ]
        if silent:
            item.set_text(0, "")
            return outputs
        self._transcribing[item_id] = (item, self.session.transcription is not None, len(pcm))
        outputs.append(Transcribe(item_id, pcm))
        return outputs

    def transcribed(self, item_id: str, text: str) -> list[Output]:
        """The transcript of a committed item; its events when transcription is enabled."""
        item, enabled, size = self._transcribing.pop(item_id)
        item.set_text(0, text)
        return list(transcription_events(item_id, text, size)) if enabled else []

    def transcription_failed(self, item_id: str, message: str) -> list[Output]:
        item, enabled, _ = self._transcribing.pop(item_id)
        item.set_text(0, "")
        return [transcription_failed_event(item_id, message)] if enabled else []

    def _clear(self, data: dict[str, Any]) -> list[Output]:
        self.input.clear()
        return [{"type": "input_audio_buffer.cleared"}]

    def _output_audio_clear(self, data: dict[str, Any]) -> list[Output]:
        raise ClientEventError(
            "invalid_value", "output_audio_buffer.clear is only supported over WebRTC and SIP."
        )

    def idle_timeout(self) -> list[Output]:
        """The idle timer fired: ``timeout_triggered``, a silent commit, a response."""
        if self.response is not None or self.input.vad.in_speech:
            return []
        item_id = self.new_id("item")
        outputs: list[Output] = [
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": self.input.start_ms,
                "audio_end_ms": self.input.vad.total_ms,
                "item_id": item_id,
            }
        ]
        return outputs + self._commit_buffer(item_id, silent=True) + self._start_response({})

    # ------------------------------------------------------------------ conversation

    def _item_create(self, data: dict[str, Any]) -> list[Output]:
        return list(create_item(self.conversation, data, self.flavor, self.new_id))

    def _item_truncate(self, data: dict[str, Any]) -> list[Output]:
        return [truncate_item(self.conversation, data)]

    def _item_delete(self, data: dict[str, Any]) -> list[Output]:
        return [delete_item(self.conversation, data)]

    def _item_retrieve(self, data: dict[str, Any]) -> list[Output]:
        return [retrieve_item(self.conversation, data, self.flavor)]

    # ------------------------------------------------------------------ responses

    def _response_create(self, data: dict[str, Any]) -> list[Output]:
        params = data.get("response") or {}
        if params.get("conversation") != "none" and self.response is not None:
            raise ClientEventError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self.response.id}. Wait until the response is finished "
                "before creating a new one.",
            )
        return self._start_response(params)

    def _response_cancel(self, data: dict[str, Any]) -> list[Output]:
        wanted = data.get("response_id")
        response = self.response
        # A response_id other than the active one is refused like no response at all.
        if response is None or (wanted is not None and wanted != response.id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found"
            )
        return self._cancel(response, "client_cancelled")

    def _start_response(self, params: dict[str, Any]) -> list[Output]:
        self.responses += 1
        if "modalities" in params:  # beta: ["text", "audio"] means audio (with transcript)
            modalities = ["audio"] if "audio" in params["modalities"] else ["text"]
        else:
            modalities = list(params.get("output_modalities") or self.session.output_modalities)
        response = ResponseState(
            id=self.new_id("resp"),
            number=self.responses,
            conversation=params.get("conversation") != "none",
            modalities=modalities,
            instructions=params.get("instructions"),
            tools=params.get("tools"),
            metadata=params.get("metadata"),
        )
        if response.conversation:
            self.response = response
        return [SetIdleTimer(None), StartResponse(response)]

    def _cancel(self, response: ResponseState, reason: str) -> list[Output]:
        """Free the slot; the tail too unless the response is already sending its own."""
        self.response = None
        if response.move("cancel") is not Phase.GENERATING:
            return [CancelResponse(response)]
        response.cancel_reason = reason
        return [CancelResponse(response), *self._tail(response)]

    def finish_response(self, response: ResponseState) -> list[Output]:
        """The generator returned: the response's tail, unless its cancel built it."""
        if response.move("finish") is not Phase.GENERATING:
            return []
        return self._tail(response)

    def response_ended(self, response: ResponseState) -> None:
        """The response's task ended, however it ended."""
        response.move("end")
        if self.response is response:
            self.response = None

    def _tail(self, response: ResponseState) -> list[Output]:
        outputs: list[Output] = list(responses.tail(self, response))
        idle_ms = (self.session.turn_detection or {}).get("idle_timeout_ms")
        if response.conversation and idle_ms:
            # The service counts from the end of playback: response.done + audio length.
            outputs.append(SetIdleTimer((response.output_audio_ms + idle_ms) / 1000))
        return outputs

    _HANDLERS: dict[str, Callable[[RealtimeServer, dict[str, Any]], list[Output]]] = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": _commit,
        "input_audio_buffer.clear": _clear,
        "output_audio_buffer.clear": _output_audio_clear,
        "conversation.item.create": _item_create,
        "conversation.item.truncate": _item_truncate,
        "conversation.item.delete": _item_delete,
        "conversation.item.retrieve": _item_retrieve,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
    }
