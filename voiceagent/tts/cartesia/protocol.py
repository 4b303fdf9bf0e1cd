"""Cartesia TTS WebSocket messages and the per-context state machine (sans-I/O).

Rules of this module and of the modules it gathers:
- No sockets, no clocks, no Trio. Callers feed parsed messages in and get bytes/records
  out; the client, the emulator and the tests share this code.
- Everything the wire can carry is validated here into small frozen dataclasses; a
  malformed message raises `ProtocolError` (whose fault it is is in `.remote`).
- Field names and shapes follow the official `cartesia` package's types
  (`GenerationRequest`, `CancelContextRequest`, `WebsocketResponse`).

The parts, each in its own module (import the names from here):
- `wire`: what both sides share: `DEFAULT_MODEL_ID`, the values a request may carry,
  `ProtocolError`, `encode`. Cheap to import: `voiceagent.config` reads the default
  model from here without loading the client or any WebSocket code.
- `client_messages`: the client's requests (`GenerationSettings`, `generation_request`,
  `cancel_request`) and the server's responses as the client parses them
  (`parse_response` -> `AudioChunk`, `WordTimestamps`, ..., `ErrorResponse`).
- `context_machine`: `ContextMachine`, one context's states from the client's side
  (the state diagram is in that module).
- `server_messages`: the server's view: `parse_request` (-> `InputRequest`,
  `CancelRequest`, or `RequestInvalid`) and the response builders (`chunk_message`,
  ..., `error_message`), used by the emulator.

Callers use the names through this module (`from voiceagent.tts.cartesia import
protocol as proto; proto.chunk_message(...)`), which is also the one place to replace
one for a measurement (benchmarks/_stamped_cartesia.py replaces `chunk_message`).
"""

from __future__ import annotations

from voiceagent.tts.cartesia.client_messages import (
    AudioChunk,
    Done,
    ErrorResponse,
    FlushDone,
    GenerationSettings,
    PhonemeTimestamps,
    Response,
    WordTimestamps,
    cancel_request,
    generation_request,
    parse_response,
)
from voiceagent.tts.cartesia.context_machine import FINISHED, ContextMachine, ContextState
from voiceagent.tts.cartesia.server_messages import (
    CancelRequest,
    InputRequest,
    RequestInvalid,
    chunk_message,
    done_message,
    error_message,
    flush_done_message,
    parse_request,
    phoneme_timestamps_message,
    timestamps_message,
)
from voiceagent.tts.cartesia.wire import (
    DEFAULT_MODEL_ID,
    ENCODINGS,
    PER_INPUT_FIELDS,
    REQUEST_FIELDS,
    SAMPLE_RATES,
    SPEEDS,
    ProtocolError,
    encode,
)

__all__ = [
    "DEFAULT_MODEL_ID",
    "ENCODINGS",
    "FINISHED",
    "PER_INPUT_FIELDS",
    "REQUEST_FIELDS",
    "SAMPLE_RATES",
    "SPEEDS",
    "AudioChunk",
    "CancelRequest",
    "ContextMachine",
    "ContextState",
    "Done",
    "ErrorResponse",
    "FlushDone",
    "GenerationSettings",
    "InputRequest",
    "PhonemeTimestamps",
    "ProtocolError",
    "RequestInvalid",
    "Response",
    "WordTimestamps",
    "cancel_request",
    "chunk_message",
    "done_message",
    "encode",
    "error_message",
    "flush_done_message",
    "generation_request",
    "parse_request",
    "parse_response",
    "phoneme_timestamps_message",
    "timestamps_message",
]
