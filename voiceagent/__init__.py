"""voiceagent: a realtime voice-agent server toolkit on Trio.

Serve the demo with `hypercorn -k trio voiceagent:app`. Importing the package is cheap:
`app` (built from the environment and `.env`) and the public names below are loaded
on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "create_app": "voiceagent.app",
    "Settings": "voiceagent.config",
    "ConfigError": "voiceagent.config",
    "Agent": "voiceagent.graph",
    "function_tool": "voiceagent.graph",
    "handoff": "voiceagent.graph",
    "output_guardrail": "voiceagent.graph",
    "ToolContext": "voiceagent.graph",
    "RealtimeModel": "voiceagent.models.base",
    "ModelConnection": "voiceagent.models.base",
    "AgentSetup": "voiceagent.models.base",
    "TTS": "voiceagent.tts.base",
    "TTSConnection": "voiceagent.tts.base",
}

__all__ = ["app", *_EXPORTS]

_app: Any = None


def __getattr__(name: str) -> Any:
    global _app
    if name == "app":
        if _app is None:
            from voiceagent.app import _app_from_env

            _app = _app_from_env()
        return _app
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voiceagent' has no attribute {name!r}")
    return getattr(import_module(module), name)
