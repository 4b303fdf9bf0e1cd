"""Configuration of the Realtime emulator: latency knobs, pluggable parts, faults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from voiceagent.emulators.realtime_parts import Brain, Transcriber


@dataclass(slots=True)
class Faults:
    """Fault injection. Response numbers count `response.create`s per connection, from 1."""

    reject_status: int | None = None  # answer the handshake with this HTTP status
    reject_first: int = 0  # ...for the first N handshakes only (0 = all of them)
    error_on_response: int | None = None  # send an `error` event instead of this response
    drop_on_response: int | None = None  # drop the TCP connection during this response
    stall_on_response: int | None = None  # stop sending (forever) during this response
    after_deltas: int = 2  # how many deltas the dropping/stalling response sends first


@dataclass(slots=True)
class EmulatorConfig:
    """Everything the emulator can be told; see the module docstring."""

    api_keys: tuple[str, ...] = ()  # accepted keys; empty = any non-empty key
    model: str = "gpt-realtime"  # reported when the URL gives none
    beta_model: str = "gpt-4o-realtime-preview"  # the beta session's model literal
    first_token_s: float = 0.0
    tokens_per_s: float = 0.0
    audio_rtf: float = 0.0  # seconds waited per second of audio sent
    audio_chunk_ms: int = 200
    # Builds one brain per connection (brains may keep per-conversation state).
    brain_factory: Callable[[], Brain] | None = None
    transcriber: Transcriber | None = None
    use_recognizer: bool = False
    faults: Faults = field(default_factory=Faults)
    # Observe every frame: trace("in" | "out", json_text). Used by conformance tests.
    trace: Callable[[str, str], None] | None = None
    max_message_bytes: int = 16 * 1024 * 1024
    max_items: int = 512
    rate_limit_requests: int = 10_000
    rate_limit_tokens: int = 1_000_000
