"""Cartesia streaming TTS: `CartesiaTTS(CartesiaConfig(...))`."""

from voiceagent.tts.cartesia.client import (
    DEFAULT_URL,
    CartesiaConfig,
    CartesiaConnection,
    CartesiaTTS,
)

__all__ = ["DEFAULT_URL", "CartesiaConfig", "CartesiaConnection", "CartesiaTTS"]
