"""The interruption policy: when the user's speech over the agent is a real barge-in.

Pure code: settings and decisions, no tasks, no clocks (the session's
`session/interruptions.py` applies them). Rules:

1. Speech the VAD hears while the agent is audible first *pauses* the agent. It is a
   false interruption, and playback resumes where it paused, when it is
   - shorter than `min_interruption_ms` (of input audio, from the VAD's own start and
     stop), or
   - transcribed as fewer than `min_interruption_words` words, or as nothing, or
   - a backchannel: every word of it is covered by the language's backchannel phrases
     ("yeah", "uh-huh", "mm-hmm", "okay", "right"; "ừ", "vâng", "dạ", "đúng rồi"...), or
   - not transcribed within `false_interruption_timeout_ms` after the speech stopped.
   Otherwise the barge-in is committed. Speech still going on when the timeout passes
   is committed too: no backchannel lasts that long.
2. `resume_false_interruption=False` commits every barge-in at once (no pause).
3. An agent may override any of these (`Agent.interruption`), and may be
   uninterruptible (`Agent.allow_interruptions=False`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Any

# Backchannels: what listeners say to show they follow, not to take the turn. Matched
# whole words (punctuation and case ignored); a phrase may be several words.
BACKCHANNELS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "yeah|yea|yes|yep|yup|uh-huh|uh huh|mm-hmm|mm hmm|mhm|mm|hmm|hm|okay|ok|right|alright"
        "|all right|sure|i see|got it|uh|um|ah|oh|cool|nice|true".split("|")
    ),
    "vi": frozenset(
        "ừ|ừm|ờ|ờ ờ|ừ ừ|vâng|dạ|dạ vâng|đúng rồi|đúng|ok|okay|ừ hử|à|ạ|thế à|vậy à|rồi"
        "|hiểu rồi|được".split("|")
    ),
}

_WORD = re.compile(r"[\w'-]+", re.UNICODE)


@dataclass(frozen=True, slots=True)
class InterruptionSettings:
    """How the user's speech over the agent is judged (module docstring)."""

    resume_false_interruption: bool = True
    min_interruption_ms: int = 500
    min_interruption_words: int = 0
    false_interruption_timeout_ms: int = 2000
    language: str = "en"
    backchannels: frozenset[str] | None = None  # None: BACKCHANNELS[language]

    @classmethod
    def from_settings(cls, settings: Any) -> InterruptionSettings:
        return cls(
            resume_false_interruption=settings.resume_false_interruption,
            min_interruption_ms=settings.min_interruption_ms,
            min_interruption_words=settings.min_interruption_words,
            false_interruption_timeout_ms=settings.false_interruption_timeout_ms,
            language=settings.language,
        )

    def override(self, **changes: Any) -> InterruptionSettings:
        """These settings with `changes` (an agent's overrides; None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def phrases(self) -> frozenset[str]:
        if self.backchannels is not None:
            return frozenset(normalise(p) for p in self.backchannels)
        base = self.language.split("-")[0].lower()
        return BACKCHANNELS.get(base, BACKCHANNELS["en"])

    def judge(self, transcript: str, speech_ms: int | None) -> str | None:
        """Why `transcript` (of `speech_ms` of speech) is *not* an interruption, or None."""
        if speech_ms is not None and speech_ms < self.min_interruption_ms:
            return "too_short"
        words = words_of(transcript)
        if not words:
            return "no_words"
        if len(words) < self.min_interruption_words:
            return "too_few_words"
        if is_backchannel(words, self.phrases()):
            return "backchannel"
        return None

    def clearly_interrupting(self, partial: str) -> bool:
        """A partial transcript that already settles it: more words than any backchannel."""
        words = words_of(partial)
        return len(words) >= max(4, self.min_interruption_words) and not is_backchannel(
            words, self.phrases()
        )


def normalise(text: str) -> str:
    return " ".join(words_of(text))


def words_of(text: str) -> list[str]:
    text = unicodedata.normalize("NFC", text).lower()
    return _WORD.findall(text)


def is_backchannel(words: list[str], phrases: frozenset[str]) -> bool:
    """True when `words` split wholly into backchannel phrases ("yeah okay", "dạ vâng")."""
    if not words:
        return False
    longest = max((len(p.split()) for p in phrases), default=1)
    # reachable[i]: words[:i] splits into phrases (hyphenated forms count either way)
    reachable = [True] + [False] * len(words)
    for start in range(len(words)):
        if not reachable[start]:
            continue
        for size in range(1, min(longest, len(words) - start) + 1):
            chunk = " ".join(words[start : start + size])
            if chunk in phrases or chunk.replace("-", " ") in phrases:
                reachable[start + size] = True
    return reachable[-1]
