"""/metrics body: valid Prometheus text with every family; tallies and loop lag feed it."""

from __future__ import annotations

import gc
import time

import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from voiceagent import metrics
from voiceagent.metrics import REGISTRY, TrafficTally, monitor_loop_lag, render

FAMILIES = {
    "voiceagent_sessions_open",
    "voiceagent_sessions_with_model",
    "voiceagent_sessions_speaking",
    "voiceagent_frames",
    "voiceagent_bytes",
    "voiceagent_drops",
    "voiceagent_channel_depth",
    "voiceagent_event_loop_lag_seconds",
    "voiceagent_provider_latency_seconds",
    "voiceagent_audio_relay_seconds",
    "voiceagent_interrupt_seconds",
    "voiceagent_gc_pause_seconds",
    "voiceagent_errors",
    "voiceagent_turn_latency_seconds",
    "voiceagent_client_e2e_seconds",
    "voiceagent_tokens",
    "voiceagent_cost_usd",
}


def _value(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_render_is_parseable_prometheus_text_with_all_families() -> None:
    metrics.count_error("invalid_json")
    metrics.observe_provider("cartesia", "first_audio", 0.08)

    body, content_type = render()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}

    assert content_type.startswith("text/plain")
    assert FAMILIES <= set(families)
    errors = {
        s.labels["code"]: s.value
        for s in families["voiceagent_errors"].samples
        if s.name == "voiceagent_errors_total"
    }
    assert errors["invalid_json"] >= 1


def test_tally_reaches_counters_only_at_flush_points() -> None:
    frames_in = _value("voiceagent_frames_total", {"direction": "in"})
    bytes_out = _value("voiceagent_bytes_total", {"direction": "out"})
    tally = TrafficTally(flush_every=3)

    tally.frame_in(960)
    tally.frame_in(960)
    assert _value("voiceagent_frames_total", {"direction": "in"}) == frames_in

    tally.frame_out(4096)  # third frame: flush
    assert _value("voiceagent_frames_total", {"direction": "in"}) == frames_in + 2
    assert _value("voiceagent_bytes_total", {"direction": "out"}) == bytes_out + 4096

    tally.frame_in(960)
    tally.close()
    tally.close()  # a second close adds nothing
    assert _value("voiceagent_frames_total", {"direction": "in"}) == frames_in + 3
    assert tally.frames_in == 3 and tally.bytes_in == 3 * 960


def test_drops_are_counted_by_class() -> None:
    audio = _value("voiceagent_drops_total", {"class": "audio_in"})
    out = _value("voiceagent_drops_total", {"class": "droppable_out"})
    tally = TrafficTally()

    tally.drop("audio_in")
    tally.drop("droppable_out")
    tally.drop("droppable_out")
    tally.close()

    assert tally.dropped == 3
    assert _value("voiceagent_drops_total", {"class": "audio_in"}) == audio + 1
    assert _value("voiceagent_drops_total", {"class": "droppable_out"}) == out + 2


def test_channel_depth_is_sampled_at_flush_not_per_frame() -> None:
    calls = 0

    def depth() -> int:
        nonlocal calls
        calls += 1
        return 7

    before = _value("voiceagent_channel_depth_sum", {"channel": "test_out"})
    tally = TrafficTally({"test_out": depth}, flush_every=10)
    for _ in range(25):
        tally.frame_out(100)
    tally.close()

    assert calls == 3  # at frames 10 and 20, and at close
    assert _value("voiceagent_channel_depth_sum", {"channel": "test_out"}) == before + 21


def _lag_sum_count() -> tuple[float, float]:
    return (
        _value("voiceagent_event_loop_lag_seconds_sum"),
        _value("voiceagent_event_loop_lag_seconds_count"),
    )


def test_loop_lag_records_the_time_the_loop_was_held() -> None:
    clock = trio.testing.MockClock(autojump_threshold=0)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(monitor_loop_lag, 0.05)
            await trio.sleep(0.01)  # the monitor is now sleeping its tick
            clock.jump(2.0)  # as if a blocking call held the loop for 2 s
            await trio.sleep(0.1)
            nursery.cancel_scope.cancel()

    total, count = _lag_sum_count()
    trio.run(main, clock=clock)
    new_total, new_count = _lag_sum_count()

    assert new_count > count
    assert new_total - total >= 1.9


async def test_loop_lag_sees_a_real_blocking_call() -> None:
    total, _ = _lag_sum_count()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(monitor_loop_lag, 0.01)
        await trio.sleep(0.02)
        time.sleep(0.3)  # noqa: ASYNC251 - deliberately block the event loop
        await trio.sleep(0.05)
        nursery.cancel_scope.cancel()

    new_total, _ = _lag_sum_count()
    # The monitor was asleep when the loop blocked, so it woke >= 0.3 - tick late.
    assert new_total - total >= 0.25


def test_gc_passes_are_recorded_by_generation() -> None:
    metrics.watch_gc_pauses()
    metrics.watch_gc_pauses()  # idempotent: one callback, one observation per pass
    before = _value("voiceagent_gc_pause_seconds_count", {"generation": "2"})
    gc.collect()
    assert _value("voiceagent_gc_pause_seconds_count", {"generation": "2"}) == before + 1
