"""Numbers, letters and codes as speech recognition writes them."""

from __future__ import annotations

import pytest

from voiceagent.brain.spoken import find_codes, find_numbers, parse_number_words


@pytest.mark.parametrize(
    ("said", "digits"),
    [
        ("one two three", "123"),
        ("fourteen", "14"),
        ("twenty three", "23"),
        ("one hundred and five", "105"),
        ("one hundred twenty", "120"),
        ("two thousand twenty four", "2024"),
        ("nineteen eighty four", "1984"),
        ("zero seven", "07"),
        ("sixty", "60"),
        ("4 5 6", "456"),
    ],
)
def test_number_words_become_digits(said: str, digits: str) -> None:
    assert parse_number_words(said.split()) == digits


def test_non_number_words_are_not_numbers() -> None:
    assert parse_number_words(["one", "banana"]) is None
    assert parse_number_words(["one", "and", "two"]) is None


@pytest.mark.parametrize(
    ("said", "code"),
    [
        ("fourteen C", "14C"),
        ("seat fourteen c please", "14C"),
        ("A B C one two three", "ABC123"),
        ("my confirmation is a b c one two three", "ABC123"),
        ("it's ABC123", "ABC123"),
        ("14 C", "14C"),
        ("charlie delta echo four five six", "CDE456"),
        ("x-ray yankee zulu nine", "XYZ9"),
    ],
)
def test_spelled_codes_are_joined(said: str, code: str) -> None:
    assert [c.text for c in find_codes(said)] == [code]


def test_two_codes_in_one_sentence_stay_apart() -> None:
    codes = find_codes("confirmation a b c one two three and seat fourteen c")
    assert [c.text for c in codes] == ["ABC123", "14C"]
    assert codes[0].start == 1  # the word right after "confirmation"


@pytest.mark.parametrize("said", ["I want a window seat", "can I bring a bag", "I am here"])
def test_ordinary_words_a_and_i_are_not_codes(said: str) -> None:
    assert find_codes(said) == []


def test_numbers_in_a_sentence() -> None:
    assert find_numbers("I have two bags and one hundred and five dollars") == [2, 105]
    assert find_numbers("no numbers here") == []
