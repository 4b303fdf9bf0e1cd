"""Words that leave a sentence open (the lexical half of the offline end of turn)."""

from __future__ import annotations

import pytest

from voiceagent.speech.unfinished import number_run, sounds_unfinished


@pytest.mark.parametrize(
    "transcript",
    [
        "my phone number is",
        "I need a",
        "I want to fly from Boston to",
        "the passengers are Anna and",
        "my card ends in four four",  # two of a card's four last digits
        "my booking code is x r seven",  # three characters of a six-character code
        "my phone number is five five five",
        "five five five and",
        "so um",
    ],
)
def test_a_sentence_left_open_holds_the_turn(transcript: str) -> None:
    assert sounds_unfinished(transcript)


@pytest.mark.parametrize(
    "transcript",
    [
        "",
        "please cancel my booking",
        "thank you that's all",
        "is there wi-fi on board",
        "my card ends in four four one two",
        "five five five two one three or four seven nine",  # "or" between digits
        "my flight is 1234",  # a numeral counts its digits
        "I want to fly to Denver on the twelfth of May",
    ],
)
def test_a_finished_sentence_does_not(transcript: str) -> None:
    assert not sounds_unfinished(transcript)


def test_letters_and_digits_read_out_make_one_run() -> None:
    assert number_run("code x r seven four b two".split()) == 6
    assert number_run("i want a".split()) == 0  # "a" and "i" are words, not letters
    assert number_run("one two and".split()) == 0  # a trailing "and" is not in a run


def test_other_languages_keep_the_acoustic_verdict() -> None:
    # The offline recogniser is English: nothing it hears in another language is judged.
    assert not sounds_unfinished("số điện thoại của tôi là", "vi")
    assert sounds_unfinished("my number is", "en-US")
