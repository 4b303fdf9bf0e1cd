"""TurnTimer: the `metrics` event fields from the session's marks, and the None rules."""

from __future__ import annotations

import pytest

from voiceagent.events import Usage
from voiceagent.metrics import REGISTRY, PriceTable, TurnTimer

METRICS_FIELDS = {
    "type",
    "response_id",
    "stt_ms",
    "llm_ms",
    "tts_ms",
    "turn_ms",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "dropped",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_spoken_turn_gives_every_stage_in_ms() -> None:
    clock = FakeClock()
    timer = TurnTimer(clock=clock)
    timer.speech_end()
    clock.now += 0.120
    timer.transcript_final()
    clock.now += 0.180  # 300 ms after speech end
    timer.model_first_text()
    timer.tts_first_text()
    clock.now += 0.090
    timer.tts_first_audio()
    clock.now += 0.005
    timer.first_audio_sent()

    report = timer.report("resp_1", dropped=2)

    assert set(report) == METRICS_FIELDS
    assert report["type"] == "metrics"
    assert report["response_id"] == "resp_1"
    assert report["stt_ms"] == pytest.approx(120.0)
    assert report["llm_ms"] == pytest.approx(300.0)
    assert report["tts_ms"] == pytest.approx(90.0)
    assert report["turn_ms"] == pytest.approx(395.0)
    assert report["dropped"] == 2
    # No usage reported: token and cost fields are not applicable.
    assert report["input_tokens"] is None
    assert report["output_tokens"] is None
    assert report["cost_usd"] is None


def test_typed_turn_has_no_stt_and_starts_at_the_text() -> None:
    clock = FakeClock()
    timer = TurnTimer(clock=clock)
    timer.user_text()
    clock.now += 0.250
    timer.model_first_text()
    clock.now += 0.050
    timer.first_audio_sent()

    report = timer.report("resp_2", dropped=0)

    assert report["stt_ms"] is None
    assert report["llm_ms"] == pytest.approx(250.0)
    assert report["turn_ms"] == pytest.approx(300.0)
    assert report["tts_ms"] is None  # TTS marks never made


def test_marks_keep_their_first_call() -> None:
    clock = FakeClock()
    timer = TurnTimer(clock=clock)
    timer.speech_end()
    clock.now += 0.1
    timer.model_first_text()
    clock.now += 5.0
    timer.model_first_text()  # every later delta calls it again
    timer.speech_end()

    assert timer.report("r", dropped=0)["llm_ms"] == pytest.approx(100.0)


def test_commit_after_speech_end_does_not_move_the_turn_start() -> None:
    clock = FakeClock()
    timer = TurnTimer(clock=clock)
    timer.speech_end()
    clock.now += 0.2
    timer.commit()
    clock.now += 0.1
    timer.first_audio_sent()

    assert timer.report("r", dropped=0)["turn_ms"] == pytest.approx(300.0)


def test_tool_follow_up_response_times_llm_from_the_request_only() -> None:
    clock = FakeClock()
    timer = TurnTimer(clock=clock)
    timer.response_requested()
    clock.now += 0.4
    timer.model_first_text()
    timer.first_audio_sent()

    report = timer.report("r", dropped=0)

    assert report["llm_ms"] == pytest.approx(400.0)
    assert report["turn_ms"] is None  # no user turn started this response


def test_out_of_order_marks_give_none_not_negative_times() -> None:
    clock = FakeClock()
    timer = TurnTimer(clock=clock)
    timer.tts_first_audio()
    clock.now += 0.1
    timer.tts_first_text()

    assert timer.report("r", dropped=0)["tts_ms"] is None


def test_usage_adds_tokens_and_prices_them() -> None:
    timer = TurnTimer(PriceTable(text_in=1.0, text_out=2.0, audio_in=0, audio_out=0, cached_in=0))
    timer.usage(Usage(input_tokens=1000, output_tokens=500))
    timer.usage(Usage(input_tokens=1000, output_tokens=0))

    report = timer.report("r", dropped=0)

    assert report["input_tokens"] == 2000
    assert report["output_tokens"] == 500
    assert report["cost_usd"] == pytest.approx((2000 * 1.0 + 500 * 2.0) / 1e6)


def test_usage_without_price_table_reports_tokens_but_no_cost() -> None:
    timer = TurnTimer()
    timer.usage(Usage(input_tokens=10, output_tokens=20))

    report = timer.report("r", dropped=0)

    assert (report["input_tokens"], report["output_tokens"]) == (10, 20)
    assert report["cost_usd"] is None


def _count(stage: str) -> float:
    value = REGISTRY.get_sample_value("voiceagent_turn_latency_seconds_count", {"stage": stage})
    return value or 0.0


def test_report_observes_histograms_once_and_only_for_known_stages() -> None:
    before = {stage: _count(stage) for stage in ("stt", "llm", "tts", "turn")}
    clock = FakeClock()
    timer = TurnTimer(clock=clock)
    timer.user_text()
    clock.now += 0.3
    timer.model_first_text()

    timer.report("r", dropped=0)
    timer.report("r", dropped=0)  # a second report must not double count

    assert _count("llm") == before["llm"] + 1
    assert _count("stt") == before["stt"]
    assert _count("turn") == before["turn"]
