"""Group streamed text deltas into pushes at phrase and sentence boundaries (sans-I/O).

Rules:
- Text is never rewritten: pushes concatenated equal the input (Cartesia joins inputs
  verbatim, so trailing spaces stay with the push they end).
- A boundary is sentence or phrase punctuation followed by whitespace, or a newline.
  The text up to the last boundary in the buffer is pushed; the rest waits.
- The first push of a response carries at least `min_first_words` words, so the voice
  has enough context for its prosody; later pushes go out at any boundary.
- A run of `max_words` words without punctuation (`first_max_words` for the first push,
  where waiting costs the most) is pushed up to its last space, so a model that writes
  long clauses is still voiced while it writes.
- `stale()` (called by the owner when no text came for a while) releases what is
  buffered up to the last space; `finish()` releases everything.
"""

from __future__ import annotations

import re

# Punctuation that ends a phrase or sentence, followed by the whitespace that keeps it.
_BOUNDARY = re.compile(r"[.!?;:,\u2026\u3002\uff01\uff1f)\]\"']+\s+|\n\s*")


class TextAggregator:
    def __init__(
        self, *, min_first_words: int = 4, first_max_words: int = 8, max_words: int = 16
    ) -> None:
        self.min_first_words = min_first_words
        self.first_max_words = max(first_max_words, min_first_words)
        self.max_words = max_words
        self._buffer = ""
        self._pushed_any = False

    @property
    def pending(self) -> str:
        return self._buffer

    def feed(self, delta: str) -> list[str]:
        """Add a delta; return the pushes it makes ready (usually zero or one)."""
        self._buffer += delta
        pushes = self._take(self._boundary_cut())
        limit = self.max_words if self._pushed_any else self.first_max_words
        if not pushes and len(self._buffer.split()) > limit:
            pushes = self._take(self._space_cut())
        return pushes

    def stale(self) -> list[str]:
        """Release words buffered up to the last space (the writer has paused)."""
        return self._take(self._space_cut())

    def finish(self) -> str:
        """Everything left; the aggregator is ready for a new response afterwards."""
        rest, self._buffer, self._pushed_any = self._buffer, "", False
        return rest

    def _boundary_cut(self) -> int | None:
        cut = None
        for match in _BOUNDARY.finditer(self._buffer):
            cut = match.end()
        return cut

    def _space_cut(self) -> int | None:
        stripped = self._buffer.rstrip()
        last_space = max(stripped.rfind(" "), stripped.rfind("\t"))
        if last_space <= 0:
            return None
        # Keep the run of spaces with the pushed words.
        cut = last_space + 1
        while cut < len(self._buffer) and self._buffer[cut].isspace():
            cut += 1
        return cut

    def _take(self, cut: int | None) -> list[str]:
        if not cut:
            return []
        head = self._buffer[:cut]
        if not self._pushed_any and len(head.split()) < self.min_first_words:
            return []
        self._buffer = self._buffer[cut:]
        self._pushed_any = True
        return [head]
