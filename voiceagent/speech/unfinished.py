"""Words that leave a sentence open: the lexical half of the offline end of turn.

The acoustic end-of-turn model hears intonation only. A caller who pauses after "my
phone number is" or after the first three digits of a number often sounds finished to
it; the words say otherwise. `sounds_unfinished()` looks at the end of a transcript:

* it ends with a word that does not end an English sentence: an article, a possessive,
  a conjunction, most prepositions, a form of "to be", a filler ("um", "uh");
* or it ends while a number or code is being read out: a run of spelled digits and
  single letters ("five five five", "x r seven") shorter than `MIN_NUMBER_ITEMS`. People
  read numbers in groups of two to four; a whole number, code or card ending read out
  is rarely shorter than four characters. "and" / "or" between two digits continue the
  run ("two one three, and four four seven nine").

It only ever *delays* a turn that the acoustic model called finished: the turn is then
held until more speech, or the eagerness's max delay. Pure functions, no I/O.

The lists are English: the offline recogniser (pocketsphinx en-US) transcribes English
only, so for other languages the check says "not unfinished" and the acoustic verdict
stands.
"""

from __future__ import annotations

import re

#: words after which an English sentence is almost never over
OPEN_ENDINGS = frozenset(
    (
        "a an the "  # articles
        "my your our their his her its "  # possessives
        "and or but because if than nor "  # conjunctions
        "to of for from with at by into onto about as via "  # prepositions
        "is are was were am be "  # "my number is ..."
        "um uh er erm uhm"  # fillers
    ).split()
)
DIGITS = frozenset("zero oh one two three four five six seven eight nine".split())
#: digits or letters read out: a run shorter than this is a number still being read
MIN_NUMBER_ITEMS = 4
_JOINERS = frozenset(("and", "or"))
_WORD = re.compile(r"[a-z0-9'-]+")


def _spelled(word: str) -> bool:
    """A digit word, a numeral or a letter read out alone ("x", "r"; not "a" or "i")."""
    return word in DIGITS or word.isdigit() or (len(word) == 1 and word not in ("a", "i"))


def number_run(words: list[str]) -> int:
    """How many digits and letters the transcript ends with (see the module docstring)."""
    items = 0
    index = len(words) - 1
    while index >= 0:
        word = words[index]
        if _spelled(word):
            items += len(word) if word.isdigit() else 1
        elif not (word in _JOINERS and items and index > 0 and _spelled(words[index - 1])):
            break
        index -= 1
    return items


def sounds_unfinished(transcript: str, language: str = "en") -> bool:
    """True when `transcript` ends where a sentence cannot: hold the turn."""
    if language.split("-")[0].lower() != "en":
        return False
    words = _WORD.findall(transcript.lower())
    if not words:
        return False  # nothing heard: the acoustic verdict stands
    if words[-1] in OPEN_ENDINGS:
        return True
    return 0 < number_run(words) < MIN_NUMBER_ITEMS
