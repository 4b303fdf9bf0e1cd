"""Which tool does an utterance ask for? Word overlap against the tools' own schemas.

Each tool gets a bag of weighted word stems from what the graph already says about it:
its name (strongest), its example phrases, its description, its parameter names and
their descriptions (weakest). A stem shared by several tools counts less for each of
them, and consecutive word pairs that also occur in an example earn a bonus, as does a
run of three or more words said exactly as in an example ("where is my order"). Handoff
tools score a little below direct tools, so an agent uses its own tool before passing
the caller on. Everything is deterministic: ties go to the tool listed first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from voiceagent.conversation import ToolSpec
from voiceagent.handoffs import is_transfer
from voiceagent.stems import content_stems, words

# Below this a request is "not something I can do".
MATCH_THRESHOLD = 1.0
_HANDOFF_FACTOR = 0.9
_BIGRAM_BONUS = 1.0
_RUN_BONUS_PER_WORD = 0.5
_MIN_RUN = 3
# Spoken requests are short; a pasted essay is matched on its start only, which keeps a
# reply well under a millisecond whatever the client sends.
MAX_MATCH_CHARS = 240
_MAX_RUN = 6  # longer shared runs earn no more
_CONTRACTIONS = (
    ("n't", " not"),
    ("'re", " are"),
    ("'s", " is"),
    ("'d", " would"),
    ("'ll", " will"),
    ("'m", " am"),
    ("'ve", " have"),
)

_W_NAME = 3.0
_W_EXAMPLE = 2.0
_W_DESCRIPTION = 2.0
_W_PARAM_NAME = 1.0
_W_PARAM_DESCRIPTION = 0.5


def plain_words(text: str) -> list[str]:
    """Lowercase words with contractions spelled out ("what's" -> "what", "is")."""
    low = text.lower().replace("\u2019", "'")
    for short, long in _CONTRACTIONS:
        low = low.replace(short, long)
    return words(low.replace("_", " "))


def _runs(
    words_: Sequence[str], longest: int, vocabulary: frozenset[str] | None = None
) -> set[tuple[str, ...]]:
    """Every stretch of `_MIN_RUN` to `longest` consecutive words (from `vocabulary` only)."""
    found: set[tuple[str, ...]] = set()
    segment: list[str] = []
    for word in [*words_, ""]:
        if word and (vocabulary is None or word in vocabulary):
            segment.append(word)
            continue
        for size in range(_MIN_RUN, min(longest, len(segment)) + 1):
            for start in range(len(segment) - size + 1):
                found.add(tuple(segment[start : start + size]))
        segment = []
    return found


@dataclass(slots=True)
class _ToolProfile:
    name: str
    handoff: bool
    weights: dict[str, float] = field(default_factory=dict)
    bigrams: set[tuple[str, str]] = field(default_factory=set)
    runs: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, stems: Iterable[str], weight: float) -> None:
        for s in stems:
            if weight > self.weights.get(s, 0.0):
                self.weights[s] = weight


def _profile(spec: ToolSpec) -> _ToolProfile:
    profile = _ToolProfile(spec.name, is_transfer(spec.name))
    profile.add(content_stems(spec.name), _W_NAME)
    for example in spec.examples:
        stems = content_stems(example)
        profile.add(stems, _W_EXAMPLE)
        profile.bigrams.update(pairwise(stems))
        profile.runs |= _runs(plain_words(example), _MAX_RUN)
    profile.add(content_stems(spec.description), _W_DESCRIPTION)
    properties = spec.parameters.get("properties", {})
    for param, schema in properties.items():
        profile.add(content_stems(param), _W_PARAM_NAME)
        if isinstance(schema, dict):
            profile.add(content_stems(str(schema.get("description", ""))), _W_PARAM_DESCRIPTION)
    return profile


class ToolMatcher:
    """Scores utterances against one agent's tools. Build once per agent setup."""

    def __init__(self, tools: Sequence[ToolSpec]) -> None:
        self._profiles = [_profile(spec) for spec in tools]
        share: dict[str, int] = {}
        for profile in self._profiles:
            for s in profile.weights:
                share[s] = share.get(s, 0) + 1
        for profile in self._profiles:
            for s in profile.weights:
                profile.weights[s] /= share[s]
        self._example_words = frozenset(w for p in self._profiles for run in p.runs for w in run)

    def scores(self, utterance: str) -> list[tuple[str, float]]:
        """(tool name, score) for every tool, in the tools' order."""
        utterance = utterance[:MAX_MATCH_CHARS]
        stems = content_stems(utterance)
        pairs = set(pairwise(stems))
        said = _runs(plain_words(utterance), _MAX_RUN, self._example_words)
        result = []
        for profile in self._profiles:
            score = sum(profile.weights.get(s, 0.0) for s in set(stems))
            score += _BIGRAM_BONUS * len(pairs & profile.bigrams)
            run = max((len(r) for r in said & profile.runs), default=0)
            if run >= _MIN_RUN:
                score += _RUN_BONUS_PER_WORD * run
            if profile.handoff:
                score *= _HANDOFF_FACTOR
            result.append((profile.name, score))
        return result

    def best(self, utterance: str, *, exclude: Iterable[str] = ()) -> tuple[str, float] | None:
        """The best tool scoring at least `MATCH_THRESHOLD`, or None."""
        excluded = set(exclude)
        best: tuple[str, float] | None = None
        for name, score in self.scores(utterance):
            if name in excluded or score < MATCH_THRESHOLD:
                continue
            if best is None or score > best[1]:
                best = (name, score)
        return best
