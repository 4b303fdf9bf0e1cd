"""Words of English text and their crude stems: what a sentence is about, roughly.

Shared by the agent graph (a handoff's description gains only the sentences of
reachable agents it does not already say) and the offline brain (it matches requests
against tools by these stems). Pure functions over text; they never raise.

Rules:
- `words` splits on anything but letters and digits, keeping "x-ray" and "what's" whole.
- `stem` is crude but consistent: "Seats" -> "seat", "booking" -> "book", "Wi-Fi" ->
  "wifi"; the same word always gives the same stem, which is all matching needs.
- `content_stems` drops `STOPWORDS` (words that carry no intent, plus tool-name
  boilerplate such as "tool", "agent", "transfer") and bare numbers.
"""

from __future__ import annotations

import functools
import re

_WORD_RE = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")

# Words that carry no intent (plus tool-name boilerplate).
STOPWORDS = frozenset(
    """a an the and or but if of to in on at for from by with about as into than then
    i me my mine we us our you your yours he she it its they them their this that these
    those is am are was were be been being do does did doing have has had having can
    could would should will shall may might must please want wanna need like just also
    what whats which who whom whose when where why how hi hello hey there here tell know
    let lets get got give go going some any all more most much many very really okay ok
    so well yes no not dont im its id ill ive thank thanks tool agent transfer one
    lookup new""".split()
)


def words(text: str) -> list[str]:
    """Split text into words, keeping "x-ray" and "what's" whole."""
    return _WORD_RE.findall(text)


@functools.lru_cache(maxsize=4096)
def stem(word: str) -> str:
    """A crude, consistent stem: "Seats" -> "seat", "booking" -> "book", "Wi-Fi" -> "wifi"."""
    low = word.lower().replace("-", "")
    if "'" in low:
        low = low.split("'", 1)[0]
    for suffix, keep in (("ing", 4), ("ed", 4), ("es", 4), ("s", 3)):
        if low.endswith(suffix) and len(low) - len(suffix) >= keep and not low.endswith("ss"):
            low = low[: -len(suffix)]
            break
    if low.endswith("e") and len(low) > 4:
        low = low[:-1]
    return low


def content_stems(text: str) -> list[str]:
    """Stems of the words of `text` that carry meaning, in order."""
    out = []
    for word in words(text.replace("_", " ")):
        low = word.lower().replace("-", "")
        if low in STOPWORDS or low.split("'", 1)[0] in STOPWORDS or low.isdigit():
            continue
        out.append(stem(word))
    return out
