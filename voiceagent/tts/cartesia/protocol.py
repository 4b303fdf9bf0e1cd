"""Cartesia TTS WebSocket messages and the per-context state machine (sans-I/O).

Rules of this module:
- No sockets, no clocks, no Trio. Callers feed parsed messages in and get bytes/records
  out; the client, the emulator and the tests share this code.
- Everything the wire can carry is validated here into small frozen dataclasses; a
  malformed message raises `ProtocolError` (whose fault it is is in `.remote`).
- Field names and shapes follow the official `cartesia` package's types
  (`GenerationRequest`, `CancelContextRequest`, `WebsocketResponse`).

Theory of operation (one context = one agent response):

    OPEN --push(continue=true)--> STREAMING --push(continue=false)--> CLOSED
    OPEN/STREAMING/CLOSED --recv chunk/timestamps/flush_done--> (same state)
    CLOSED --recv done--> DONE                 (STREAMING --recv done--> DONE too:
                                                a server may end a context early)
    OPEN/STREAMING/CLOSED --cancel--> CANCELLED
    OPEN/STREAMING/CLOSED --recv error--> FAILED

Once a context is DONE, CANCELLED or FAILED it is finished: anything still arriving for
it is late and `ContextMachine.accepts()` says to drop it. Pushing text after CLOSED is a
local error (the server would answer "context closed"). A push of the first text while
OPEN moves to STREAMING or, with `continue=false`, straight to CLOSED. A flush (empty
transcript, `continue: true`, `flush: true`) is allowed only while STREAMING and does not
change the state; the server answers `flush_done`.
"""

from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass
from typing import Any

import orjson

DEFAULT_MODEL_ID = "sonic-3"  # the one default; Settings and CartesiaConfig both use it

ENCODINGS = frozenset({"pcm_f32le", "pcm_s16le", "pcm_mulaw", "pcm_alaw"})
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 44100, 48000})
SPEEDS = frozenset({"slow", "normal", "fast"})
# Fields a generation request may carry (GenerationRequest in the official types).
REQUEST_FIELDS = frozenset(
    {
        "context_id",
        "model_id",
        "transcript",
        "voice",
        "output_format",
        "continue",
        "flush",
        "language",
        "add_timestamps",
        "add_phoneme_timestamps",
        "use_normalized_timestamps",
        "max_buffer_delay_ms",
        "speed",
        "generation_config",
        "pronunciation_dict_id",
    }
)
# These may change between inputs of one context; every other field is locked.
PER_INPUT_FIELDS = frozenset({"transcript", "continue", "flush"})


class ProtocolError(Exception):
    """A message broke the protocol; `remote` is True when the peer sent it."""

    def __init__(self, message: str, *, remote: bool = True) -> None:
        super().__init__(message)
        self.remote = remote


# ---------------------------------------------------------------- requests (client side)


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


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


# ---------------------------------------------------------------- responses (client side)


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


# ---------------------------------------------------------------- context state machine


class ContextState(enum.Enum):
    OPEN = "open"
    STREAMING = "streaming"
    CLOSED = "closed"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINISHED = frozenset({ContextState.DONE, ContextState.CANCELLED, ContextState.FAILED})
_LIVE = frozenset({ContextState.OPEN, ContextState.STREAMING, ContextState.CLOSED})

# (state, event) -> next state. Events: "push_more", "push_last", "done", "error", "cancel".
_TRANSITIONS: dict[tuple[ContextState, str], ContextState] = {
    (ContextState.OPEN, "push_more"): ContextState.STREAMING,
    (ContextState.OPEN, "push_last"): ContextState.CLOSED,
    (ContextState.STREAMING, "push_more"): ContextState.STREAMING,
    (ContextState.STREAMING, "push_last"): ContextState.CLOSED,
    (ContextState.STREAMING, "done"): ContextState.DONE,
    (ContextState.CLOSED, "done"): ContextState.DONE,
    **{(s, "cancel"): ContextState.CANCELLED for s in _LIVE},
    **{(s, "error"): ContextState.FAILED for s in _LIVE},
}


class ContextMachine:
    """Tracks one context from the client's side and builds its requests."""

    def __init__(self, context_id: str, settings: GenerationSettings) -> None:
        self.context_id = context_id
        self.settings = settings
        self.state = ContextState.OPEN
        self.audio_bytes = 0

    def _move(self, event: str) -> None:
        nxt = _TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise ProtocolError(f"{event} not allowed in state {self.state.value}", remote=False)
        self.state = nxt

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def sent_anything(self) -> bool:
        return self.state is not ContextState.OPEN

    def push(self, transcript: str, *, more: bool) -> dict[str, Any]:
        """A generation request for `transcript`; `more=False` closes the context."""
        self._move("push_more" if more else "push_last")
        return generation_request(self.settings, self.context_id, transcript, more=more)

    def flush(self) -> dict[str, Any]:
        """A flush request: voice what was pushed so far; the server answers `flush_done`."""
        if self.state is not ContextState.STREAMING:
            raise ProtocolError(f"flush not allowed in state {self.state.value}", remote=False)
        return generation_request(self.settings, self.context_id, "", more=True, flush=True)

    def cancel(self) -> dict[str, Any] | None:
        """The cancel request, or None when there is nothing live to cancel."""
        if self.state not in _LIVE:
            return None
        was_open = self.state is ContextState.OPEN
        self._move("cancel")
        return None if was_open else cancel_request(self.context_id)

    def accepts(self, response: Response) -> bool:
        """True when `response` belongs to this live context (else: drop it as late)."""
        context_id = getattr(response, "context_id", None)
        return context_id == self.context_id and self.state in _LIVE

    def receive(self, response: Response) -> None:
        """Apply an accepted response to the state."""
        if isinstance(response, AudioChunk):
            self.audio_bytes += len(response.audio)
        elif isinstance(response, Done):
            self._move("done")
        elif isinstance(response, ErrorResponse):
            self._move("error")


# ---------------------------------------------------------------- requests (server side)


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


# ---------------------------------------------------------------- responses (server side)


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
