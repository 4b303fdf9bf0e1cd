"""Cartesia streaming TTS: `CartesiaTTS(CartesiaConfig(...))`.

The client is imported on first use, so reading a default (`protocol.DEFAULT_MODEL_ID`,
which `voiceagent.config` needs) does not load the client and its WebSocket stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_URL", "CartesiaConfig", "CartesiaConnection", "CartesiaTTS"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from voiceagent.tts.cartesia import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
