"""Numbers, letters and codes as people say them ("fourteen C", "A B C one two three").

Pure functions over text: speech-to-text hands us words, tools want `14C` or `123`.

Rules:
- A run of single digits is read digit by digit: "one two three" -> "123".
- Words that compose are added: "twenty three" -> "23", "one hundred and five" -> "105".
- Groups that cannot compose are concatenated: "nineteen eighty four" -> "1984".
- Letters are single-letter words ("c") or NATO words ("charlie"); they join adjacent
  numbers into one code: "fourteen C" -> "14C". Typed codes ("ABC123") pass through.
- A lone one-letter word is not a code: "a" and "I" are far more often just words.
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceagent.stems import words

_UNITS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
}
_TEENS = {
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
}
_TENS = {
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000}
_NATO = {
    "alpha": "A",
    "alfa": "A",
    "bravo": "B",
    "charlie": "C",
    "delta": "D",
    "echo": "E",
    "foxtrot": "F",
    "golf": "G",
    "hotel": "H",
    "india": "I",
    "juliet": "J",
    "juliett": "J",
    "kilo": "K",
    "lima": "L",
    "mike": "M",
    "november": "N",
    "oscar": "O",
    "papa": "P",
    "quebec": "Q",
    "romeo": "R",
    "sierra": "S",
    "tango": "T",
    "uniform": "U",
    "victor": "V",
    "whiskey": "W",
    "whisky": "W",
    "xray": "X",
    "x-ray": "X",
    "yankee": "Y",
    "zulu": "Z",
}
NUMBER_WORDS = frozenset(_UNITS) | frozenset(_TEENS) | frozenset(_TENS) | frozenset(_SCALES)


def _is_number_word(word: str) -> bool:
    return word in NUMBER_WORDS


def parse_number_words(tokens: list[str]) -> str | None:
    """Digits for a run of number words, or None when the run is not all numbers.

    Digits typed as digits ("1", "23") may be mixed in. "and" is allowed only right
    after "hundred"/"thousand" ("one hundred and five").
    """
    groups: list[str] = []
    value: int | None = None  # the group being composed
    small = 0  # part below the last scale inside the group
    last_kind = ""  # "unit", "teen", "tens", "scale", "digits"

    def close() -> None:
        nonlocal value, small, last_kind
        if value is not None:
            groups.append(str(value + small))
        value, small, last_kind = None, 0, ""

    for index, raw in enumerate(tokens):
        word = raw.lower()
        if word == "and":
            nxt = tokens[index + 1].lower() if index + 1 < len(tokens) else ""
            if last_kind != "scale" or not _is_number_word(nxt):
                return None
            continue
        if word.isdigit():
            close()
            groups.append(word)
            continue
        if word in _UNITS:
            if value is not None and last_kind in ("tens", "scale") and small % 10 == 0:
                small += _UNITS[word]
                last_kind = "unit"
            else:
                close()
                value, small, last_kind = 0, _UNITS[word], "unit"
        elif word in _TEENS:
            if value is not None and last_kind == "scale":
                small += _TEENS[word]
                last_kind = "teen"
            else:
                close()
                value, small, last_kind = 0, _TEENS[word], "teen"
        elif word in _TENS:
            if value is not None and last_kind == "scale" and small == 0:
                small += _TENS[word]
            else:
                close()
                value, small = 0, _TENS[word]
            last_kind = "tens"
        elif word in _SCALES:
            scale = _SCALES[word]
            if value is None:
                value, small = 0, 1  # "hundred" alone means one hundred
            if small == 0 and value == 0:
                small = 1
            if scale == 100:
                value += small * 100
            else:
                value = (value + small) * 1000
            small = 0
            last_kind = "scale"
        else:
            return None
    close()
    return "".join(groups) if groups else None


def letter_of(word: str) -> str | None:
    """The letter a word spells ("c" -> "C", "charlie" -> "C"), else None."""
    low = word.lower()
    if len(low) == 1 and low.isalpha():
        return low.upper()
    return _NATO.get(low)


@dataclass(frozen=True, slots=True)
class Code:
    """A spelled code found in an utterance: its text and the word span it came from."""

    text: str
    start: int  # index of its first word
    end: int  # index after its last word


def _token_kind(word: str) -> str:
    low = word.lower()
    if _is_number_word(low) or low.isdigit():
        return "number"
    if low == "and":
        return "and"
    if letter_of(low) is not None and len(low) == 1:
        return "letter"
    if low in _NATO:
        return "nato"
    if low.isalnum() and any(c.isdigit() for c in low):
        return "alnum"
    return ""


def _flush_numbers(numbers: list[str], parts: list[str]) -> bool:
    """Move a pending run of number words into `parts` as digits; False if unreadable."""
    if numbers:
        digits = parse_number_words(numbers)
        if digits is None:
            return False
        parts.append(digits)
        numbers.clear()
    return True


def find_codes(text: str) -> list[Code]:
    """Every spelled code in `text`, in order ("seat fourteen c" -> [Code("14C", 1, 3)])."""
    tokens = words(text)
    codes: list[Code] = []
    index = 0
    while index < len(tokens):
        if _token_kind(tokens[index]) in ("", "and"):
            index += 1
            continue
        start = index
        parts: list[str] = []
        numbers: list[str] = []
        letters_only = True

        while index < len(tokens):
            kind = _token_kind(tokens[index])
            after_scale = bool(numbers) and numbers[-1].lower() in _SCALES
            if kind == "number" or (kind == "and" and after_scale):
                numbers.append(tokens[index])
                letters_only = False
            elif kind in ("letter", "nato"):
                if not _flush_numbers(numbers, parts):
                    break
                parts.append(letter_of(tokens[index]) or "")
            elif kind == "alnum":
                if not _flush_numbers(numbers, parts):
                    break
                parts.append(tokens[index].upper())
                letters_only = False
            else:
                break
            index += 1
        # A trailing "and" is a conjunction, not part of the number.
        while numbers and numbers[-1].lower() == "and":
            numbers.pop()
            index -= 1
        if not _flush_numbers(numbers, parts):
            index = start + 1
            continue
        text_code = "".join(parts)
        span_words = index - start
        if text_code and not (letters_only and span_words < 2):
            codes.append(Code(text_code, start, index))
    return codes


def find_numbers(text: str) -> list[int]:
    """The numbers in `text`, spoken or typed: "I have two bags" -> [2]."""
    found: list[int] = []
    for code in find_codes(text):
        if code.text.isdigit():
            found.append(int(code.text))
    return found
