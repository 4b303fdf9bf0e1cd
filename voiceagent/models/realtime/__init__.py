"""Azure OpenAI / OpenAI Realtime speech model (GA and preview/beta endpoints)."""

from voiceagent.models.realtime.client import RealtimeAPIModel, RealtimeConnection
from voiceagent.models.realtime.config import (
    Endpoint,
    RealtimeConfig,
    RealtimeConfigError,
    endpoint,
)
from voiceagent.models.realtime.protocol import ProtocolError, RealtimeProtocol

__all__ = [
    "Endpoint",
    "ProtocolError",
    "RealtimeAPIModel",
    "RealtimeConfig",
    "RealtimeConfigError",
    "RealtimeConnection",
    "RealtimeProtocol",
    "endpoint",
]
