"""Server-side metrics: per-turn timings, traffic tallies and the `/metrics` exposition.

Everything lives in one dedicated `CollectorRegistry` (`REGISTRY`), so importing this
module never touches prometheus-client's global registry and `render()` shows only
voiceagent's families.

Cost rules (a frame is expensive: docs/architecture.md, "What a frame costs"):

- Nothing here runs per frame except `TrafficTally.frame_in/frame_out`, which only add
  to plain ints. Measured on this machine (`python benchmarks/metrics_overhead.py`): a
  prometheus `Counter.inc()` costs ~1 us (it takes a lock), a tally frame ~0.2 us. Four
  counter updates per echoed frame (frames and bytes, in and out) would be ~4 us, about
  2.7 % of the ~150 us a frame costs on this stack; the tally makes it ~0.25 %. A tally
  pushes its ints into the shared counters every `FLUSH_EVERY` frames (one second of
  20 ms audio) and at `close()`, and samples channel depths at the same moments, so
  `/metrics` lags a live session by at most that many frames.
- Histograms (`observe()` ~1 us) are used once per turn, per provider connect, per
  loop-lag tick (20 per second for the whole process), per barge-in, and once per
  relayed audio frame (`RELAY_LATENCY`: under 1 % of what sending that frame costs,
  and the one figure that says what the server adds to the audio path); never per
  inbound frame.
- Label children of the per-frame families are resolved once at import (`labels()`
  adds ~0.7 us a call). No label carries a session id, so the exposition does not grow
  with sessions: `render()` takes ~1.5 ms for ~13 KB after 10,000 sessions.

`TurnTimer` turns monotonic marks made by the session into the fields of the
`metrics` event of docs/protocol.md and observes the turn histograms.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Literal

import trio
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from voiceagent.events import Usage

REGISTRY = CollectorRegistry(auto_describe=True)

# Latency buckets in seconds: fine below 50 ms where the targets live, coarse above.
_LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15,
    0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)  # fmt: skip
_LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Fine steps where the targets are (10 ms interrupt -> silence, 20 ms added latency).
_RELAY_BUCKETS = (
    0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05,
    0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
_DEPTH_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

SESSIONS_OPEN = Gauge(
    "voiceagent_sessions_open", "WebSocket sessions currently open", registry=REGISTRY
)
SESSIONS_WITH_MODEL = Gauge(
    "voiceagent_sessions_with_model",
    "Open sessions holding a live speech-model connection",
    registry=REGISTRY,
)
SESSIONS_SPEAKING = Gauge(
    "voiceagent_sessions_speaking",
    "Open sessions currently sending response audio to their client",
    registry=REGISTRY,
)
FRAMES = Counter(
    "voiceagent_frames",
    "WebSocket messages received from (in) or sent to (out) clients",
    ["direction"],
    registry=REGISTRY,
)
BYTES = Counter(
    "voiceagent_bytes",
    "Payload bytes received from (in) or sent to (out) clients",
    ["direction"],
    registry=REGISTRY,
)
DROPS = Counter(
    "voiceagent_drops",
    "Messages dropped because a bounded channel was full",
    ["class"],
    registry=REGISTRY,
)
CHANNEL_DEPTH = Histogram(
    "voiceagent_channel_depth",
    "Items queued in a session channel, sampled about once per second per session",
    ["channel"],
    buckets=_DEPTH_BUCKETS,
    registry=REGISTRY,
)
LOOP_LAG = Histogram(
    "voiceagent_event_loop_lag_seconds",
    "How late a fixed-tick sleep woke up: time the event loop was busy elsewhere",
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
PROVIDER_LATENCY = Histogram(
    "voiceagent_provider_latency_seconds",
    "Provider latency: connect, request to first text token, text to first audio",
    ["provider", "kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RELAY_LATENCY = Histogram(
    "voiceagent_audio_relay_seconds",
    "Server-added latency of voice audio: chunk from the voice provider -> frame written",
    buckets=_RELAY_BUCKETS,
    registry=REGISTRY,
)
INTERRUPT_LATENCY = Histogram(
    "voiceagent_interrupt_seconds",
    "Barge-in (interrupt message or speech start) -> audio_interrupted written",
    buckets=_RELAY_BUCKETS,
    registry=REGISTRY,
)
GC_PAUSE = Histogram(
    "voiceagent_gc_pause_seconds",
    "Cyclic garbage collector passes, by generation: the event loop stops for each",
    ["generation"],
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
ERRORS = Counter(
    "voiceagent_errors", "Error events sent to clients, by code", ["code"], registry=REGISTRY
)
TURN_LATENCY = Histogram(
    "voiceagent_turn_latency_seconds",
    "Per-turn latency by stage (stt, llm, tts, turn); see TurnTimer",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CLIENT_E2E = Histogram(
    "voiceagent_client_e2e_seconds",
    "Client-reported, unverified: local end of speech to first audio played"
    " (client_metrics; 0 < e2e_ms <= 60000)",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "voiceagent_tokens", "Model tokens reported by providers", ["direction"], registry=REGISTRY
)
COST = Counter(
    "voiceagent_cost_usd", "Estimated model cost from the price table", registry=REGISTRY
)

_FRAMES_IN = FRAMES.labels("in")
_FRAMES_OUT = FRAMES.labels("out")
_BYTES_IN = BYTES.labels("in")
_BYTES_OUT = BYTES.labels("out")
_DROPS_AUDIO_IN = DROPS.labels("audio_in")
_DROPS_OUT = DROPS.labels("droppable_out")
_TOKENS_IN = TOKENS.labels("input")
_TOKENS_OUT = TOKENS.labels("output")
_STAGES = {stage: TURN_LATENCY.labels(stage) for stage in ("stt", "llm", "tts", "turn")}

DropClass = Literal["audio_in", "droppable_out"]
ProviderKind = Literal["connect", "first_token", "first_audio"]

#: frames between two pushes of a session's tally into the shared counters
FLUSH_EVERY = 50


def render() -> tuple[bytes, str]:
    """The Prometheus text exposition of `REGISTRY`: (body, content type) for /metrics."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def count_error(code: str) -> None:
    """Count one `error` event sent to a client (`code` is the protocol's error code)."""
    ERRORS.labels(code).inc()


