"""Per-turn timings: the `metrics` event of docs/protocol.md and the turn histograms.

`TurnTimer` turns monotonic marks made by the session into the fields of the `metrics`
event and observes the turn histograms once per turn (`observe()` ~1 us; never per
frame). Marks are plain attribute writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from voiceagent.events import Usage
from voiceagent.metrics.prices import PriceTable
from voiceagent.metrics.series import COST, TOKENS, TURN_LATENCY

_TOKENS_IN = TOKENS.labels("input")
_TOKENS_OUT = TOKENS.labels("output")
_STAGES = {stage: TURN_LATENCY.labels(stage) for stage in ("stt", "llm", "tts", "turn")}


class TurnTimer:
    """Timings of one response, from monotonic marks the session makes as it happens.

    Marks (each keeps its FIRST call, so calling one per delta is harmless):
    - turn start, the first of `speech_end()` (VAD heard the user stop), `commit()`
      (push-to-talk end) and `user_text()` (a typed message);
    - `response_requested()`: a response the user did not start (e.g. after a tool call);
      it starts the LLM clock only when no turn start exists;
    - `transcript_final()`, `model_first_text()`, `tts_first_text()`, `tts_first_audio()`,
      `first_audio_sent()` (first audio byte written to the client socket).

    Stages (ms, None when a mark is missing or the marks are out of order):
    - stt_ms  = speech_end -> transcript_final (None for typed turns);
    - llm_ms  = turn start (or response_requested) -> model_first_text;
    - tts_ms  = tts_first_text -> tts_first_audio;
    - turn_ms = turn start -> first_audio_sent.
    """

    __slots__ = (
        "_clock",
        "_prices",
        "_reported",
        "first_audio_sent_at",
        "input_tokens",
        "model_first_text_at",
        "output_tokens",
        "requested_at",
        "speech_end_at",
        "transcript_final_at",
        "tts_first_audio_at",
        "tts_first_text_at",
        "turn_start_at",
        "usage_cost",
    )

    def __init__(
        self, prices: PriceTable | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self._prices = prices
        self._reported = False
        self.speech_end_at: float | None = None
        self.turn_start_at: float | None = None
        self.requested_at: float | None = None
        self.transcript_final_at: float | None = None
        self.model_first_text_at: float | None = None
        self.tts_first_text_at: float | None = None
        self.tts_first_audio_at: float | None = None
        self.first_audio_sent_at: float | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.usage_cost: float | None = None

    def speech_end(self) -> None:
        if self.speech_end_at is None:
            self.speech_end_at = self._clock()
            if self.turn_start_at is None:
                self.turn_start_at = self.speech_end_at

    def commit(self) -> None:
        if self.turn_start_at is None:
            self.turn_start_at = self._clock()

    def user_text(self) -> None:
        if self.turn_start_at is None:
            self.turn_start_at = self._clock()

    def response_requested(self) -> None:
        if self.requested_at is None:
            self.requested_at = self._clock()

    def transcript_final(self) -> None:
        if self.transcript_final_at is None:
            self.transcript_final_at = self._clock()

    def model_first_text(self) -> None:
        if self.model_first_text_at is None:
            self.model_first_text_at = self._clock()

    def tts_first_text(self) -> None:
        if self.tts_first_text_at is None:
            self.tts_first_text_at = self._clock()

    def tts_first_audio(self) -> None:
        if self.tts_first_audio_at is None:
            self.tts_first_audio_at = self._clock()

    def first_audio_sent(self) -> None:
        if self.first_audio_sent_at is None:
            self.first_audio_sent_at = self._clock()

    def usage(self, usage: Usage) -> None:
        """Add one provider usage report (a response may bring several, e.g. tool turns)."""
        self.input_tokens = (self.input_tokens or 0) + usage.input_tokens
        self.output_tokens = (self.output_tokens or 0) + usage.output_tokens
        if self._prices is not None:
            self.usage_cost = (self.usage_cost or 0.0) + self._prices.cost_usd(usage)

    def report(self, response_id: str, dropped: int) -> dict[str, Any]:
        """The `metrics` event of docs/protocol.md (with "type"); observes histograms once."""
        stt = _ms(self.speech_end_at, self.transcript_final_at)
        llm = _ms(self.turn_start_at or self.requested_at, self.model_first_text_at)
        tts = _ms(self.tts_first_text_at, self.tts_first_audio_at)
        turn = _ms(self.turn_start_at, self.first_audio_sent_at)
        if not self._reported:
            self._reported = True
            for stage, value in (("stt", stt), ("llm", llm), ("tts", tts), ("turn", turn)):
                if value is not None:
                    _STAGES[stage].observe(value / 1000)
            if self.input_tokens:
                _TOKENS_IN.inc(self.input_tokens)
            if self.output_tokens:
                _TOKENS_OUT.inc(self.output_tokens)
            if self.usage_cost:
                COST.inc(self.usage_cost)
        return {
            "type": "metrics",
            "response_id": response_id,
            "stt_ms": stt,
            "llm_ms": llm,
            "tts_ms": tts,
            "turn_ms": turn,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": None if self.usage_cost is None else round(self.usage_cost, 8),
            "dropped": dropped,
        }


def _ms(start: float | None, end: float | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return round((end - start) * 1000, 1)
