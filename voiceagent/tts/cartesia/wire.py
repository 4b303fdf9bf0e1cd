"""What both sides of the Cartesia TTS WebSocket share: defaults, value sets, errors.

Pure values (sans-I/O, like every module of `voiceagent.tts.cartesia.protocol`): cheap
to import, so `voiceagent.config` reads `DEFAULT_MODEL_ID` without loading a client.
Field names follow the official `cartesia` package's types.
"""

from __future__ import annotations

from typing import Any

import orjson

DEFAULT_MODEL_ID = "sonic-3"  # the one default; Settings and CartesiaConfig both use it

ENCODINGS = frozenset({"pcm_f32le", "pcm_s16le", "pcm_mulaw", "pcm_alaw"})
SAMPLE_RATES = frozenset({8000, 16000, 22050, 24000, 44100, 48000})
SPEEDS = frozenset({"slow", "normal", "fast"})
# Fields a generation request may carry (GenerationRequest in the official types).
REQUEST_FIELDS = frozenset(
    {
        "context_id",
        "model_id",
        "transcript",
        "voice",
        "output_format",
        "continue",
        "flush",
        "language",
        "add_timestamps",
        "add_phoneme_timestamps",
        "use_normalized_timestamps",
        "max_buffer_delay_ms",
        "speed",
        "generation_config",
        "pronunciation_dict_id",
    }
)
# These may change between inputs of one context; every other field is locked.
PER_INPUT_FIELDS = frozenset({"transcript", "continue", "flush"})


class ProtocolError(Exception):
    """A message broke the protocol; `remote` is True when the peer sent it."""

    def __init__(self, message: str, *, remote: bool = True) -> None:
        super().__init__(message)
        self.remote = remote


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()
