"""From environment text to `Settings`: variable names, parsers, consistency checks.

`parse(environ)` reads the variable of every `Settings` field (`_ENV_NAMES`), converts
it with its parser (`_PARSERS`; plain text when none), and raises `ConfigError` naming
the variable on the first bad value. A value that may hold a secret (a URL with a key
in its query, a password) is never echoed: it is shown redacted. Then the settings are
checked as a whole (`_check_consistency`: keys a choice needs, limits that must fit
the protocol, access-control values).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any, TypeVar

from voiceagent.config import (
    LOG_FORMATS,
    MODEL_CHOICES,
    TTS_CHOICES,
    TURN_DETECTION_CHOICES,
    ConfigError,
    Settings,
)
from voiceagent.pcm import ms_bytes
from voiceagent.redact import redact_url

_ENV_NAMES: dict[str, str] = {
    "model": "VOICEAGENT_MODEL",
    "tts": "VOICEAGENT_TTS",
    "agent": "VOICEAGENT_AGENT",
    "language": "VOICEAGENT_LANGUAGE",
    "tts_fallback": "VOICEAGENT_TTS_FALLBACK",
    "azure_api_key": "AZURE_OPENAI_API_KEY",
    "azure_realtime_url": "AZURE_OPENAI_REALTIME_URL",
    "openai_api_key": "OPENAI_API_KEY",
    "openai_realtime_url": "OPENAI_REALTIME_URL",
    "openai_realtime_model": "OPENAI_REALTIME_MODEL",
    "realtime_voice": "VOICEAGENT_REALTIME_VOICE",
    "turn_detection": "VOICEAGENT_TURN_DETECTION",
    "vad_threshold": "VOICEAGENT_VAD_THRESHOLD",
    "vad_prefix_padding_ms": "VOICEAGENT_VAD_PREFIX_PADDING_MS",
    "vad_silence_duration_ms": "VOICEAGENT_VAD_SILENCE_DURATION_MS",
    "vad_eagerness": "VOICEAGENT_VAD_EAGERNESS",
    "turn_words": "VOICEAGENT_TURN_WORDS",
    "vad_create_response": "VOICEAGENT_VAD_CREATE_RESPONSE",
    "vad_interrupt_response": "VOICEAGENT_VAD_INTERRUPT_RESPONSE",
    "transcription_model": "VOICEAGENT_TRANSCRIPTION_MODEL",
    "transcription_language": "VOICEAGENT_TRANSCRIPTION_LANGUAGE",
    "noise_reduction": "VOICEAGENT_NOISE_REDUCTION",
    "model_connect_timeout_s": "VOICEAGENT_MODEL_CONNECT_TIMEOUT_S",
    "cartesia_api_key": "CARTESIA_API_KEY",
    "cartesia_websocket_url": "CARTESIA_WEBSOCKET_URL",
    "cartesia_api_version": "CARTESIA_API_VERSION",
    "cartesia_model_id": "CARTESIA_MODEL_ID",
    "cartesia_default_language": "CARTESIA_DEFAULT_LANGUAGE",
    "cartesia_voice_id": "CARTESIA_VOICE_ID",
    "cartesia_first_audio_timeout_s": "CARTESIA_FIRST_AUDIO_TIMEOUT_S",
    "tts_fallback_cooldown_s": "VOICEAGENT_TTS_FALLBACK_COOLDOWN_S",
    "ws_outgoing_max": "WS_OUTGOING_MAX",
    "ws_incoming_audio_max": "WS_INCOMING_AUDIO_MAX",
    "ws_tts_chunk_bytes": "WS_TTS_CHUNK_BYTES",
    "ws_max_audio_frame_bytes": "WS_MAX_AUDIO_FRAME_BYTES",
    "ws_max_text_chars": "WS_MAX_TEXT_CHARS",
    "ws_min_audio_frame_ms": "WS_MIN_AUDIO_FRAME_MS",
    "ws_max_audio_frame_ms": "WS_MAX_AUDIO_FRAME_MS",
    "ws_preferred_audio_frame_ms": "WS_PREFERRED_AUDIO_FRAME_MS",
    "ws_send_timeout_s": "WS_SEND_TIMEOUT_S",
    "ws_write_timeout_s": "WS_WRITE_TIMEOUT_S",
    "ws_max_errors": "WS_MAX_ERRORS",
    "ws_idle_timeout_s": "WS_IDLE_TIMEOUT_S",
    "ws_max_message_bytes": "WS_MAX_MESSAGE_BYTES",
    "ws_max_connections": "WS_MAX_CONNECTIONS",
    "model_idle_timeout_s": "VOICEAGENT_MODEL_IDLE_TIMEOUT_S",
    "model_first_event_timeout_s": "VOICEAGENT_MODEL_FIRST_EVENT_TIMEOUT_S",
    "model_stall_timeout_s": "VOICEAGENT_MODEL_STALL_TIMEOUT_S",
    "model_reconnect_backoff_s": "VOICEAGENT_MODEL_RECONNECT_BACKOFF_S",
    "model_reconnect_max_s": "VOICEAGENT_MODEL_RECONNECT_MAX_S",
    "audio_batch_ms": "VOICEAGENT_AUDIO_BATCH_MS",
    "tool_threads": "VOICEAGENT_TOOL_THREADS",
    "teardown_timeout_s": "VOICEAGENT_TEARDOWN_TIMEOUT_S",
    "drain_grace_s": "VOICEAGENT_DRAIN_GRACE_S",
    "gc_freeze_interval_s": "VOICEAGENT_GC_FREEZE_INTERVAL_S",
    "gc_sweep_interval_s": "VOICEAGENT_GC_SWEEP_INTERVAL_S",
    "gc_sweep_max_rooms": "VOICEAGENT_GC_SWEEP_MAX_ROOMS",
    "gc_young_threshold": "VOICEAGENT_GC_YOUNG_THRESHOLD",
    "resume_false_interruption": "VOICEAGENT_RESUME_FALSE_INTERRUPTION",
    "min_interruption_ms": "VOICEAGENT_MIN_INTERRUPTION_MS",
    "min_interruption_words": "VOICEAGENT_MIN_INTERRUPTION_WORDS",
    "false_interruption_timeout_ms": "VOICEAGENT_FALSE_INTERRUPTION_TIMEOUT_MS",
    "user_away_timeout_s": "VOICEAGENT_USER_AWAY_TIMEOUT_S",
    "price_text_in": "VOICEAGENT_PRICE_TEXT_IN",
    "price_text_out": "VOICEAGENT_PRICE_TEXT_OUT",
    "price_audio_in": "VOICEAGENT_PRICE_AUDIO_IN",
    "price_audio_out": "VOICEAGENT_PRICE_AUDIO_OUT",
    "price_cached_in": "VOICEAGENT_PRICE_CACHED_IN",
    "log_level": "VOICEAGENT_LOG_LEVEL",
    "log_format": "VOICEAGENT_LOG_FORMAT",
    "auth_secret": "VOICEAGENT_AUTH_SECRET",
    "auth_public_key": "VOICEAGENT_AUTH_PUBLIC_KEY",
    "allowed_origins": "VOICEAGENT_ALLOWED_ORIGINS",
    "trusted_proxies": "VOICEAGENT_TRUSTED_PROXIES",
    "max_sessions_per_ip": "VOICEAGENT_MAX_SESSIONS_PER_IP",
    "max_sessions_per_user": "VOICEAGENT_MAX_SESSIONS_PER_USER",
    "max_audio_rate": "VOICEAGENT_MAX_AUDIO_RATE",
    "max_messages_per_s": "VOICEAGENT_MAX_MESSAGES_PER_S",
    "max_session_s": "VOICEAGENT_MAX_SESSION_S",
    "max_session_tokens": "VOICEAGENT_MAX_SESSION_TOKENS",
    "max_session_cost_usd": "VOICEAGENT_MAX_SESSION_COST_USD",
    "admin_token": "VOICEAGENT_ADMIN_TOKEN",
    "demo_tokens": "VOICEAGENT_DEMO_TOKENS",
    "store": "VOICEAGENT_STORE",
    "data_dir": "VOICEAGENT_DATA_DIR",
    "database_url": "VOICEAGENT_DATABASE_URL",
    "store_flush_ms": "VOICEAGENT_STORE_FLUSH_MS",
    "store_queue": "VOICEAGENT_STORE_QUEUE",
    "resume_window_s": "VOICEAGENT_RESUME_WINDOW_S",
    "audit_file": "VOICEAGENT_AUDIT_FILE",
    "audit_stream": "VOICEAGENT_AUDIT_STREAM",
    "audit_stream_maxlen": "VOICEAGENT_AUDIT_STREAM_MAXLEN",
    "record": "VOICEAGENT_RECORD",
    "max_rooms": "VOICEAGENT_MAX_ROOMS",
    "redis_url": "VOICEAGENT_REDIS_URL",
    "redis_prefix": "VOICEAGENT_REDIS_PREFIX",
    "redis_failure": "VOICEAGENT_REDIS_FAILURE",
    "redis_timeout_s": "VOICEAGENT_REDIS_TIMEOUT_S",
    "presence_ttl_s": "VOICEAGENT_PRESENCE_TTL_S",
}


def env_name(field_name: str) -> str:
    """The environment variable behind a `Settings` field."""
    return _ENV_NAMES[field_name]


def _choice(*allowed: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        value = value.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return check


_N = TypeVar("_N", int, float)


def _in_range(parse: Callable[[str], _N], low: _N, high: _N) -> Callable[[str], _N]:
    def check(value: str) -> _N:
        number = parse(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return check


def _int_range(low: int, high: int) -> Callable[[str], int]:
    return _in_range(int, low, high)


def _float_range(low: float, high: float) -> Callable[[str], float]:
    return _in_range(float, low, high)


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _ws_url(value: str) -> str:
    value = value.strip()
    if value and not value.startswith(("ws://", "wss://")):
        raise ValueError("must start with ws:// or wss://")
    return value


def _redis_url(value: str) -> str:
    value = value.strip()
    if value and not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError("must start with redis://, rediss:// or unix://")
    return value


def _redis_prefix(value: str) -> str:
    value = value.strip()
    if not value or any(char.isspace() for char in value):
        raise ValueError("must be a non-empty name without spaces")
    return value


def _log_level(value: str) -> str:
    value = value.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return value


def _dotted(value: str) -> str:
    value = value.strip()
    if not value or any(not part.isidentifier() for part in value.replace(":", ".").split(".")):
        raise ValueError("must be a dotted path like 'voiceagent.demo.airline:triage_agent'")
    return value


def _database_url(value: str) -> str:
    value = value.strip()
    if value and not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL (leave it empty for SQLite)")
    return value


_PARSERS: dict[str, Callable[[str], Any]] = {
    "model": _choice(*MODEL_CHOICES),
    "tts": _choice(*TTS_CHOICES),
    "agent": _dotted,
    "tts_fallback": _bool,
    "azure_realtime_url": _ws_url,
    "openai_realtime_url": _ws_url,
    "cartesia_websocket_url": _ws_url,
    "turn_detection": _choice(*TURN_DETECTION_CHOICES),
    "vad_threshold": _float_range(0.01, 0.99),
    "vad_eagerness": _choice("auto", "low", "medium", "high"),
    "turn_words": _bool,
    "vad_create_response": _bool,
    "vad_interrupt_response": _bool,
    "noise_reduction": _choice("", "near_field", "far_field"),
    "cartesia_first_audio_timeout_s": _float_range(0.1, 120.0),
    "tts_fallback_cooldown_s": _float_range(0.0, 3600.0),
    "vad_prefix_padding_ms": _int_range(0, 5000),
    "vad_silence_duration_ms": _int_range(50, 10000),
    "model_connect_timeout_s": _float_range(0.1, 120.0),
    "ws_outgoing_max": _int_range(8, 1_000_000),
    "ws_incoming_audio_max": _int_range(2, 100_000),
    "ws_tts_chunk_bytes": _int_range(480, 1 << 20),
    "ws_max_audio_frame_bytes": _int_range(2, 15 << 20),
    "ws_max_text_chars": _int_range(1, 1_000_000),
    "ws_min_audio_frame_ms": _int_range(1, 10_000),
    "ws_max_audio_frame_ms": _int_range(1, 10_000),
    "ws_preferred_audio_frame_ms": _int_range(1, 10_000),
    "ws_send_timeout_s": _float_range(0.05, 600.0),
    "ws_write_timeout_s": _float_range(0.1, 600.0),
    "ws_max_errors": _int_range(1, 100_000),
    "ws_idle_timeout_s": _float_range(0.0, 86_400.0),
    "ws_max_message_bytes": _int_range(0, 1 << 30),
    "ws_max_connections": _int_range(0, 10_000_000),
    "model_idle_timeout_s": _float_range(1.0, 86_400.0),
    "model_first_event_timeout_s": _float_range(0.1, 600.0),
    "model_stall_timeout_s": _float_range(0.1, 600.0),
    "model_reconnect_backoff_s": _float_range(0.0, 60.0),
    "model_reconnect_max_s": _float_range(0.0, 3600.0),
    "audio_batch_ms": _int_range(20, 1000),
    "tool_threads": _int_range(1, 1024),
    "teardown_timeout_s": _float_range(0.1, 60.0),
    "drain_grace_s": _float_range(0.0, 3600.0),
    "gc_freeze_interval_s": _float_range(0.0, 3600.0),
    "gc_sweep_interval_s": _float_range(1.0, 604_800.0),
    "gc_sweep_max_rooms": _int_range(0, 10_000_000),
    "gc_young_threshold": _int_range(0, 10_000_000),
    "resume_false_interruption": _bool,
    "min_interruption_ms": _int_range(0, 10_000),
    "min_interruption_words": _int_range(0, 100),
    "false_interruption_timeout_ms": _int_range(100, 60_000),
    "user_away_timeout_s": _float_range(0.0, 86_400.0),
    "price_text_in": _float_range(0.0, 1e6),
    "price_text_out": _float_range(0.0, 1e6),
    "price_audio_in": _float_range(0.0, 1e6),
    "price_audio_out": _float_range(0.0, 1e6),
    "price_cached_in": _float_range(0.0, 1e6),
    "log_level": _log_level,
    "log_format": _choice(*LOG_FORMATS),
    "max_sessions_per_ip": _int_range(0, 1_000_000),
    "max_sessions_per_user": _int_range(0, 1_000_000),
    "max_audio_rate": _float_range(0.0, 1000.0),
    "max_messages_per_s": _float_range(0.0, 100_000.0),
    "max_session_s": _float_range(0.0, 30 * 86_400.0),
    "max_session_tokens": _int_range(0, 10**12),
    "max_session_cost_usd": _float_range(0.0, 1e6),
    "demo_tokens": _bool,
    "store": _bool,
    "record": _bool,
    "database_url": _database_url,
    "store_flush_ms": _int_range(1, 60_000),
    "store_queue": _int_range(10, 10_000_000),
    "resume_window_s": _float_range(0.0, 30 * 86_400.0),
    "audit_stream_maxlen": _int_range(1, 10**10),
    "max_rooms": _int_range(0, 10_000_000),
    "redis_url": _redis_url,
    "redis_prefix": _redis_prefix,
    "redis_failure": _choice("open", "closed"),
    "redis_timeout_s": _float_range(0.01, 60.0),
    "presence_ttl_s": _float_range(1.0, 3600.0),
}


def parse(environ: Mapping[str, str]) -> Settings:
    values: dict[str, Any] = {}
    for field in fields(Settings):
        name = _ENV_NAMES[field.name]
        raw = environ.get(name)
        if raw is None or raw.strip() == "":
            continue
        parser = _PARSERS.get(field.name, str.strip)
        try:
            values[field.name] = parser(raw)
        except ValueError as exc:
            # A URL may carry a key (Cartesia's `?api_key=`, a password): never echo it.
            shown = redact_url(raw) if parser in (_ws_url, _database_url, _redis_url) else raw
            raise ConfigError(f"{name}={shown!r}: {exc}") from None
    # The language follows the Cartesia default unless set on its own.
    if "language" not in values and "cartesia_default_language" in values:
        values["language"] = values["cartesia_default_language"]
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _check_consistency(settings: Settings) -> None:
    if settings.model == "azure" and not (settings.azure_api_key and settings.azure_realtime_url):
        raise ConfigError(
            "VOICEAGENT_MODEL=azure needs AZURE_OPENAI_API_KEY and AZURE_OPENAI_REALTIME_URL"
        )
    if settings.model == "openai" and not settings.openai_api_key:
        raise ConfigError("VOICEAGENT_MODEL=openai needs OPENAI_API_KEY")
    if settings.tts == "cartesia" and not settings.cartesia_api_key:
        raise ConfigError("VOICEAGENT_TTS=cartesia needs CARTESIA_API_KEY")
    if settings.ws_max_message_bytes:
        from voiceagent.protocol import Limits

        needed = Limits(settings.ws_max_audio_frame_bytes, settings.ws_max_text_chars)
        if settings.ws_max_message_bytes < needed.max_message_size:
            raise ConfigError(
                f"WS_MAX_MESSAGE_BYTES={settings.ws_max_message_bytes} is below the largest"
                f" message the protocol allows ({needed.max_message_size}, from"
                " WS_MAX_AUDIO_FRAME_BYTES and WS_MAX_TEXT_CHARS); leave it empty for that"
            )
    if settings.auth_secret and settings.auth_public_key:
        raise ConfigError("set VOICEAGENT_AUTH_SECRET or VOICEAGENT_AUTH_PUBLIC_KEY, not both")
    if settings.auth_secret and len(settings.auth_secret) < 32:
        raise ConfigError("VOICEAGENT_AUTH_SECRET must be at least 32 characters (HS256)")
    if settings.demo_tokens and not settings.auth_secret:
        raise ConfigError("VOICEAGENT_DEMO_TOKENS=1 needs VOICEAGENT_AUTH_SECRET to sign with")
    _check_access(settings)
    if settings.redis_url and importlib.util.find_spec("coredis") is None:
        raise ConfigError(
            "VOICEAGENT_REDIS_URL needs the redis extra: pip install 'voiceagent[redis]'"
        )
    if settings.audit_stream and not settings.redis_url:
        raise ConfigError("VOICEAGENT_AUDIT_STREAM needs VOICEAGENT_REDIS_URL (the Redis to use)")
    _check_frame_durations(settings)
    if settings.ws_tts_chunk_bytes % 2:
        raise ConfigError("WS_TTS_CHUNK_BYTES must be even (whole 16-bit samples)")


def _check_frame_durations(settings: Settings) -> None:
    """The announced frame durations must be ordered, and the longest must fit the
    enforced byte limit (else a client keeping to the announcement gets refused)."""
    low, high = settings.ws_min_audio_frame_ms, settings.ws_max_audio_frame_ms
    preferred = settings.ws_preferred_audio_frame_ms
    if not low <= preferred <= high:
        raise ConfigError(
            f"WS_PREFERRED_AUDIO_FRAME_MS={preferred} must lie within WS_MIN_AUDIO_FRAME_MS"
            f"={low} and WS_MAX_AUDIO_FRAME_MS={high}"
        )
    if ms_bytes(high) > settings.ws_max_audio_frame_bytes:
        raise ConfigError(
            f"WS_MAX_AUDIO_FRAME_MS={high} ({ms_bytes(high)} bytes) does not fit"
            f" WS_MAX_AUDIO_FRAME_BYTES={settings.ws_max_audio_frame_bytes}"
        )


def _check_access(settings: Settings) -> None:
    """A bad key, origin pattern or proxy network fails at start-up, naming its variable."""
    if not (settings.auth_public_key or settings.allowed_origins or settings.trusted_proxies):
        return
    from voiceagent.access.gate import read_public_key, split_list
    from voiceagent.access.origins import OriginPolicy, parse_networks
    from voiceagent.access.tokens import TokenVerifier

    checks: list[tuple[str, Callable[[str], object]]] = [
        ("auth_public_key", lambda v: TokenVerifier(public_key=read_public_key(v))),
        ("allowed_origins", lambda v: OriginPolicy(split_list(v))),
        ("trusted_proxies", lambda v: parse_networks(split_list(v))),
    ]
    for field_name, check in checks:
        value = getattr(settings, field_name)
        if value:
            try:
                check(value)
            except ValueError as exc:
                raise ConfigError(f"{_ENV_NAMES[field_name]}: {exc}") from None
