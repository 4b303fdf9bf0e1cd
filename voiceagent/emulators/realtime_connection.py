"""One emulated Realtime session over an accepted WebSocket (see `realtime` for the rules).

Theory of operation: one task reads client events and handles them in order (so a
``response.cancel`` followed by ``conversation.item.delete`` is applied in that order);
a response runs as its own task under a cancel scope; transcriptions run as tasks too.
All of them live in the connection's nursery and send through one lock. Cancelling a
response cancels its scope and then emits the tail (``output_item.done`` with status
``incomplete``, ``response.done`` with status ``cancelled``) exactly once.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from voiceagent.emulators.realtime_config import EmulatorConfig
from voiceagent.emulators.realtime_parts import (
    CannedTranscriber,
    Transcriber,
    ask_brain,
    default_brain,
    recognizer_transcriber,
    speech_ms,
    synthetic_voice,
    tokens,
)
from voiceagent.emulators.realtime_schema import ClientEventError, validate_client_event
from voiceagent.emulators.realtime_state import (
    PCM_BYTES_PER_MS,
    Conversation,
    ConvItem,
    EnergyVad,
    SessionState,
)

log = logging.getLogger(__name__)

MIN_COMMIT_MS = 100
MAX_BUFFER_MS = 5 * 60 * 1000  # the input buffer keeps at most 5 minutes of audio
TRANSCRIPT_WAIT_S = 10.0


class Gone(Exception):
    """The client socket is closed; the connection's tasks wind down."""


@dataclass(slots=True)
class _Response:
    id: str
    number: int
    conversation: bool  # False for out-of-band (conversation "none") responses
    modalities: list[str]
    instructions: str | None
    tools: list[Any] | None
    metadata: Any
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    finished: trio.Event = field(default_factory=trio.Event)
    output: list[ConvItem] = field(default_factory=list)
    open_item: ConvItem | None = None
    open_index: int = 0
    cancel_reason: str | None = None
    output_chars: int = 0
    output_audio_ms: int = 0
    deltas: int = 0


