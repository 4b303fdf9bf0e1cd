"""Output guardrails on streaming text: debounced, tripped once, fail closed."""

from __future__ import annotations

import pytest
from voiceagent.demo.airline import no_card_numbers, triage_agent

from voiceagent.graph import GuardrailMonitor, GuardrailResult, OutputGuardrail, output_guardrail


@output_guardrail
def says_secret(text: str) -> bool:
    return "secret" in text.lower()


@output_guardrail(name="too_shouty")
def shouting(text: str) -> GuardrailResult:
    return GuardrailResult(text.count("!") > 2, message="calm down")


def stream(monitor: GuardrailMonitor, text: str, step: int = 3) -> GuardrailResult | None:
    for i in range(0, len(text), step):
        result = monitor.feed(text[i : i + step])
        if result is not None:
            return result
    return monitor.finish()


def test_decorator_builds_named_guardrails() -> None:
    assert isinstance(says_secret, OutputGuardrail)
    assert says_secret.name == "says_secret"
    assert shouting.name == "too_shouty"


def test_clean_text_never_trips() -> None:
    monitor = GuardrailMonitor([says_secret], debounce_chars=10)
    assert stream(monitor, "Your flight leaves at nine from gate twelve.") is None
    assert monitor.tripped is None


def test_a_trip_is_reported_once_with_the_guardrail_name() -> None:
    monitor = GuardrailMonitor([says_secret], debounce_chars=5)
    result = stream(monitor, "Here is the secret code for the door")
    assert result == GuardrailResult(True, "says_secret", "says_secret tripped")
    assert monitor.feed(" more secret text") is None  # already reported
    assert monitor.finish() is None


def test_a_match_spanning_deltas_is_found() -> None:
    monitor = GuardrailMonitor([says_secret], debounce_chars=3)
    assert monitor.feed("the sec") is None
    assert monitor.feed("ret") is not None


def test_checks_are_debounced_by_characters() -> None:
    monitor = GuardrailMonitor([says_secret], debounce_chars=20)
    for _ in range(10):
        monitor.feed("ab")  # 20 chars: exactly one check
    assert monitor.checks_run == 1
    monitor.feed("abc")
    assert monitor.checks_run == 1
    monitor.finish()  # the unchecked tail is checked at the end
    assert monitor.checks_run == 2
    monitor.finish()
    assert monitor.checks_run == 2


def test_text_shorter_than_the_debounce_is_checked_at_finish() -> None:
    monitor = GuardrailMonitor([says_secret], debounce_chars=100)
    assert monitor.feed("secret") is None
    result = monitor.finish()
    assert result is not None and result.tripped


def test_result_objects_keep_their_message() -> None:
    monitor = GuardrailMonitor([says_secret, shouting], debounce_chars=1)
    result = stream(monitor, "Wow!!! Great!")
    assert result == GuardrailResult(True, "too_shouty", "calm down")


def test_a_crashing_guardrail_fails_closed() -> None:
    def explode(text: str) -> bool:
        raise RuntimeError("bug")

    monitor = GuardrailMonitor([OutputGuardrail("buggy", explode)], debounce_chars=1)
    result = monitor.feed("hello")
    assert result is not None
    assert (result.tripped, result.guardrail) == (True, "buggy")
    assert "RuntimeError" in result.message


def test_memory_is_bounded() -> None:
    monitor = GuardrailMonitor([says_secret], debounce_chars=1000, max_chars=100)
    for _ in range(100):
        monitor.feed("x" * 50)
    assert len(monitor.text) == 100


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        GuardrailMonitor([says_secret], debounce_chars=0)


def test_no_guardrails_means_nothing_to_do() -> None:
    monitor = GuardrailMonitor([], debounce_chars=1)
    assert monitor.feed("secret") is None
    assert monitor.finish() is None


@pytest.mark.parametrize(
    "text",
    ["Your card 4111 1111 1111 1111 is on file", "card 4111-1111-1111-1111", "4111111111111111"],
)
def test_airline_guardrail_stops_card_numbers(text: str) -> None:
    monitor = GuardrailMonitor(triage_agent.output_guardrails, debounce_chars=8)
    result = stream(monitor, text)
    assert result is not None and result.guardrail == "no_card_numbers"
    assert triage_agent.guardrail_safe_line.startswith("Sorry, I can't read out card numbers")


@pytest.mark.parametrize(
    "text",
    ["Your seat is now 14C on booking ABC123.", "Rows 5 to 8 have extra legroom, 120 seats."],
)
def test_airline_guardrail_lets_normal_answers_through(text: str) -> None:
    assert stream(GuardrailMonitor([no_card_numbers], debounce_chars=8), text) is None
