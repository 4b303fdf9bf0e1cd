"""Settings from the environment and `.env`, validated once at startup.

`Settings.from_env()` reads every variable, converts and checks it, and raises
`ConfigError` naming the variable on the first bad value, so a typo fails fast at
startup instead of in the middle of a conversation. Everything else in the package
takes a `Settings` (or a provider's own config built from it), never `os.environ`.

This module is the list of settings (`Settings`, one field per variable, the variable
named in its comment) and which env file is read; `config_env.py` turns environment
text into `Settings`: the variable names, the parsers and the consistency checks.

Which file is read (`load_env_file()`), and nothing else:
- an explicit file: `voiceagent serve --env-file PATH`, or `VOICEAGENT_ENV_FILE=PATH`
  in the environment (for `hypercorn voiceagent:app`). A missing one is a
  `ConfigError` naming it; `voiceagent serve` then exits 2.
- otherwise `.env` in the current working directory, when there is one.
Never a `.env` found by searching parent folders (python-dotenv's `find_dotenv`
searches upward from the calling module's folder: an installed package would search
from site-packages and could load an unrelated project's keys). Real environment
variables win over the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from voiceagent.tts.cartesia.protocol import DEFAULT_MODEL_ID as CARTESIA_DEFAULT_MODEL_ID

T = TypeVar("T")

MODEL_CHOICES = ("auto", "offline", "azure", "openai")
TTS_CHOICES = ("auto", "offline", "cartesia", "none")
TURN_DETECTION_CHOICES = ("server_vad", "semantic_vad", "none")
LOG_FORMATS = ("kv", "json")
ENV_FILE_VARIABLE = "VOICEAGENT_ENV_FILE"


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    # Providers
    model: str = "auto"  # VOICEAGENT_MODEL
    tts: str = "auto"  # VOICEAGENT_TTS
    agent: str = "voiceagent.demo.airline:triage_agent"  # VOICEAGENT_AGENT (agents/airline.py)
    language: str = "en"  # VOICEAGENT_LANGUAGE (default: CARTESIA_DEFAULT_LANGUAGE)
    tts_fallback: bool = True  # VOICEAGENT_TTS_FALLBACK: local voice when Cartesia fails

    # Azure OpenAI / OpenAI Realtime
    azure_api_key: str = ""  # AZURE_OPENAI_API_KEY
    azure_realtime_url: str = ""  # AZURE_OPENAI_REALTIME_URL
    openai_api_key: str = ""  # OPENAI_API_KEY
    openai_realtime_url: str = "wss://api.openai.com/v1/realtime"  # OPENAI_REALTIME_URL
    openai_realtime_model: str = "gpt-realtime"  # OPENAI_REALTIME_MODEL
    realtime_voice: str = "alloy"  # VOICEAGENT_REALTIME_VOICE
    turn_detection: str = "server_vad"  # VOICEAGENT_TURN_DETECTION
    vad_threshold: float = 0.5  # VOICEAGENT_VAD_THRESHOLD
    vad_prefix_padding_ms: int = 300  # VOICEAGENT_VAD_PREFIX_PADDING_MS
    vad_silence_duration_ms: int = 500  # VOICEAGENT_VAD_SILENCE_DURATION_MS
    vad_eagerness: str = "auto"  # VOICEAGENT_VAD_EAGERNESS (semantic_vad)
    turn_words: bool = True  # VOICEAGENT_TURN_WORDS (semantic_vad offline)
    vad_create_response: bool = True  # VOICEAGENT_VAD_CREATE_RESPONSE
    vad_interrupt_response: bool = True  # VOICEAGENT_VAD_INTERRUPT_RESPONSE
    transcription_model: str = "gpt-4o-mini-transcribe"  # VOICEAGENT_TRANSCRIPTION_MODEL
    transcription_language: str = ""  # VOICEAGENT_TRANSCRIPTION_LANGUAGE
    noise_reduction: str = ""  # VOICEAGENT_NOISE_REDUCTION (near_field, far_field)
    model_connect_timeout_s: float = 10.0  # VOICEAGENT_MODEL_CONNECT_TIMEOUT_S

    # Cartesia
    cartesia_api_key: str = ""  # CARTESIA_API_KEY
    cartesia_websocket_url: str = "wss://api.cartesia.ai/tts/websocket"  # CARTESIA_WEBSOCKET_URL
    cartesia_api_version: str = "2025-04-16"  # CARTESIA_API_VERSION
    cartesia_model_id: str = CARTESIA_DEFAULT_MODEL_ID  # CARTESIA_MODEL_ID
    cartesia_default_language: str = "en"  # CARTESIA_DEFAULT_LANGUAGE
    cartesia_voice_id: str = "a0e99841-438c-4a64-b679-ae501e7d6091"  # CARTESIA_VOICE_ID
    cartesia_first_audio_timeout_s: float = 5.0  # CARTESIA_FIRST_AUDIO_TIMEOUT_S
    tts_fallback_cooldown_s: float = 30.0  # VOICEAGENT_TTS_FALLBACK_COOLDOWN_S

    # The browser socket
    ws_outgoing_max: int = 512  # WS_OUTGOING_MAX
    ws_incoming_audio_max: int = 32  # WS_INCOMING_AUDIO_MAX
    ws_tts_chunk_bytes: int = 9600  # WS_TTS_CHUNK_BYTES (200 ms)
    ws_max_audio_frame_bytes: int = 32768  # WS_MAX_AUDIO_FRAME_BYTES
    ws_max_text_chars: int = 4000  # WS_MAX_TEXT_CHARS
    # The client's microphone frame durations, announced in `session_started.limits`
    # (docs/protocol.md): the range a client may pick from, and the one it should pick.
    ws_min_audio_frame_ms: int = 10  # WS_MIN_AUDIO_FRAME_MS
    ws_max_audio_frame_ms: int = 200  # WS_MAX_AUDIO_FRAME_MS
    ws_preferred_audio_frame_ms: int = 100  # WS_PREFERRED_AUDIO_FRAME_MS
    ws_send_timeout_s: float = 5.0  # WS_SEND_TIMEOUT_S
    ws_write_timeout_s: float = 10.0  # WS_WRITE_TIMEOUT_S (one socket write, transport level)
    ws_max_errors: int = 20  # WS_MAX_ERRORS (bad messages per 10 s before close 1008)
    ws_idle_timeout_s: float = 300.0  # WS_IDLE_TIMEOUT_S (no audio/text this long: close; 0 off)
    # WS_MAX_MESSAGE_BYTES: largest browser message the transport buffers (close 1009
    # past it); 0 = from the protocol's own maxima (256 KiB by default).
    ws_max_message_bytes: int = 0

    # WebSockets per process; 0 = min(10000, open-file soft limit - 64), read at start.
    ws_max_connections: int = 0  # WS_MAX_CONNECTIONS

    # Session runtime
    model_idle_timeout_s: float = 300.0  # VOICEAGENT_MODEL_IDLE_TIMEOUT_S
    model_first_event_timeout_s: float = 15.0  # VOICEAGENT_MODEL_FIRST_EVENT_TIMEOUT_S
    model_stall_timeout_s: float = 10.0  # VOICEAGENT_MODEL_STALL_TIMEOUT_S
    model_reconnect_backoff_s: float = 0.5  # VOICEAGENT_MODEL_RECONNECT_BACKOFF_S
    model_reconnect_max_s: float = 30.0  # VOICEAGENT_MODEL_RECONNECT_MAX_S
    audio_batch_ms: int = 100  # VOICEAGENT_AUDIO_BATCH_MS (provider-bound append size)
    tool_threads: int = 8  # VOICEAGENT_TOOL_THREADS (sync tools at once, whole process)
    teardown_timeout_s: float = 2.0  # VOICEAGENT_TEARDOWN_TIMEOUT_S
    drain_grace_s: float = 20.0  # VOICEAGENT_DRAIN_GRACE_S (rooms finish their response)
    # The cyclic garbage collector (voiceagent/gc_policy.py, docs/memory.md)
    gc_freeze_interval_s: float = 3.0  # VOICEAGENT_GC_FREEZE_INTERVAL_S (0: CPython's own)
    gc_sweep_interval_s: float = 600.0  # VOICEAGENT_GC_SWEEP_INTERVAL_S
    gc_sweep_max_rooms: int = 0  # VOICEAGENT_GC_SWEEP_MAX_ROOMS (a sweep walks every room)
    gc_young_threshold: int = 100_000  # VOICEAGENT_GC_YOUNG_THRESHOLD (0: CPython's 700)

    # Turn-taking (voiceagent/interruption.py, docs/turn-taking.md)
    resume_false_interruption: bool = True  # VOICEAGENT_RESUME_FALSE_INTERRUPTION
    min_interruption_ms: int = 500  # VOICEAGENT_MIN_INTERRUPTION_MS
    min_interruption_words: int = 0  # VOICEAGENT_MIN_INTERRUPTION_WORDS
    false_interruption_timeout_ms: int = 2000  # VOICEAGENT_FALSE_INTERRUPTION_TIMEOUT_MS
    user_away_timeout_s: float = 0.0  # VOICEAGENT_USER_AWAY_TIMEOUT_S (0: off; e.g. 30)

    # Metrics and logs
    price_text_in: float = 4.0  # VOICEAGENT_PRICE_TEXT_IN (USD per 1M tokens)
    price_text_out: float = 16.0  # VOICEAGENT_PRICE_TEXT_OUT
    price_audio_in: float = 32.0  # VOICEAGENT_PRICE_AUDIO_IN
    price_audio_out: float = 64.0  # VOICEAGENT_PRICE_AUDIO_OUT
    price_cached_in: float = 0.4  # VOICEAGENT_PRICE_CACHED_IN
    log_level: str = "INFO"  # VOICEAGENT_LOG_LEVEL
    log_format: str = "kv"  # VOICEAGENT_LOG_FORMAT (kv or json)

    # Access control and limits (docs/security.md)
    auth_secret: str = ""  # VOICEAGENT_AUTH_SECRET (HS256 room tokens)
    auth_public_key: str = ""  # VOICEAGENT_AUTH_PUBLIC_KEY (PEM or its path: RS256/ES256)
    allowed_origins: str = ""  # VOICEAGENT_ALLOWED_ORIGINS (besides same host and localhost)
    trusted_proxies: str = ""  # VOICEAGENT_TRUSTED_PROXIES (their X-Forwarded-For counts)
    max_sessions_per_ip: int = 20  # VOICEAGENT_MAX_SESSIONS_PER_IP (0: no limit)
    max_sessions_per_user: int = 5  # VOICEAGENT_MAX_SESSIONS_PER_USER (0: no limit)
    max_audio_rate: float = 2.0  # VOICEAGENT_MAX_AUDIO_RATE (x real time; 0: no limit)
    max_messages_per_s: float = 20.0  # VOICEAGENT_MAX_MESSAGES_PER_S (JSON; 0: no limit)
    max_session_s: float = 3600.0  # VOICEAGENT_MAX_SESSION_S (0: no limit)
    max_session_tokens: int = 0  # VOICEAGENT_MAX_SESSION_TOKENS (0: no limit)
    max_session_cost_usd: float = 0.0  # VOICEAGENT_MAX_SESSION_COST_USD (0: no limit)
    admin_token: str = ""  # VOICEAGENT_ADMIN_TOKEN (guards /metrics and /admin)
    demo_tokens: bool = False  # VOICEAGENT_DEMO_TOKENS (development only)
    max_rooms: int = 0  # VOICEAGENT_MAX_ROOMS (rooms at once: fleet-wide with Redis; 0: none)

    # Several instances (docs/deploy.md): a shared registry in Redis
    redis_url: str = ""  # VOICEAGENT_REDIS_URL (empty: in-process registry, one process)
    redis_prefix: str = "voiceagent"  # VOICEAGENT_REDIS_PREFIX (keys and channels)
    redis_failure: str = "open"  # VOICEAGENT_REDIS_FAILURE (open or closed)
    redis_timeout_s: float = 0.5  # VOICEAGENT_REDIS_TIMEOUT_S (one Redis call)
    presence_ttl_s: float = 15.0  # VOICEAGENT_PRESENCE_TTL_S (a dead instance's rooms expire)

    # Conversation store (docs/store.md)
    store: bool = True  # VOICEAGENT_STORE (0: nothing is stored, no resume)
    data_dir: str = "data"  # VOICEAGENT_DATA_DIR (SQLite file, recordings; relative: cwd)
    database_url: str = ""  # VOICEAGENT_DATABASE_URL (postgresql://...; empty: SQLite)
    store_flush_ms: int = 200  # VOICEAGENT_STORE_FLUSH_MS (longest wait before a write)
    store_queue: int = 10_000  # VOICEAGENT_STORE_QUEUE (records waiting; full: dropped)
    resume_window_s: float = 120.0  # VOICEAGENT_RESUME_WINDOW_S (0: never resume)
    audit_file: str = ""  # VOICEAGENT_AUDIT_FILE (JSON lines of stored records; empty: none)
    audit_stream: str = ""  # VOICEAGENT_AUDIT_STREAM (Redis stream key; needs REDIS_URL)
    audit_stream_maxlen: int = 100_000  # VOICEAGENT_AUDIT_STREAM_MAXLEN (XADD MAXLEN ~)
    record: bool = False  # VOICEAGENT_RECORD (stereo WAV per connection in DATA_DIR/recordings)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_secret or self.auth_public_key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, dotenv: bool = True) -> Settings:
        """Read settings from `environ` (default: the process environment plus the env
        file `load_env_file()` picks; see the module docstring)."""
        if environ is None:
            if dotenv:
                load_env_file()
            environ = os.environ
        from voiceagent.config_env import parse

        return parse(environ)

    # -- derived choices ---------------------------------------------------------------

    def resolved_model(self) -> str:
        """`auto` picks Azure, then OpenAI, when their keys are set, else offline."""
        if self.model != "auto":
            return self.model
        if self.azure_api_key and self.azure_realtime_url:
            return "azure"
        if self.openai_api_key:
            return "openai"
        return "offline"

    def transport_max_message_bytes(self) -> int:
        """WS_MAX_MESSAGE_BYTES, or (0) the limit derived from the protocol's maxima."""
        from voiceagent.protocol import Limits  # numpy: not at `import voiceagent`

        limits = Limits(self.ws_max_audio_frame_bytes, self.ws_max_text_chars)
        return self.ws_max_message_bytes or limits.transport_limit

    def resolved_tts(self) -> str:
        """`auto` picks Cartesia when its key is set, else the local voice."""
        if self.tts != "auto":
            return self.tts
        return "cartesia" if self.cartesia_api_key else "offline"


def load_env_file(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Load one env file into `os.environ` (real variables win); return its path.

    `path`, else `$VOICEAGENT_ENV_FILE`, must name an existing file (`ConfigError`
    otherwise). Without either, `./.env` is loaded when it exists; None when no file
    was loaded.
    """
    explicit = path if path is not None else os.environ.get(ENV_FILE_VARIABLE) or None
    if explicit is not None:
        chosen = Path(explicit)
        if not chosen.is_file():
            raise ConfigError(f"env file not found: {os.fspath(explicit)}")
    else:
        chosen = Path(".env")  # the working directory's, never a parent folder's
        if not chosen.is_file():
            return None
    from dotenv import load_dotenv

    load_dotenv(chosen, override=False)
    return chosen
