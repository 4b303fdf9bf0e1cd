"""Server-side metrics: per-turn timings, traffic tallies and the `/metrics` exposition.

Modules (each states its own cost rules, with the measured figures behind them):

- `series`: the one `CollectorRegistry` (`REGISTRY`), every metric family, `render()`
  for `/metrics`, and the once-per-event helpers (`count_error`, `observe_provider`,
  `observe_client_e2e`);
- `traffic`: `TrafficTally`, the per-session frame/byte/drop counts in plain ints (the
  only metrics code that runs per frame), flushed into the shared counters;
- `turn_timer`: `TurnTimer`, the `metrics` event of docs/protocol.md for one response;
- `prices`: `PriceTable`, model prices and the estimated cost of a response;
- `monitors`: `monitor_loop_lag` and `watch_gc_pauses`, process-wide.

Import from here (`from voiceagent.metrics import REGISTRY, TurnTimer, PriceTable`);
the names below are the public ones.
"""

from __future__ import annotations

from voiceagent.metrics.monitors import monitor_loop_lag, watch_gc_pauses
from voiceagent.metrics.prices import PriceTable
from voiceagent.metrics.series import (
    BYTES,
    CHANNEL_DEPTH,
    CLIENT_E2E,
    COST,
    DROPS,
    ERRORS,
    FRAMES,
    GC_PAUSE,
    INTERRUPT_LATENCY,
    LOOP_LAG,
    PROVIDER_LATENCY,
    REGISTRY,
    RELAY_LATENCY,
    SESSIONS_OPEN,
    SESSIONS_SPEAKING,
    SESSIONS_WITH_MODEL,
    TOKENS,
    TURN_LATENCY,
    ProviderKind,
    count_error,
    observe_client_e2e,
    observe_provider,
    render,
)
from voiceagent.metrics.traffic import FLUSH_EVERY, DropClass, TrafficTally
from voiceagent.metrics.turn_timer import TurnTimer

__all__ = [
    "BYTES",
    "CHANNEL_DEPTH",
    "CLIENT_E2E",
    "COST",
    "DROPS",
    "ERRORS",
    "FLUSH_EVERY",
    "FRAMES",
    "GC_PAUSE",
    "INTERRUPT_LATENCY",
    "LOOP_LAG",
    "PROVIDER_LATENCY",
    "REGISTRY",
    "RELAY_LATENCY",
    "SESSIONS_OPEN",
    "SESSIONS_SPEAKING",
    "SESSIONS_WITH_MODEL",
    "TOKENS",
    "TURN_LATENCY",
    "DropClass",
    "PriceTable",
    "ProviderKind",
    "TrafficTally",
    "TurnTimer",
    "count_error",
    "monitor_loop_lag",
    "observe_client_e2e",
    "observe_provider",
    "render",
    "watch_gc_pauses",
]
