"""Realtime endpoint configuration: which target a URL names and how to authenticate.

The wire shape is chosen from the URL alone, once, at startup:

- Azure GA       ``wss://RES.openai.azure.com/openai/v1/realtime?model=DEPLOYMENT``
- Azure preview  ``wss://RES.openai.azure.com/openai/realtime?api-version=...&deployment=...``
  (beta event shapes)
- OpenAI GA      ``wss://api.openai.com/v1/realtime?model=MODEL``

Azure authenticates with an ``api-key`` header, OpenAI with ``Authorization: Bearer``.
Error messages show a URL only through `redact_url()` (no userinfo, no query values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from voiceagent.redact import redact_url

Flavor = Literal["ga", "beta"]
AuthStyle = Literal["api-key", "bearer"]
TurnDetectionType = Literal["server_vad", "semantic_vad", "none"]
Eagerness = Literal["low", "medium", "high", "auto"]

OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"


class RealtimeConfigError(ValueError):
    """The configured endpoint or options cannot work (raised once, at startup)."""


@dataclass(frozen=True, slots=True)
class RealtimeConfig:
    """Everything the Realtime client needs; validated by `validate()`.

    `url` is the full WebSocket URL (scheme ws/wss; http/https are converted).
    `auth` None means: ``api-key`` for ``*.azure.com`` and for ``/openai/`` paths,
    Bearer otherwise. `model` fills in ``?model=`` (GA) or ``&deployment=`` (preview)
    when the URL lacks it.
    """

    url: str = OPENAI_REALTIME_URL
    api_key: str = ""
    auth: AuthStyle | None = None
    # Speak the beta event shapes on an OpenAI URL (adds `OpenAI-Beta: realtime=v1`).
    # Azure preview URLs (`/openai/realtime?api-version=`) are beta whatever this says.
    beta: bool = False
    model: str = ""
    voice: str = "alloy"
    turn_detection: TurnDetectionType = "server_vad"
    vad_threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    # server_vad only, GA only: respond by itself after this much silence following the
    # end of the assistant's audio (re-prompts a quiet caller). None = never.
    idle_timeout_ms: int | None = None
    eagerness: Eagerness = "auto"
    create_response: bool = True
    interrupt_response: bool = True
    # The session decides turns (voiceagent/interruption.py): the server VAD neither
    # answers nor cancels by itself (both flags go out false); a turn its VAD ends is
    # answered with `response.create`, or deleted, when the session says so.
    hold_turns: bool = False
    transcription_model: str | None = "whisper-1"
    transcription_language: str | None = None
    noise_reduction: Literal["near_field", "far_field"] | None = None
    max_output_tokens: int | None = None
    connect_timeout: float = 10.0
    close_timeout: float = 2.0
    max_message_bytes: int = 16 * 1024 * 1024
    # Extra handshake headers (e.g. a gateway's routing header); never logged.
    extra_headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def validate(self) -> RealtimeConfig:
        """Raise `RealtimeConfigError` when the endpoint cannot be used; return self."""
        endpoint(self)
        if not 0.0 <= self.vad_threshold <= 1.0:
            raise RealtimeConfigError("vad_threshold must be within [0, 1]")
        if self.prefix_padding_ms < 0 or self.silence_duration_ms < 0:
            raise RealtimeConfigError("VAD durations must be >= 0 ms")
        if self.connect_timeout <= 0 or self.close_timeout <= 0:
            raise RealtimeConfigError("timeouts must be > 0 s")
        return self


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A resolved target: the URL to dial, the event flavour and the handshake headers."""

    url: str
    flavor: Flavor
    provider: Literal["azure", "openai"]
    headers: tuple[tuple[str, str], ...]
    model: str


def endpoint(config: RealtimeConfig) -> Endpoint:
    """Resolve `config` into an `Endpoint`; raise `RealtimeConfigError` when unusable."""
    parts = urlsplit(config.url)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.hostname:
        raise RealtimeConfigError(
            f"realtime URL must be ws(s)://host/...: {redact_url(config.url)!r}"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    path = parts.path.rstrip("/")
    azure = (parts.hostname or "").endswith(".azure.com") or path.startswith("/openai")
    if path.endswith("/openai/realtime"):
        flavor: Flavor = "beta"
        if "api-version" not in query:
            raise RealtimeConfigError("Azure preview URL needs ?api-version=...")
        model = query.get("deployment") or config.model
        if not model:
            raise RealtimeConfigError("Azure preview URL needs &deployment=... (or model)")
        query["deployment"] = model
    elif path.endswith("/realtime"):
        flavor = "beta" if config.beta else "ga"
        if "api-version" in query:
            # The GA service answers 401 to a GA URL that still carries api-version.
            raise RealtimeConfigError("GA realtime URL must not carry api-version")
        model = query.get("model") or config.model
        if not model:
            raise RealtimeConfigError("realtime URL needs ?model=... (or set model)")
        query["model"] = model
    else:
        raise RealtimeConfigError(f"not a realtime endpoint path: {parts.path!r}")
    auth = config.auth or ("api-key" if azure else "bearer")
    headers: list[tuple[str, str]] = []
    if config.api_key:
        if auth == "api-key":
            headers.append(("api-key", config.api_key))
        else:
            headers.append(("Authorization", f"Bearer {config.api_key}"))
    if flavor == "beta" and not azure:
        headers.append(("OpenAI-Beta", "realtime=v1"))
    headers.extend(config.extra_headers)
    url = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))
    return Endpoint(
        url=url,
        flavor=flavor,
        provider="azure" if azure else "openai",
        headers=tuple(headers),
        model=model,
    )
