"""voiceagent: a realtime voice-agent server toolkit on Trio.

Serve the demo with `hypercorn -k trio voiceagent:app`. Importing the package is cheap:
`app` builds the real Quart-Trio app (settings from the environment and `.env`,
providers, agent graph) when the server first calls it, and the public names below are
imported on first use.
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


class _LazyApp:
    """The ASGI app for `hypercorn -k trio voiceagent:app`, built on its first call.

    Hypercorn looks `app` up as a plain module attribute, so it must exist at import;
    building it lazily keeps `import voiceagent` free of settings, providers and
    Quart. A bad setting then fails the server's startup with the variable's name.
    """

    def __init__(self) -> None:
        self._app: Any = None

    @property
    def app(self) -> Any:
        """The app once built (ASGI wrappers expose what they wrap as `.app`: this is
        how voiceagent.transport finds the app's transport rules)."""
        return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from voiceagent.app import app_from_env

            self._app = app_from_env()
        await self._app(scope, receive, send)


app = _LazyApp()


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'voiceagent' has no attribute {name!r}")
    return getattr(import_module(module), name)
