"""The session configuration a Realtime client sends: ``session.update`` (sans-I/O).

Rules of this module:

- Pure functions of the configuration, the agent and the flavour; they return the event
  as a dict (the caller adds its ``event_id`` and encodes it). No sockets, no clocks.
- Each flavour gets only the fields its server accepts: ``"ga"`` (GA shapes) nests audio
  options under ``audio.input`` / ``audio.output``; ``"beta"`` (Azure preview / OpenAI
  beta) keeps them flat and asks for text alongside audio (docs/architecture.md,
  "Provider protocols").
- Nothing here raises on a validated configuration: `RealtimeConfig.validate()` has
  refused unusable values at startup.
"""

from __future__ import annotations

from typing import Any

from voiceagent.conversation import AgentSetup
from voiceagent.models.base import OutputMode
from voiceagent.models.realtime.config import Flavor, RealtimeConfig
from voiceagent.pcm import SAMPLE_RATE


def tool_choice_value(choice: str) -> str | dict[str, str]:
    """`AgentSetup.tool_choice` as the wire wants it (a mode, or one named function)."""
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "name": choice}


def turn_detection(config: RealtimeConfig, flavor: Flavor) -> dict[str, Any] | None:
    """The turn-detection object for `config`, or None for manual turns."""
    if config.turn_detection == "none":
        return None
    td: dict[str, Any] = {"type": config.turn_detection}
    if config.turn_detection == "server_vad":
        td["threshold"] = config.vad_threshold
        td["prefix_padding_ms"] = config.prefix_padding_ms
        td["silence_duration_ms"] = config.silence_duration_ms
        if config.idle_timeout_ms is not None and flavor == "ga":
            td["idle_timeout_ms"] = config.idle_timeout_ms
    else:
        td["eagerness"] = config.eagerness
    td["create_response"] = config.create_response and not config.hold_turns
    td["interrupt_response"] = config.interrupt_response and not config.hold_turns
    return td


def _transcription(config: RealtimeConfig) -> dict[str, Any] | None:
    if not config.transcription_model:
        return None
    t: dict[str, Any] = {"model": config.transcription_model}
    if config.transcription_language:
        t["language"] = config.transcription_language
    return t


def _agent_fields(setup: AgentSetup) -> dict[str, Any]:
    return {
        "instructions": setup.instructions,
        "tools": [tool.as_function() for tool in setup.tools],
        "tool_choice": tool_choice_value(setup.tool_choice),
    }


def session_update(
    config: RealtimeConfig, setup: AgentSetup, output: OutputMode, flavor: Flavor
) -> dict[str, Any]:
    """The full ``session.update`` sent right after connecting."""
    session: dict[str, Any]
    if flavor == "ga":
        audio_in: dict[str, Any] = {
            "format": {"type": "audio/pcm", "rate": SAMPLE_RATE},
            "transcription": _transcription(config),
            "turn_detection": turn_detection(config, flavor),
        }
        if config.noise_reduction:
            audio_in["noise_reduction"] = {"type": config.noise_reduction}
        audio_out = {"format": {"type": "audio/pcm", "rate": SAMPLE_RATE}, "voice": config.voice}
        session = {
            "type": "realtime",
            "output_modalities": [output],
            "audio": {"input": audio_in, "output": audio_out},
            **_agent_fields(setup),
        }
        if config.max_output_tokens is not None:
            session["max_output_tokens"] = config.max_output_tokens
    else:
        session = {
            # Beta servers require text alongside audio.
            "modalities": ["text"] if output == "text" else ["audio", "text"],
            "voice": config.voice,
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "input_audio_transcription": _transcription(config),
            "turn_detection": turn_detection(config, flavor),
            **_agent_fields(setup),
        }
        if config.noise_reduction:
            session["input_audio_noise_reduction"] = {"type": config.noise_reduction}
        if config.max_output_tokens is not None:
            session["max_response_output_tokens"] = config.max_output_tokens
    return {"type": "session.update", "session": session}


def agent_update(setup: AgentSetup, flavor: Flavor) -> dict[str, Any]:
    """The partial ``session.update`` of a handoff: instructions, tools, tool_choice."""
    session = _agent_fields(setup)
    if flavor == "ga":
        session = {"type": "realtime", **session}
    return {"type": "session.update", "session": session}