def observe_provider(provider: str, kind: ProviderKind, seconds: float) -> None:
    """Record one provider latency (e.g. `observe_provider("cartesia", "connect", 0.12)`)."""
    PROVIDER_LATENCY.labels(provider, kind).observe(seconds)


def observe_client_e2e(seconds: float) -> None:
    """Record a client's end-to-end figure; negative or non-finite values are ignored."""
    if math.isfinite(seconds) and seconds >= 0:
        CLIENT_E2E.observe(seconds)


async def monitor_loop_lag(tick: float = 0.05) -> None:
    """Sleep `tick` seconds forever and record each wake-up's overshoot in `LOOP_LAG`.

    The overshoot is how long other tasks (or a blocking call) kept the loop from
    running this one. Runs until cancelled (start it in the app's lifespan nursery);
    cancellation simply ends it. Uses the run's clock, so a `MockClock` drives it too.
    """
    if not tick > 0:
        raise ValueError(f"tick must be > 0, got {tick!r}")
    observe = LOOP_LAG.observe
    now = trio.current_time
    while True:
        started = now()
        await trio.sleep(tick)
        observe(max(0.0, now() - started - tick))


def watch_gc_pauses() -> None:
    """Record every cyclic GC pass in `GC_PAUSE` (idempotent; a callback per pass).

    A generation-2 pass walks every tracked object of the process while all sessions
    wait, so its length grows with the number of open rooms: the figure to watch when
    sizing rooms per worker.
    """
    if _gc_callback in gc.callbacks:
        return
    gc.callbacks.append(_gc_callback)


_gc_started = [0.0]
_GC_CHILDREN = [GC_PAUSE.labels(str(generation)) for generation in range(3)]


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _GC_CHILDREN[info["generation"]].observe(time.perf_counter() - _gc_started[0])


class TrafficTally:
    """Per-session frame/byte/drop counts kept in plain ints, flushed to the counters.

    The session calls `frame_in`/`frame_out` per WebSocket message and `drop` per dropped
    message; every `flush_every` frames, and at `close()`, the deltas go to the shared
    counters and each registered depth probe is sampled into `CHANNEL_DEPTH`. Register
    probes such as `lambda: send_channel.statistics().current_buffer_used`. Not
    thread-safe: one session, one event loop.
    """

    __slots__ = (
        "_depth_probes",
        "_flush_every",
        "_flushed",
        "_pending",
        "bytes_in",
        "bytes_out",
        "drops_audio_in",
        "drops_out",
        "frames_in",
        "frames_out",
    )

    def __init__(
        self,
        depth_probes: Mapping[str, Callable[[], int]] | None = None,
        *,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every must be >= 1, got {flush_every!r}")
        self._depth_probes = [
            (CHANNEL_DEPTH.labels(name), probe) for name, probe in (depth_probes or {}).items()
        ]
        self._flush_every = flush_every
        self._pending = 0
        self._flushed: tuple[int, ...] = (0, 0, 0, 0, 0, 0)
        self.frames_in = self.bytes_in = self.frames_out = self.bytes_out = 0
        self.drops_audio_in = self.drops_out = 0

    def frame_in(self, nbytes: int) -> None:
        self.frames_in += 1
        self.bytes_in += nbytes
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def frame_out(self, nbytes: int) -> None:
        self.frames_out += 1
        self.bytes_out += nbytes
        self._pending += 1
        if self._pending >= self._flush_every:
            self.flush()

    def drop(self, cls: DropClass) -> None:
        if cls == "audio_in":
            self.drops_audio_in += 1
        elif cls == "droppable_out":
            self.drops_out += 1
        else:
            raise ValueError(f"unknown drop class {cls!r}")

    @property
    def dropped(self) -> int:
        """All messages this session dropped so far (the `dropped` of `metrics` events)."""
        return self.drops_audio_in + self.drops_out

    def flush(self) -> None:
        """Push the counts since the last flush into the shared counters; sample depths."""
        self._pending = 0
        # Totals stay readable on the tally; the counters get only what is new.
        now = (
            self.frames_in,
            self.bytes_in,
            self.frames_out,
            self.bytes_out,
            self.drops_audio_in,
            self.drops_out,
        )
        for child, total, flushed in zip(_TALLY_CHILDREN, now, self._flushed, strict=True):
            if total > flushed:
                child.inc(total - flushed)
        self._flushed = now
        for histogram, probe in self._depth_probes:
            histogram.observe(probe())

    def close(self) -> None:
        """Final flush; call once when the session ends (calling again adds nothing).

        The depth probes are dropped: they usually close over their session, and a
        finished session should be freed by reference counting, not left in a cycle.
        """
        self.flush()
        self._depth_probes = []


_TALLY_CHILDREN = (_FRAMES_IN, _BYTES_IN, _FRAMES_OUT, _BYTES_OUT, _DROPS_AUDIO_IN, _DROPS_OUT)


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
