"""Emulator state, free of I/O: effective session config, conversation, energy VAD.

- `SessionState` keeps the effective session in one canonical form and renders it in
  the GA or the beta shape for ``session.created`` / ``session.updated``.
- `Conversation` is the ordered item list (bounded: the oldest items are dropped).
- `EnergyVad` turns appended PCM16 24 kHz audio into speech start/stop decisions with
  the session's ``prefix_padding_ms`` / ``silence_duration_ms``. It is an RMS gate,
  not a neural VAD: good enough to exercise the protocol, documented as such.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voiceagent.conversation import AgentSetup, ConversationItem, ToolSpec
from voiceagent.handoffs import HANDOFF_PREFIX

PCM_BYTES_PER_MS = 48
FRAME_MS = 10
FRAME_BYTES = FRAME_MS * PCM_BYTES_PER_MS
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
    return {"type": kind, "rate": 24000} if kind == "audio/pcm" else {"type": kind}


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


@dataclass(slots=True)
class ConvItem:
    """One conversation item, stored in the GA shape without audio bytes."""

    id: str
    type: str
    role: str | None = None
    status: str = "completed"
    content: list[dict[str, Any]] = field(default_factory=list)
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None
    output: str | None = None
    audio_ms: int = 0  # audio length (user input; assistant output, for truncate checks)

    @classmethod
    def from_wire(cls, item: dict[str, Any], item_id: str) -> ConvItem:
        """From a validated client item (GA or beta shape); beta parts become GA parts."""
        content = []
        for part in item.get("content") or ():
            kind = {"text": "output_text", "audio": "output_audio"}.get(part["type"], part["type"])
            entry = {k: v for k, v in part.items() if k != "audio"}
            entry["type"] = kind
            content.append(entry)
        return cls(
            id=item_id,
            type=item["type"],
            role=item.get("role"),
            content=content,
            name=item.get("name"),
            call_id=item.get("call_id"),
            arguments=item.get("arguments"),
            output=item.get("output"),
        )

    def text(self) -> str:
        parts = []
        for part in self.content:
            value = part.get("text") if "text" in part else part.get("transcript")
            if value:
                parts.append(value)
        return " ".join(parts)

    def wire(self, flavor: str) -> dict[str, Any]:
        base: dict[str, Any] = {"id": self.id, "object": "realtime.item", "type": self.type}
        if self.type == "message":
            content = self.content
            if flavor == "beta":
                rename = {"output_text": "text", "output_audio": "audio"}
                content = [{**p, "type": rename.get(p["type"], p["type"])} for p in content]
            base.update(status=self.status, role=self.role, content=[dict(p) for p in content])
        elif self.type == "function_call":
            base.update(
                status=self.status, name=self.name, call_id=self.call_id, arguments=self.arguments
            )
        else:
            base.update(call_id=self.call_id, output=self.output)
            if flavor == "ga":
                base["status"] = self.status
        return base

    def for_brain(self) -> ConversationItem:
        role = self.role or ("tool" if self.type == "function_call_output" else "assistant")
        return ConversationItem(
            id=self.id,
            role=role,  # type: ignore[arg-type]
            type=self.type,  # type: ignore[arg-type]
            text=self.text(),
            name=self.name,
            call_id=self.call_id,
            arguments=self.arguments,
            output=self.output,
        )


class Conversation:
    """Ordered items with O(1) lookup, bounded like a context window.

    At most `max_items` items and about `max_chars` characters of text are kept; the
    oldest items are dropped first (checked on insert, once per turn, not per frame).
    """

    def __init__(self, max_items: int = 512, max_chars: int = 1_000_000) -> None:
        self._items: OrderedDict[str, ConvItem] = OrderedDict()
        self.max_items = max_items
        self.max_chars = max_chars

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> ConvItem | None:
        return self._items.get(item_id)

    @property
    def last_id(self) -> str | None:
        return next(reversed(self._items), None) if self._items else None

    def insert(
        self, item: ConvItem, previous_item_id: str | None = None, *, at_end: bool = True
    ) -> str | None:
        """Insert after `previous_item_id` (or at the end); return the actual previous id."""
        if at_end or previous_item_id is None:
            prev = self.last_id
            self._items[item.id] = item
        else:
            prev = previous_item_id
            items = list(self._items.items())
            index = next(i for i, (k, _) in enumerate(items) if k == previous_item_id)
            items.insert(index + 1, (item.id, item))
            self._items = OrderedDict(items)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        while len(self._items) > 1 and self._chars() > self.max_chars:
            self._items.popitem(last=False)
        return prev

    def _chars(self) -> int:
        return sum(
            len(i.text()) + len(i.arguments or "") + len(i.output or "")
            for i in self._items.values()
        )

    def delete(self, item_id: str) -> bool:
        return self._items.pop(item_id, None) is not None

    def previous_of(self, item_id: str) -> str | None:
        """The id of the item before `item_id` (None when first or unknown)."""
        previous = None
        for key in self._items:
            if key == item_id:
                return previous
            previous = key
        return None

    def user_audio_ms(self) -> int:
        return sum(i.audio_ms for i in self._items.values() if i.role == "user")

    def last_transfer_target(self) -> str | None:
        """The agent named by the latest ``transfer_to_<agent>`` call, if any."""
        for item in reversed(self._items.values()):
            if item.type == "function_call" and (item.name or "").startswith(HANDOFF_PREFIX):
                return (item.name or "")[len(HANDOFF_PREFIX) :].replace("_", " ")
        return None

    def history(self) -> list[ConversationItem]:
        return [item.for_brain() for item in self._items.values()]


class EnergyVad:
    """RMS speech gate over 10 ms frames; see the module docstring.

    `feed(pcm)` returns ``[("start", ms), ("stop", ms)]``-style decisions in input
    time (ms since the first appended byte). Speech starts after 30 ms of voiced
    frames and stops after `silence_ms` of unvoiced ones.
    """

    START_FRAMES = 3

    def __init__(self, threshold: float = 0.5, silence_ms: int = 500) -> None:
        self.configure(threshold, silence_ms)
        self.in_speech = False
        self.total_ms = 0
        self._voiced_run = 0
        self._silent_run_ms = 0
        self._rest = b""

    def configure(self, threshold: float, silence_ms: int) -> None:
        # threshold 0..1 spans -60..-10 dBFS; 0.5 is -35 dBFS (quiet room speech passes).
        dbfs = -60.0 + 50.0 * min(max(threshold, 0.0), 1.0)
        self.rms_gate = 32768.0 * 10 ** (dbfs / 20.0)
        self.silence_ms = silence_ms

    def feed(self, pcm: bytes) -> list[tuple[str, int]]:
        data = self._rest + pcm
        usable = len(data) - len(data) % FRAME_BYTES
        self._rest = data[usable:]
        if not usable:
            return []
        frames = (
            np.frombuffer(data[:usable], dtype="<i2")
            .astype(np.float32)
            .reshape(-1, FRAME_BYTES // 2)
        )
        voiced = np.sqrt(np.mean(frames * frames, axis=1)) >= self.rms_gate
        decisions: list[tuple[str, int]] = []
        for is_voiced in voiced.tolist():
            self.total_ms += FRAME_MS
            if is_voiced:
                self._voiced_run += 1
                self._silent_run_ms = 0
                if not self.in_speech and self._voiced_run >= self.START_FRAMES:
                    self.in_speech = True
                    decisions.append(("start", self.total_ms - self.START_FRAMES * FRAME_MS))
            else:
                self._voiced_run = 0
                if self.in_speech:
                    self._silent_run_ms += FRAME_MS
                    if self._silent_run_ms >= self.silence_ms:
                        self.in_speech = False
                        self._silent_run_ms = 0
                        decisions.append(("stop", self.total_ms))
        return decisions
