"""Model prices, and the estimated cost of a response's token usage."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from voiceagent.events import Usage


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Model prices in USD per 1 million tokens.

    The defaults are EXAMPLES in the range of published speech-to-speech model list
    prices at the time of writing, not a quote: set your own contract's prices with
    `PriceTable.parse(...)` (proposed env var `VOICEAGENT_PRICES`).
    """

    text_in: float = 4.0
    text_out: float = 16.0
    audio_in: float = 32.0
    audio_out: float = 64.0
    cached_in: float = 0.4

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"price {f.name} must be a finite number >= 0, got {value!r}")

    @classmethod
    def parse(cls, spec: str) -> PriceTable:
        """Build from `"text_in=4,text_out=16,audio_in=32,audio_out=64,cached_in=0.4"`.

        Missing keys keep their defaults; an unknown key or a bad number raises
        `ValueError` naming it. An empty string gives the defaults.
        """
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in spec.split(","):
            part = part.strip()
            if not part:
                continue
            key, sep, raw = part.partition("=")
            key = key.strip()
            if not sep or key not in known:
                raise ValueError(f"bad price entry {part!r}; keys are {sorted(known)}")
            try:
                values[key] = float(raw)
            except ValueError:
                raise ValueError(f"price {key} is not a number: {raw.strip()!r}") from None
        return cls(**values)

    def cost_usd(self, usage: Usage) -> float:
        """Estimated cost of one response's usage.

        With a text/audio breakdown the parts are priced separately; without one all
        tokens are priced as text. Cached input tokens are billed at `cached_in` and
        taken off the text input first, then the audio input.
        """
        text_in = usage.input_text_tokens
        audio_in = usage.input_audio_tokens
        if text_in + audio_in == 0:
            text_in = usage.input_tokens
        text_out = usage.output_text_tokens
        audio_out = usage.output_audio_tokens
        if text_out + audio_out == 0:
            text_out = usage.output_tokens
        cached = min(usage.cached_tokens, text_in + audio_in)
        cached_from_text = min(cached, text_in)
        text_in -= cached_from_text
        audio_in -= cached - cached_from_text
        micro_usd = (
            text_in * self.text_in
            + audio_in * self.audio_in
            + cached * self.cached_in
            + text_out * self.text_out
            + audio_out * self.audio_out
        )
        return micro_usd / 1_000_000
