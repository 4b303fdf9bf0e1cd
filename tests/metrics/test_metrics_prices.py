"""PriceTable: parsing the configured prices and costing provider usage."""

from __future__ import annotations

import pytest

from voiceagent.events import Usage
from voiceagent.metrics import PriceTable


def test_parse_overrides_only_the_given_prices() -> None:
    table = PriceTable.parse("text_in=1.5, audio_out=80")

    assert table.text_in == 1.5
    assert table.audio_out == 80
    assert table.text_out == PriceTable().text_out


def test_parse_of_empty_spec_gives_defaults() -> None:
    assert PriceTable.parse("") == PriceTable()


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("text_inn=1", "text_inn"), ("text_in=abc", "text_in"), ("audio_out", "audio_out")],
)
def test_parse_rejects_bad_entries_naming_them(spec: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        PriceTable.parse(spec)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_negative_or_non_finite_prices_are_refused(value: float) -> None:
    with pytest.raises(ValueError, match="text_out"):
        PriceTable(text_out=value)


def test_text_and_audio_are_priced_separately() -> None:
    table = PriceTable(text_in=1, text_out=10, audio_in=100, audio_out=1000, cached_in=0)
    usage = Usage(
        input_tokens=30,
        output_tokens=7,
        input_text_tokens=10,
        input_audio_tokens=20,
        output_text_tokens=3,
        output_audio_tokens=4,
    )

    assert table.cost_usd(usage) == pytest.approx((10 * 1 + 20 * 100 + 3 * 10 + 4 * 1000) / 1e6)


def test_without_breakdown_all_tokens_are_priced_as_text() -> None:
    table = PriceTable(text_in=2, text_out=8, audio_in=1000, audio_out=1000, cached_in=0)

    assert table.cost_usd(Usage(input_tokens=100, output_tokens=50)) == pytest.approx(
        (100 * 2 + 50 * 8) / 1e6
    )


def test_cached_tokens_are_billed_at_the_cached_rate_text_first() -> None:
    table = PriceTable(text_in=10, text_out=0, audio_in=100, audio_out=0, cached_in=1)
    usage = Usage(input_tokens=60, input_text_tokens=20, input_audio_tokens=40, cached_tokens=30)

    # 20 cached text + 10 cached audio at 1; 30 audio at 100.
    assert table.cost_usd(usage) == pytest.approx((30 * 1 + 30 * 100) / 1e6)


def test_zero_usage_costs_nothing() -> None:
    assert PriceTable().cost_usd(Usage()) == 0.0
