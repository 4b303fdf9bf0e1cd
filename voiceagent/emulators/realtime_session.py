"""The effective session configuration of an emulated Realtime session (sans-I/O).

`SessionState` keeps the session in one canonical form, close to the GA shape, and
merges validated ``session.update`` payloads of either flavour into it (`apply_ga`,
`apply_beta`: only the fields present change; a ``turn_detection`` of the same type is
merged field by field, one of another type starts from that type's defaults). It renders
the session in the GA or the beta shape for ``session.created`` / ``session.updated``, and
as the `AgentSetup` a brain reads. Payloads are validated before they get here
(`realtime_schema`), so nothing in this module raises on client input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voiceagent.conversation import AgentSetup, ToolSpec
from voiceagent.pcm import SAMPLE_RATE

# semantic_vad has no silence setting; these stand in for its eagerness levels.
EAGERNESS_SILENCE_MS = {"low": 800, "medium": 500, "auto": 500, "high": 250}

_SERVER_VAD_DEFAULTS: dict[str, Any] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}
_SEMANTIC_VAD_DEFAULTS: dict[str, Any] = {
    "type": "semantic_vad",
    "eagerness": "auto",
    "create_response": True,
    "interrupt_response": True,
}
_BETA_FORMATS = {"pcm16": "audio/pcm", "g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}
_GA_FORMATS = {v: k for k, v in _BETA_FORMATS.items()}


def _format(kind: str) -> dict[str, Any]:
    return {"type": kind, "rate": SAMPLE_RATE} if kind == "audio/pcm" else {"type": kind}


def _turn_detection(
    raw: dict[str, Any] | None, previous: dict[str, Any] | None
) -> dict[str, Any] | None:
    if raw is None:
        return None
    kind = raw.get("type") or (previous or {}).get("type") or "server_vad"
    defaults = _SERVER_VAD_DEFAULTS if kind == "server_vad" else _SEMANTIC_VAD_DEFAULTS
    base = dict(previous) if previous and previous.get("type") == kind else dict(defaults)
    for key, value in raw.items():
        if key in defaults and value is not None:
            base[key] = value
    base["type"] = kind
    return base


@dataclass(slots=True)
class SessionState:
    """The effective session configuration (canonical, close to the GA shape)."""

    id: str
    model: str
    beta_model: str = "gpt-4o-realtime-preview"
    instructions: str = ""
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    voice: Any = "alloy"
    speed: float = 1.0
    temperature: float = 0.8
    input_format: str = "audio/pcm"
    output_format: str = "audio/pcm"
    transcription: dict[str, Any] | None = None
    noise_reduction: dict[str, Any] | None = None
    turn_detection: dict[str, Any] | None = field(
        default_factory=lambda: dict(_SERVER_VAD_DEFAULTS)
    )
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    max_output_tokens: int | str = "inf"
    tracing: Any = None
    truncation: Any = "auto"
    expires_at: int = 0
    # The service knows no agent names; a handoff's `transfer_to_<name>` call gives one.
    agent_name: str = "assistant"

    def apply_ga(self, session: dict[str, Any]) -> None:
        """Merge a validated GA ``session.update`` payload (only present fields change)."""
        for key in (
            "instructions",
            "output_modalities",
            "tools",
            "tool_choice",
            "tracing",
            "truncation",
        ):
            if key in session:
                setattr(self, key, session[key])
        if "max_output_tokens" in session:
            self.max_output_tokens = session["max_output_tokens"] or "inf"
        audio = session.get("audio") or {}
        audio_in = audio.get("input") or {}
        audio_out = audio.get("output") or {}
        if "format" in audio_in:
            self.input_format = audio_in["format"]["type"]
        if "transcription" in audio_in:
            self.transcription = audio_in["transcription"]
        if "noise_reduction" in audio_in:
            self.noise_reduction = audio_in["noise_reduction"]
        if "turn_detection" in audio_in:
            self.turn_detection = _turn_detection(audio_in["turn_detection"], self.turn_detection)
        if "format" in audio_out:
            self.output_format = audio_out["format"]["type"]
        if audio_out.get("voice") is not None:
            self.voice = audio_out["voice"]
        if audio_out.get("speed") is not None:
            self.speed = audio_out["speed"]

    def apply_beta(self, session: dict[str, Any]) -> None:
        """Merge a validated beta ``session.update`` payload."""
        for key in ("instructions", "tools", "tool_choice", "tracing", "voice"):
            if key in session:
                setattr(self, key, session[key])
        if "modalities" in session:
            # Beta allows ["text", "audio"]: audio wins (the transcript comes with it).
            modalities = session["modalities"]
            self.output_modalities = ["audio"] if "audio" in modalities else ["text"]
        if session.get("speed") is not None:
            self.speed = session["speed"]
        if session.get("temperature") is not None:
            self.temperature = session["temperature"]
        if "input_audio_format" in session:
            self.input_format = _BETA_FORMATS[session["input_audio_format"]]
        if "output_audio_format" in session:
            self.output_format = _BETA_FORMATS[session["output_audio_format"]]
        if "input_audio_transcription" in session:
            self.transcription = session["input_audio_transcription"]
        if "input_audio_noise_reduction" in session:
            self.noise_reduction = session["input_audio_noise_reduction"]
        if "turn_detection" in session:
            self.turn_detection = _turn_detection(session["turn_detection"], self.turn_detection)
        if "max_response_output_tokens" in session:
            self.max_output_tokens = session["max_response_output_tokens"] or "inf"

    def render_ga(self) -> dict[str, Any]:
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": self.id,
            "model": self.model,
            "output_modalities": list(self.output_modalities),
            "instructions": self.instructions,
            "tools": list(self.tools),
            "tool_choice": self.tool_choice,
            "max_output_tokens": self.max_output_tokens,
            "tracing": self.tracing,
            "truncation": self.truncation,
            "prompt": None,
            "include": None,
            "expires_at": self.expires_at,
            "audio": {
                "input": {
                    "format": _format(self.input_format),
                    "transcription": self.transcription,
                    "noise_reduction": self.noise_reduction,
                    "turn_detection": self.turn_detection,
                },
                "output": {
                    "format": _format(self.output_format),
                    "voice": self.voice,
                    "speed": self.speed,
                },
            },
        }

    def render_beta(self) -> dict[str, Any]:
        td = self.turn_detection
        if td is not None:
            td = {k: v for k, v in td.items() if k != "idle_timeout_ms"}
        choice = self.tool_choice
        return {
            "id": self.id,
            "object": "realtime.session",
            "model": self.beta_model,
            "modalities": ["audio", "text"] if self.output_modalities == ["audio"] else ["text"],
            "instructions": self.instructions,
            "voice": self.voice,
            "speed": self.speed,
            "input_audio_format": _GA_FORMATS[self.input_format],
            "output_audio_format": _GA_FORMATS[self.output_format],
            "input_audio_transcription": self.transcription,
            "input_audio_noise_reduction": self.noise_reduction,
            "turn_detection": td,
            "tools": list(self.tools),
            "tool_choice": choice if isinstance(choice, str) else choice.get("name", "auto"),
            "temperature": self.temperature,
            "max_response_output_tokens": self.max_output_tokens,
        }

    def agent_setup(
        self, instructions: str | None = None, tools: list[Any] | None = None
    ) -> AgentSetup:
        """The session as an `AgentSetup`, which is what a brain reads."""
        specs = tuple(
            ToolSpec(
                name=t["name"],
                description=t.get("description") or "",
                parameters=t.get("parameters") or {"type": "object", "properties": {}},
            )
            for t in (self.tools if tools is None else tools)
            if isinstance(t, dict) and t.get("type") == "function"
        )
        choice = self.tool_choice
        return AgentSetup(
            agent_name=self.agent_name,
            instructions=self.instructions if instructions is None else instructions,
            tools=specs,
            tool_choice=choice if isinstance(choice, str) else choice.get("name", "auto"),
        )

    @property
    def silence_ms(self) -> int:
        td = self.turn_detection or {}
        if td.get("type") == "semantic_vad":
            return EAGERNESS_SILENCE_MS.get(td.get("eagerness") or "auto", 500)
        return int(td.get("silence_duration_ms") or 500)
