"""The process-wide series: one registry, every metric family, and the `/metrics` body.

Everything lives in one dedicated `CollectorRegistry` (`REGISTRY`), so importing the
metrics never touches prometheus-client's global registry and `render()` shows only
voiceagent's families. The other metrics modules observe into the families defined here.

Cost rules (a frame is expensive: docs/architecture.md, "What a frame costs"; figures
from `python benchmarks/metrics_overhead.py` on this machine):

- A prometheus `Counter.inc()` costs ~1 us (it takes a lock), so no counter here is
  updated per frame: per-frame counts go through `voiceagent.metrics.traffic`.
- Histograms (`observe()` ~1 us) are used once per turn, per provider connect, per
  loop-lag tick (20 per second for the whole process), per barge-in, and once per
  relayed audio frame (`RELAY_LATENCY`: under 1 % of what sending that frame costs,
  and the one figure that says what the server adds to the audio path); never per
  inbound frame.
- Label children of the per-frame families are resolved once at import by the modules
  that use them (`labels()` adds ~0.7 us a call). No label carries a session id, so
  the exposition does not grow with sessions: `render()` takes ~1.5 ms for ~13 KB after
  10,000 sessions.
"""

from __future__ import annotations

import math
from typing import Literal

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

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
GC_POLICY_COLLECTED = Counter(
    "voiceagent_gc_policy_collected_total",
    "Objects in reference cycles freed by the GC policy's ticks and sweeps (gc_policy.py)",
    ["pass"],
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

ProviderKind = Literal["connect", "first_token", "first_audio"]


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
