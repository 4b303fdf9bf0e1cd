"""The one event vocabulary a session consumes from any speech model.

Every `RealtimeModel` implementation (Azure/OpenAI Realtime, the offline pipeline, the
scripted test model) translates its provider's wire events into these dataclasses. The
session never sees provider JSON, so swapping providers changes nothing above this line.

Ids: `item_id` names a conversation item (a user utterance or an assistant message) and
`response_id` names one model response. Providers that have no ids of their own make
them up, but they must be unique within a connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ResponseStatus = Literal["completed", "cancelled", "failed", "incomplete"]


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The model's VAD heard the user start speaking (barge-in trigger)."""

    audio_start_ms: int
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """The model's VAD heard the user stop speaking; `audio_end_ms` is in input time."""

    audio_end_ms: int
    item_id: str | None = None


@dataclass(frozen=True, slots=True)
class InputCommitted:
    """The buffered user audio became conversation item `item_id`."""

    item_id: str


@dataclass(frozen=True, slots=True)
class TranscriptDelta:
    """A partial transcript of the user's utterance `item_id` (may be revised)."""

    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TranscriptCompleted:
    """The final transcript of the user's utterance `item_id`."""

    item_id: str
    transcript: str


@dataclass(frozen=True, slots=True)
class TranscriptFailed:
    item_id: str
    message: str


@dataclass(frozen=True, slots=True)
class ResponseStarted:
    """The model began a response; everything until `ResponseDone` belongs to it."""

    response_id: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Assistant text (or the transcript of the model's own audio)."""

    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TextDone:
    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """The model's own voice: PCM16 LE mono 24 kHz (only when output is audio)."""

    response_id: str
    item_id: str
    pcm: bytes


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A complete function call; `arguments` is the JSON text the model wrote."""

    response_id: str
    item_id: str
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_text_tokens: int = 0
    output_text_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ResponseDone:
    """Always the last event of a response, whatever its fate."""

    response_id: str
    status: ResponseStatus
    usage: Usage | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    limits: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelError:
    """A provider-side problem. `fatal` means the connection is unusable now."""

    code: str
    message: str
    fatal: bool = False


ModelEvent = (
    SpeechStarted
    | SpeechStopped
    | InputCommitted
    | TranscriptDelta
    | TranscriptCompleted
    | TranscriptFailed
    | ResponseStarted
    | TextDelta
    | TextDone
    | AudioDelta
    | FunctionCall
    | ResponseDone
    | RateLimits
    | ModelError
)
