"""The end-of-turn rules (sans-I/O): hold on VAD silence, join on more speech, max delay."""

from __future__ import annotations

import pytest

from voiceagent.speech.turn_end import Hold, TurnEnder
from voiceagent.speech.vad import SpeechPause, SpeechStop


def stop(start: int, end: int, audio: bytes = b"ab", *, truncated: bool = False) -> SpeechStop:
    return SpeechStop(start, end, audio, truncated)


def test_without_the_model_every_vad_stop_is_a_turn() -> None:
    ender = TurnEnder(semantic=False)
    first = stop(0, 1000)
    assert ender.vad_stop(first) is first
    assert not ender.holding
    assert ender.speech_resumed() is False


def test_a_complete_verdict_commits_the_held_turn() -> None:
    ender = TurnEnder(semantic=True)
    hold = ender.vad_stop(stop(0, 1000))
    assert isinstance(hold, Hold) and ender.holding
    assert ender.verdict(hold.generation, complete=False) is None
    assert ender.holding
    hold = ender.vad_stop(stop(2000, 3000))  # (never happens without a resume; joins anyway)
    assert isinstance(hold, Hold)
    turn = ender.verdict(hold.generation, complete=True)
    assert turn is not None and turn.audio_start_ms == 0 and turn.audio_end_ms == 3000
    assert not ender.holding


def test_speech_after_a_pause_continues_the_same_turn() -> None:
    ender = TurnEnder(semantic=True)
    first = ender.vad_stop(stop(0, 1000, b"one"))
    assert isinstance(first, Hold)
    assert ender.speech_resumed() is True
    # The verdict about the first part arrives late: ignored, the speaker went on.
    assert ender.verdict(first.generation, complete=True) is None
    # Neither the max delay nor the backstop ends a turn whose speaker is talking.
    assert ender.tick(60_000) is None
    assert ender.expire(first.generation) is None
    second = ender.vad_stop(stop(1500, 2500, b"two"))
    assert isinstance(second, Hold) and second.audio == b"onetwo"
    turn = ender.verdict(second.generation, complete=True)
    assert turn is not None and turn.audio == b"onetwo"
    assert (turn.audio_start_ms, turn.audio_end_ms) == (0, 2500)


def test_the_max_delay_ends_a_turn_the_model_thinks_unfinished() -> None:
    ender = TurnEnder(semantic=True, max_delay_ms=3000)
    hold = ender.vad_stop(stop(0, 1000))
    assert isinstance(hold, Hold)
    assert ender.verdict(hold.generation, complete=False) is None
    assert ender.tick(3999) is None
    turn = ender.tick(4000)
    assert turn is not None and turn.audio_end_ms == 4000  # when the end was decided
    assert not ender.holding
    assert ender.verdict(hold.generation, complete=True) is None  # nothing left to commit


def test_the_backstop_ends_only_the_generation_it_was_set_for() -> None:
    ender = TurnEnder(semantic=True)
    hold = ender.vad_stop(stop(0, 1000))
    assert isinstance(hold, Hold)
    assert ender.expire(hold.generation + 1) is None
    turn = ender.expire(hold.generation)
    assert turn is not None and turn.audio_end_ms == 1000


@pytest.mark.parametrize(
    "why",
    [
        {"truncated": True},
        {"max_delay_ms": 0},
        {"max_turn_ms": 1000},
    ],
)
def test_some_stops_are_never_held(why: dict[str, object]) -> None:
    truncated = bool(why.pop("truncated", False))
    ender = TurnEnder(semantic=True, **why)  # type: ignore[arg-type]
    result = ender.vad_stop(stop(0, 1000, truncated=truncated))
    assert isinstance(result, SpeechStop)
    assert not ender.holding


def test_an_explicit_commit_joins_the_held_turn_and_the_speech_in_progress() -> None:
    ender = TurnEnder(semantic=True)
    assert ender.flush(None) is None
    ender.vad_stop(stop(0, 1000, b"one"))
    ender.speech_resumed()
    turn = ender.flush(stop(1500, 2000, b"two"))
    assert turn is not None and turn.audio == b"onetwo"
    assert not ender.holding
    alone = stop(0, 500)
    assert ender.flush(alone) is alone


def test_a_negative_max_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="max_delay_ms"):
        TurnEnder(semantic=True, max_delay_ms=-1)


def pause(start: int, end: int, audio: bytes = b"ab") -> SpeechPause:
    return SpeechPause(start, end, audio)


def test_a_verdict_asked_at_the_pause_ends_the_turn_at_the_vad_stop() -> None:
    ender = TurnEnder(semantic=True)
    hold = ender.vad_pause(pause(0, 800, b"one"))
    assert isinstance(hold, Hold) and hold.audio == b"one"
    assert ender.verdict(hold.generation, complete=True) is None  # no stop yet
    turn = ender.vad_stop(stop(0, 1000, b"one"))
    assert isinstance(turn, SpeechStop) and turn.audio == b"one"  # at once: no model wait
    assert not ender.holding


def test_a_stop_before_the_early_verdict_waits_for_it() -> None:
    ender = TurnEnder(semantic=True)
    hold = ender.vad_pause(pause(0, 800))
    assert isinstance(hold, Hold)
    assert ender.vad_stop(stop(0, 1000)) is None  # held; the model was already asked
    assert ender.holding
    turn = ender.verdict(hold.generation, complete=True)
    assert turn is not None and turn.audio_end_ms == 1000


def test_an_early_still_talking_verdict_holds_the_turn_until_the_max_delay() -> None:
    ender = TurnEnder(semantic=True, max_delay_ms=3000)
    hold = ender.vad_pause(pause(0, 800))
    assert isinstance(hold, Hold)
    assert ender.verdict(hold.generation, complete=False) is None
    assert ender.vad_stop(stop(0, 1000)) is None
    assert ender.tick(3999) is None
    assert ender.tick(4000) is not None


def test_speech_after_the_pause_makes_its_verdict_stale() -> None:
    ender = TurnEnder(semantic=True)
    first = ender.vad_pause(pause(0, 800, b"one"))
    assert isinstance(first, Hold)
    # The speaker went on before the VAD's stop: the VAD reports a new pause later.
    second = ender.vad_pause(pause(0, 2000, b"one-two"))
    assert isinstance(second, Hold)
    assert ender.verdict(first.generation, complete=True) is None
    assert ender.vad_stop(stop(0, 2200, b"one-two")) is None  # waits for the second
    assert ender.verdict(second.generation, complete=True) is not None


def test_pauses_are_ignored_without_the_model() -> None:
    ender = TurnEnder(semantic=False)
    assert ender.vad_pause(pause(0, 800)) is None
    first = stop(0, 1000)
    assert ender.vad_stop(first) is first


def test_a_verdict_about_the_continuation_waits_for_its_stop() -> None:
    ender = TurnEnder(semantic=True)
    first = ender.vad_stop(stop(0, 1000, b"one"))
    assert isinstance(first, Hold)
    assert ender.speech_resumed()
    hold = ender.vad_pause(pause(1500, 2300, b"two"))
    assert isinstance(hold, Hold) and hold.audio == b"onetwo"
    # The verdict comes while the VAD still counts the silence: nothing is cut yet.
    assert ender.verdict(hold.generation, complete=True) is None
    assert ender.expire(hold.generation) is None
    turn = ender.vad_stop(stop(1500, 2500, b"two"))
    assert isinstance(turn, SpeechStop) and turn.audio == b"onetwo"
