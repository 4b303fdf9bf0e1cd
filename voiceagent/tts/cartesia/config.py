"""`CartesiaConfig`: the Cartesia client's settings, validated once at startup.

Validation errors name the setting and show the URL only through `redact_url()`: a
Cartesia URL may carry the key as `?api_key=`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from voiceagent.pcm import SAMPLE_RATE
from voiceagent.redact import redact_url
from voiceagent.tts.cartesia import protocol as proto

DEFAULT_URL = "wss://api.cartesia.ai/tts/websocket"


@dataclass(frozen=True, slots=True)
class CartesiaConfig:
    """Settings for the Cartesia client (validated once by `validate()`)."""

    api_key: str
    voice_id: str
    url: str = DEFAULT_URL
    api_version: str = "2025-04-16"
    model_id: str = proto.DEFAULT_MODEL_ID
    language: str = "en"
    #: server-side buffering (None: not sent, the server starts at once; we aggregate)
    max_buffer_delay_ms: int | None = None
    #: no audio this long after the first push (or between messages once the text is
    #: complete) means the socket is dead: TTSError("tts_timeout"), socket dropped
    first_audio_timeout_s: float = 5.0
    connect_timeout_s: float = 5.0
    #: the first push of a response carries at least this many words
    min_first_words: int = 4
    #: no new text for this long releases the buffered words (a pausing writer)
    push_idle_ms: int = 250
    #: transient connect failures are retried this many times with backoff
    connect_attempts: int = 3
    extra_headers: tuple[tuple[str, str], ...] = field(default=())

    def validate(self) -> CartesiaConfig:
        if not self.api_key:
            raise ValueError("Cartesia needs an API key (CARTESIA_API_KEY)")
        if not self.voice_id:
            raise ValueError("Cartesia needs a voice id (CARTESIA_VOICE_ID)")
        if urlsplit(self.url).scheme not in ("ws", "wss"):
            raise ValueError(
                f"CARTESIA_WEBSOCKET_URL must be ws:// or wss://, got {redact_url(self.url)!r}"
            )
        if self.max_buffer_delay_ms is not None and not 0 <= self.max_buffer_delay_ms <= 5000:
            raise ValueError("max_buffer_delay_ms must be within [0, 5000]")
        if self.first_audio_timeout_s <= 0 or self.connect_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.connect_attempts < 1:
            raise ValueError("connect_attempts must be >= 1")
        return self

    @property
    def settings(self) -> proto.GenerationSettings:
        return proto.GenerationSettings(
            model_id=self.model_id,
            voice_id=self.voice_id,
            language=self.language or None,
            encoding="pcm_s16le",
            sample_rate=SAMPLE_RATE,
            add_timestamps=True,
            max_buffer_delay_ms=self.max_buffer_delay_ms,
        )

    def handshake_headers(self) -> list[tuple[str, str]]:
        return [
            ("Authorization", f"Bearer {self.api_key}"),
            ("Cartesia-Version", self.api_version),
            *self.extra_headers,
        ]