class Shared:
    """State shared by all connections of one server (handshake counting)."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.handshakes = 0
        self.sessions = itertools.count(1)
        self.brain_factory = config.brain_factory or default_brain
        transcriber = config.transcriber
        if transcriber is None and config.use_recognizer:
            transcriber = recognizer_transcriber()
        self.transcriber: Transcriber = transcriber or CannedTranscriber()


class RealtimeEmulatorConnection:
    """One emulated Realtime session over an accepted WebSocket."""

    def __init__(
        self,
        ws: WebSocketConnection,
        stream: trio.abc.Stream,
        flavor: str,
        model: str,
        shared: Shared,
    ) -> None:
        self.ws = ws
        self.stream = stream
        self.flavor = flavor
        self.shared = shared
        self.config = shared.config
        number = next(shared.sessions)
        self.session = SessionState(
            id=f"sess_{number}{secrets.token_hex(4)}",
            model=model,
            beta_model=self.config.beta_model,
            expires_at=int(time.time()) + 30 * 60,
        )
        self.conversation = Conversation(self.config.max_items)
        self.brain = shared.brain_factory()
        td = self.session.turn_detection or {}
        self.vad = EnergyVad(float(td.get("threshold", 0.5)), self.session.silence_ms)
        self.buffer = bytearray()
        self.buffer_start_ms = 0
        self.speech_item: str | None = None
        self.response: _Response | None = None
        self.responses = 0
        self.transcripts: dict[str, trio.Event] = {}
        self._ids = itertools.count(1)
        self._events = itertools.count(1)
        self._send_lock = trio.Lock()
        self._idle_timer: trio.CancelScope | None = None
        self._nursery: trio.Nursery | None = None

    # ------------------------------------------------------------------ plumbing

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{self.session.id[5:]}{next(self._ids):04d}"

    async def emit(self, event: dict[str, Any]) -> None:
        """Send one server event (adds ``event_id``); raises `Gone` when closed."""
        event = {"event_id": f"event_{next(self._events)}", **event}
        text = orjson.dumps(event).decode()
        if self.config.trace is not None:
            self.config.trace("out", text)
        async with self._send_lock:
            try:
                await self.ws.send_message(text)
            except ConnectionClosed:
                raise Gone() from None

    async def error(self, exc: ClientEventError, event_id: str | None) -> None:
        await self.emit(
            {
                "type": "error",
                "error": {
                    "type": exc.kind,
                    "code": exc.code,
                    "message": exc.message,
                    "param": exc.param,
                    "event_id": event_id,
                },
            }
        )

    async def run(self) -> None:
        """Serve until the client closes; cancelling this cancels every task of the session."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self.emit({"type": "session.created", "session": self._render_session()})
                while True:
                    try:
                        message = await self.ws.get_message()
                    except ConnectionClosed:
                        break
                    await self.handle(message)
                nursery.cancel_scope.cancel()
        except* Gone:
            pass  # the client went away while we were answering

    def _render_session(self) -> dict[str, Any]:
        return self.session.render_ga() if self.flavor == "ga" else self.session.render_beta()

    async def handle(self, message: str | bytes) -> None:
        """Validate and apply one client event; refusals become ``error`` events."""
        if self.config.trace is not None:
            self.config.trace("in", message if isinstance(message, str) else repr(message))
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
            await self._HANDLERS[data["type"]](self, data)
        except ClientEventError as exc:
            await self.error(exc, event_id)

    # ------------------------------------------------------------------ session & audio

    async def _session_update(self, data: dict[str, Any]) -> None:
        before = (self.session.instructions, self.session.tools)
        if self.flavor == "ga":
            self.session.apply_ga(data["session"])
        else:
            self.session.apply_beta(data["session"])
        td = self.session.turn_detection or {}
        self.vad.configure(float(td.get("threshold", 0.5)), self.session.silence_ms)
        if (self.session.instructions, self.session.tools) != before:
            self.session.agent_name = self.conversation.last_transfer_target() or "assistant"
        await self.emit({"type": "session.updated", "session": self._render_session()})

    async def _append(self, data: dict[str, Any]) -> None:
        try:
            pcm = base64.b64decode(data["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ClientEventError(
                "invalid_value", "Invalid 'audio': not base64.", "audio"
            ) from None
        self.buffer += pcm
        overflow = len(self.buffer) - MAX_BUFFER_MS * PCM_BYTES_PER_MS
        if overflow > 0:
            del self.buffer[:overflow]
            self.buffer_start_ms += overflow // PCM_BYTES_PER_MS
        if self.session.turn_detection is None:
            return
        for kind, at_ms in self.vad.feed(pcm):
            if kind == "start":
                await self._speech_started(at_ms)
            else:
                await self._speech_stopped(at_ms)
        if not self.vad.in_speech:
            # Outside speech keep only the prefix padding that precedes the next start.
            td = self.session.turn_detection or {}
            keep = int(td.get("prefix_padding_ms") or 300) * PCM_BYTES_PER_MS
            if len(self.buffer) > keep:
                cut = len(self.buffer) - keep
                del self.buffer[:cut]
                self.buffer_start_ms += cut // PCM_BYTES_PER_MS

    async def _speech_started(self, at_ms: int) -> None:
        self._arm_idle_timer(None)
        self.speech_item = self._id("item")
        await self.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": at_ms,
                "item_id": self.speech_item,
            }
        )
        td = self.session.turn_detection or {}
        response = self.response
        if response is not None and response.conversation and td.get("interrupt_response", True):
            await self._cancel(response, "turn_detected")

    async def _speech_stopped(self, at_ms: int) -> None:
        item_id = self.speech_item or self._id("item")
        self.speech_item = None
        await self.emit(
            {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms, "item_id": item_id}
        )
        await self._commit_buffer(item_id)
        td = self.session.turn_detection or {}
        if td.get("create_response", True) and self.response is None:
            self._start_response({})

    async def _commit(self, data: dict[str, Any]) -> None:
        buffered_ms = len(self.buffer) // PCM_BYTES_PER_MS
        if buffered_ms < MIN_COMMIT_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
                None,
            )
        await self._commit_buffer(self.speech_item or self._id("item"))
        self.speech_item = None

    async def _commit_buffer(self, item_id: str, *, silent: bool = False) -> None:
        """Make the buffer a user item and transcribe it (`silent`: known to be no speech)."""
        pcm = bytes(self.buffer)
        self.buffer.clear()
        self.buffer_start_ms = self.vad.total_ms
        item = ConvItem(
            id=item_id,
            type="message",
            role="user",
            content=[{"type": "input_audio", "transcript": None}],
            audio_ms=len(pcm) // PCM_BYTES_PER_MS,
        )
        prev = self.conversation.insert(item)
        await self.emit(
            {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": prev}
        )
        await self._announce_item(item, prev)
        if silent:
            item.content[0]["transcript"] = ""
            return
        done = trio.Event()
        self.transcripts[item_id] = done
        assert self._nursery is not None
        self._nursery.start_soon(self._transcribe, item, pcm, done)

    async def _transcribe(self, item: ConvItem, pcm: bytes, done: trio.Event) -> None:
        """Transcribe a committed utterance; events only when transcription is enabled."""
        enabled = self.session.transcription is not None
        try:
            text = await self.shared.transcriber(pcm, 24000)
        except Exception as exc:  # a broken transcriber must not end the session
            log.warning("emulator transcriber failed: %r", exc)
            item.content[0]["transcript"] = ""
            done.set()
            self.transcripts.pop(item.id, None)
            if enabled:
                await self._emit_quietly(
                    {
                        "type": "conversation.item.input_audio_transcription.failed",
                        "item_id": item.id,
                        "content_index": 0,
                        "error": {
                            "type": "transcription_error",
                            "code": "transcriber_failed",
                            "message": str(exc),
                            "param": None,
                        },
                    }
                )
            return
        item.content[0]["transcript"] = text
        done.set()
        self.transcripts.pop(item.id, None)
        if not enabled:
            return
        words = tokens(text)
        half = max(1, len(words) // 2)
        for piece in ("".join(words[:half]), "".join(words[half:])):
            if piece:
                await self._emit_quietly(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item.id,
                        "content_index": 0,
                        "delta": piece,
                    }
                )
        await self._emit_quietly(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item.id,
                "content_index": 0,
                "transcript": text,
                "usage": {"type": "duration", "seconds": round(len(pcm) / 48000, 3)},
            }
        )

    async def _emit_quietly(self, event: dict[str, Any]) -> None:
        try:
            await self.emit(event)
        except Gone:
            pass

    async def _clear(self, data: dict[str, Any]) -> None:
        self.buffer.clear()
        self.speech_item = None
        await self.emit({"type": "input_audio_buffer.cleared"})

    async def _output_audio_clear(self, data: dict[str, Any]) -> None:
        raise ClientEventError(
            "invalid_value",
            "output_audio_buffer.clear is only supported over WebRTC and SIP.",
            None,
        )

    # ------------------------------------------------------------------ conversation

    async def _announce_item(self, item: ConvItem, prev: str | None) -> None:
        """The item-creation events of this flavour (GA: added + done; beta: created)."""
        wire = item.wire(self.flavor)
        if self.flavor == "ga":
            await self.emit(
                {"type": "conversation.item.added", "previous_item_id": prev, "item": wire}
            )
            await self.emit(
                {"type": "conversation.item.done", "previous_item_id": prev, "item": wire}
            )
        else:
            await self.emit(
                {"type": "conversation.item.created", "previous_item_id": prev, "item": wire}
            )

    async def _item_create(self, data: dict[str, Any]) -> None:
        raw = data["item"]
        item_id = raw.get("id") or self._id("item")
        if item_id in self.conversation:
            raise ClientEventError(
                "item_already_exists", f"Item with id '{item_id}' already exists.", "item.id"
            )
        previous = data.get("previous_item_id")
        if previous is not None and previous not in self.conversation:
            raise ClientEventError(
                "invalid_value",
                f"Previous item with id '{previous}' does not exist.",
                "previous_item_id",
            )
        item = ConvItem.from_wire(raw, item_id)
        prev = self.conversation.insert(item, previous, at_end=previous is None)
        await self._announce_item(item, prev)

    async def _item_truncate(self, data: dict[str, Any]) -> None:
        item = self.conversation.get(data["item_id"])
        if item is None:
            raise ClientEventError(
                "invalid_value", f"Item with id '{data['item_id']}' not found.", "item_id"
            )
        audio_parts = [p for p in item.content if p["type"] == "output_audio"]
        if item.role != "assistant" or not audio_parts:
            raise ClientEventError(
                "invalid_value", "Only assistant messages with audio can be truncated.", "item_id"
            )
        if data["content_index"] != 0:
            raise ClientEventError("invalid_value", "Invalid 'content_index'.", "content_index")
        end_ms = data["audio_end_ms"]
        if end_ms < 0 or end_ms > item.audio_ms:
            raise ClientEventError(
                "invalid_value",
                f"Audio content of {item.audio_ms}ms is already shorter than {end_ms}ms",
                "audio_end_ms",
            )
        part = audio_parts[0]
        transcript = part.get("transcript") or ""
        if item.audio_ms:
            part["transcript"] = transcript[: len(transcript) * end_ms // item.audio_ms]
        item.audio_ms = end_ms
        await self.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item.id,
                "content_index": 0,
                "audio_end_ms": end_ms,
            }
        )

    async def _item_delete(self, data: dict[str, Any]) -> None:
        if not self.conversation.delete(data["item_id"]):
            raise ClientEventError(
                "invalid_value", f"Item with id '{data['item_id']}' not found.", "item_id"
            )
        await self.emit({"type": "conversation.item.deleted", "item_id": data["item_id"]})

    async def _item_retrieve(self, data: dict[str, Any]) -> None:
        item = self.conversation.get(data["item_id"])
        if item is None:
            raise ClientEventError(
                "invalid_value", f"Item with id '{data['item_id']}' not found.", "item_id"
            )
        await self.emit({"type": "conversation.item.retrieved", "item": item.wire(self.flavor)})

    # ------------------------------------------------------------------ responses

    async def _response_create(self, data: dict[str, Any]) -> None:
        params = data.get("response") or {}
        conversation = params.get("conversation") != "none"
        if conversation and self.response is not None and self.response.conversation:
            raise ClientEventError(
                "conversation_already_has_active_response",
                "Conversation already has an active response in progress: "
                f"{self.response.id}. Wait until the response is finished "
                "before creating a new one.",
                None,
            )
        self._start_response(params)

    async def _response_cancel(self, data: dict[str, Any]) -> None:
        response = self.response
        wanted = data.get("response_id")
        if response is None or (wanted is not None and wanted != response.id):
            raise ClientEventError(
                "response_cancel_not_active", "Cancellation failed: no active response found", None
            )
        await self._cancel(response, "client_cancelled")

    async def _cancel(self, response: _Response, reason: str) -> None:
        if response.cancel_reason is None:
            response.cancel_reason = reason
            response.scope.cancel()
        await response.finished.wait()

    def _start_response(self, params: dict[str, Any]) -> None:
        self._arm_idle_timer(None)
        self.responses += 1
        if "modalities" in params:
            modalities = ["audio"] if "audio" in params["modalities"] else ["text"]
        else:
            modalities = list(params.get("output_modalities") or self.session.output_modalities)
        response = _Response(
            id=self._id("resp"),
            number=self.responses,
            conversation=params.get("conversation") != "none",
            modalities=modalities,
            instructions=params.get("instructions"),
            tools=params.get("tools"),
            metadata=params.get("metadata"),
        )
        if response.conversation:
            self.response = response
        assert self._nursery is not None
        self._nursery.start_soon(self._run_response, response)

    async def _run_response(self, response: _Response) -> None:
        try:
            with response.scope:
                await self._generate(response)
            await self._finish(response)
        except Gone:
            pass
        finally:
            if self.response is response:
                self.response = None
            response.finished.set()

    def _response_object(self, response: _Response, status: str) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": response.id,
            "object": "realtime.response",
            "status": status,
            "status_details": None,
            "output": [item.wire(self.flavor) for item in response.output],
            "conversation_id": "conv_" + self.session.id[5:] if response.conversation else None,
            "max_output_tokens": self.session.max_output_tokens,
            "usage": None,
            "metadata": response.metadata,
        }
        if self.flavor == "ga":
            obj["output_modalities"] = response.modalities
            obj["audio"] = {
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": self.session.voice,
                }
            }
        else:
            obj["modalities"] = ["audio", "text"] if response.modalities == ["audio"] else ["text"]
            obj["voice"] = self.session.voice
            obj["output_audio_format"] = "pcm16"
            obj["temperature"] = self.session.temperature
        return obj

    async def _wait_for_transcripts(self) -> None:
        pending = [e for e in self.transcripts.values() if not e.is_set()]
        with trio.move_on_after(TRANSCRIPT_WAIT_S):
            for event in pending:
                await event.wait()

    async def _generate(self, response: _Response) -> None:
        faults = self.config.faults
        await self._wait_for_transcripts()
        await self.emit(
            {"type": "response.created", "response": self._response_object(response, "in_progress")}
        )
        await self.emit(
            {
                "type": "rate_limits.updated",
                "rate_limits": [
                    {
                        "name": "requests",
                        "limit": self.config.rate_limit_requests,
                        "remaining": max(0, self.config.rate_limit_requests - self.responses),
                        "reset_seconds": 0.06,
                    },
                    {
                        "name": "tokens",
                        "limit": self.config.rate_limit_tokens,
                        "remaining": self.config.rate_limit_tokens,
                        "reset_seconds": 1.2,
                    },
                ],
            }
        )
        if faults.error_on_response == response.number:
            await self.emit(
                {
                    "type": "error",
                    "error": {
                        "type": "server_error",
                        "code": "server_error",
                        "message": "The server had an error while processing your request.",
                        "param": None,
                        "event_id": None,
                    },
                }
            )
            response.cancel_reason = "error"
            return
        setup = self.session.agent_setup(response.instructions, response.tools)
        history = self.conversation.history()
        reply = await ask_brain(self.brain, setup, history)
        if self.config.first_token_s > 0:
            await trio.sleep(self.config.first_token_s)
        if reply.calls and setup.tools:
            for name, arguments in reply.calls:
                await self._function_call(response, name, arguments)
        else:
            await self._message(response, reply.text)

    async def _fault_point(self, response: _Response) -> None:
        """Count a delta; drop or stall here when a fault says so."""
        response.deltas += 1
        faults = self.config.faults
        if response.deltas != faults.after_deltas:
            return
        if faults.drop_on_response == response.number:
            # An abrupt drop: no close frame, just the TCP stream going away.
            await self.stream.aclose()
            raise Gone()
        if faults.stall_on_response == response.number:
            await trio.sleep_forever()

    def _add_output(self, response: _Response, item: ConvItem) -> str | None:
        response.output.append(item)
        response.open_item = item
        response.open_index = len(response.output) - 1
        if response.conversation:
            return self.conversation.insert(item)
        return None

    async def _open_output_item(self, response: _Response, item: ConvItem) -> int:
        """Add `item` to the response's output and announce it; returns its index."""
        prev = self._add_output(response, item)
        index = response.open_index
        await self.emit(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": index,
                "item": item.wire(self.flavor),
            }
        )
        if response.conversation:
            kind = "conversation.item.added" if self.flavor == "ga" else "conversation.item.created"
            await self.emit(
                {"type": kind, "previous_item_id": prev, "item": item.wire(self.flavor)}
            )
        return index

    async def _function_call(self, response: _Response, name: str, arguments: str) -> None:
        item = ConvItem(
            id=self._id("item"),
            type="function_call",
            status="in_progress",
            name=name,
            call_id=self._id("call"),
            arguments="",
        )
        index = await self._open_output_item(response, item)
        base = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": index,
            "call_id": item.call_id,
        }
        for piece in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
            if piece:
                item.arguments = (item.arguments or "") + piece
                await self.emit(
                    {"type": "response.function_call_arguments.delta", **base, "delta": piece}
                )
                await self._fault_point(response)
        await self._close_function_call(response, item, "completed")
        response.output_chars += len(arguments)

    async def _close_function_call(self, response: _Response, item: ConvItem, status: str) -> None:
        base = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": response.open_index,
            "call_id": item.call_id,
        }
        done = {
            "type": "response.function_call_arguments.done",
            **base,
            "arguments": item.arguments or "",
        }
        if self.flavor == "ga":
            done["name"] = item.name  # the beta event has no name
        await self.emit(done)
        item.status = status
        await self._close_item(response, item)

    async def _close_item(self, response: _Response, item: ConvItem) -> None:
        response.open_item = None
        wire = item.wire(self.flavor)
        await self.emit(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": response.output.index(item),
                "item": wire,
            }
        )
        if response.conversation and self.flavor == "ga" and item.id in self.conversation:
            prev = self.conversation.previous_of(item.id)
            await self.emit(
                {"type": "conversation.item.done", "previous_item_id": prev, "item": wire}
            )

    def _names(self) -> dict[str, str]:
        if self.flavor == "ga":
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

    async def _message(self, response: _Response, text: str) -> None:
        audio = response.modalities == ["audio"]
        part_type = "output_audio" if audio else "output_text"
        item = ConvItem(
            id=self._id("item"),
            type="message",
            role="assistant",
            status="in_progress",
            content=[],
        )
        index = await self._open_output_item(response, item)
        item.content = [
            {"type": part_type, "transcript": ""} if audio else {"type": part_type, "text": ""}
        ]
        base = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": index,
            "content_index": 0,
        }
        part = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        await self.emit({"type": "response.content_part.added", **base, "part": part})
        names = self._names()
        words = tokens(text)
        if audio:
            await self._speak(response, item, base, words)
        else:
            gap = 1.0 / self.config.tokens_per_s if self.config.tokens_per_s > 0 else 0.0
            for word in words:
                if gap:
                    await trio.sleep(gap)
                item.content[0]["text"] += word
                response.output_chars += len(word)
                await self.emit({"type": names["text"] + ".delta", **base, "delta": word})
                await self._fault_point(response)
        await self._close_message(response, item, "completed")

    async def _speak(
        self, response: _Response, item: ConvItem, base: dict[str, Any], words: list[str]
    ) -> None:
        """Audio chunks paced by `audio_rtf`, with the transcript spread over them."""
        names = self._names()
        text = "".join(words)
        total_ms = speech_ms(text)
        chunk_ms = max(20, self.config.audio_chunk_ms)
        chunks = max(1, math.ceil(total_ms / chunk_ms))
        said = 0
        for n in range(chunks):
            ms = min(chunk_ms, total_ms - n * chunk_ms)
            target = len(words) * (n + 1) // chunks
            for word in words[said:target]:
                item.content[0]["transcript"] += word
                response.output_chars += len(word)
                await self.emit({"type": names["transcript"] + ".delta", **base, "delta": word})
            said = target
            pcm = synthetic_voice(ms)
            if self.config.audio_rtf > 0:
                await trio.sleep(ms / 1000.0 * self.config.audio_rtf)
            item.audio_ms += ms
            response.output_audio_ms += ms
            await self.emit(
                {"type": names["audio"] + ".delta", **base, "delta": base64.b64encode(pcm).decode()}
            )
            await self._fault_point(response)

    async def _close_message(self, response: _Response, item: ConvItem, status: str) -> None:
        names = self._names()
        base = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": response.output.index(item),
            "content_index": 0,
        }
        if item.content:
            part = dict(item.content[0])
            if part["type"] == "output_audio":
                await self.emit({"type": names["audio"] + ".done", **base})
                await self.emit(
                    {
                        "type": names["transcript"] + ".done",
                        **base,
                        "transcript": part["transcript"],
                    }
                )
                wire_part = {"type": "audio", "transcript": part["transcript"]}
            else:
                await self.emit({"type": names["text"] + ".done", **base, "text": part["text"]})
                wire_part = {"type": "text", "text": part["text"]}
            await self.emit({"type": "response.content_part.done", **base, "part": wire_part})
        item.status = status
        await self._close_item(response, item)

    async def _finish(self, response: _Response) -> None:
        """The tail of every response: close what is open, then ``response.done``."""
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            item = response.open_item
            if item is not None:
                if item.type == "function_call":
                    await self._close_function_call(response, item, "incomplete")
                else:
                    await self._close_message(response, item, "incomplete")
            reason = response.cancel_reason
            body = self._response_object(response, "completed")
            if reason == "error":
                body["status"] = "failed"
                body["status_details"] = {
                    "type": "failed",
                    "error": {"type": "server_error", "code": "server_error"},
                }
            elif reason is not None:
                body["status"] = "cancelled"
                body["status_details"] = {"type": "cancelled", "reason": reason}
            body["usage"] = self._usage(response)
            await self.emit({"type": "response.done", "response": body})
        td = self.session.turn_detection or {}
        if response.conversation and td.get("idle_timeout_ms"):
            # The service counts from the end of playback: response.done + audio length.
            self._arm_idle_timer((response.output_audio_ms + td["idle_timeout_ms"]) / 1000)

    def _arm_idle_timer(self, delay_s: float | None) -> None:
        """(Re)start the server_vad idle timer, or stop it with None."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if delay_s is not None and self._nursery is not None:
            self._idle_timer = trio.CancelScope()
            self._nursery.start_soon(self._idle_wait, self._idle_timer, delay_s)

    async def _idle_wait(self, scope: trio.CancelScope, delay_s: float) -> None:
        """After `delay_s` of silence: ``timeout_triggered``, commit, respond."""
        with scope:
            await trio.sleep(delay_s)
            self._idle_timer = None
            if self.response is not None or self.vad.in_speech:
                return
            item_id = self._id("item")
            now_ms = self.vad.total_ms
            try:
                await self.emit(
                    {
                        "type": "input_audio_buffer.timeout_triggered",
                        "audio_start_ms": self.buffer_start_ms,
                        "audio_end_ms": now_ms,
                        "item_id": item_id,
                    }
                )
                await self._commit_buffer(item_id, silent=True)
            except Gone:
                return
            self._start_response({})

    def _usage(self, response: _Response) -> dict[str, Any]:
        """Synthetic token counts: ~4 characters a text token; audio 10 tokens a second in,
        20 out."""
        history = self.conversation.history()
        in_text = sum(len(item.text) for item in history) // 4 + len(self.session.instructions) // 4
        in_audio = self.conversation.user_audio_ms() // 100
        out_text = response.output_chars // 4
        out_audio = response.output_audio_ms // 50
        detail_in: dict[str, Any] = {
            "text_tokens": in_text,
            "audio_tokens": in_audio,
            "cached_tokens": 0,
        }
        if self.flavor == "ga":
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

    _HANDLERS: dict[str, Callable[[RealtimeEmulatorConnection, dict[str, Any]], Any]] = {
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
