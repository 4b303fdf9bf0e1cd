"""Output guardrails: checks on the assistant's text while it streams.

An `OutputGuardrail` is a name and a sync function `text -> bool | GuardrailResult`
(True or a tripped result means "stop this response"). A `GuardrailMonitor` serves one
response: `feed()` each text delta, `finish()` at the end. It runs the checks on the
text so far only when `debounce_chars` new characters arrived since the last run (a
check per delta would cost more than the delta), and once more at `finish()`.

Rules: the first trip is reported once (feed/finish return it) and the monitor then
stays tripped and silent. A check that raises counts as tripped (fail closed) and the
reason says so. Checks are expected to be cheap (a regex, a word list): they run on the
event loop. The text kept is bounded: past `max_chars` only the last `max_chars`
characters are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import overload

DEFAULT_DEBOUNCE_CHARS = 24
DEFAULT_MAX_CHARS = 16_000


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    tripped: bool
    guardrail: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class OutputGuardrail:
    name: str
    check: Callable[[str], bool | GuardrailResult]

    def run(self, text: str) -> GuardrailResult:
        """Run the check; never raises (an exception trips the guardrail)."""
        try:
            outcome = self.check(text)
        except Exception as exc:
            return GuardrailResult(True, self.name, f"guardrail failed: {type(exc).__name__}")
        if isinstance(outcome, GuardrailResult):
            if outcome.guardrail:
                return outcome
            return GuardrailResult(outcome.tripped, self.name, outcome.message)
        return GuardrailResult(bool(outcome), self.name, f"{self.name} tripped" if outcome else "")


@overload
def output_guardrail(func: Callable[[str], bool | GuardrailResult], /) -> OutputGuardrail: ...


@overload
def output_guardrail(
    *, name: str | None = None
) -> Callable[[Callable[[str], bool | GuardrailResult]], OutputGuardrail]: ...


def output_guardrail(
    func: Callable[[str], bool | GuardrailResult] | None = None,
    /,
    *,
    name: str | None = None,
) -> OutputGuardrail | Callable[[Callable[[str], bool | GuardrailResult]], OutputGuardrail]:
    """Make an `OutputGuardrail` from a function; bare or with `name=`."""

    def wrap(f: Callable[[str], bool | GuardrailResult]) -> OutputGuardrail:
        return OutputGuardrail(name or f.__name__, f)

    return wrap(func) if func is not None else wrap


class GuardrailMonitor:
    """Debounced guardrail checks for one streaming response. See the module docstring."""

    def __init__(
        self,
        guardrails: Iterable[OutputGuardrail],
        *,
        debounce_chars: int = DEFAULT_DEBOUNCE_CHARS,
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if debounce_chars < 1 or max_chars < 1:
            raise ValueError("debounce_chars and max_chars must be positive")
        self._guardrails = tuple(guardrails)
        self._debounce = debounce_chars
        self._max = max_chars
        self._text = ""
        self._unchecked = 0
        self.checks_run = 0
        self.tripped: GuardrailResult | None = None

    @property
    def text(self) -> str:
        return self._text

    def feed(self, delta: str) -> GuardrailResult | None:
        """Add streamed text; a tripped result the first time a check trips, else None."""
        if self.tripped is not None or not self._guardrails:
            return None
        self._text += delta
        if len(self._text) > self._max:
            self._text = self._text[-self._max :]
        self._unchecked += len(delta)
        if self._unchecked < self._debounce:
            return None
        return self._check()

    def finish(self) -> GuardrailResult | None:
        """The response is complete: check whatever was not checked yet."""
        if self.tripped is not None or not self._guardrails or self._unchecked == 0:
            return None
        return self._check()

    def _check(self) -> GuardrailResult | None:
        self._unchecked = 0
        self.checks_run += 1
        for guardrail in self._guardrails:
            result = guardrail.run(self._text)
            if result.tripped:
                self.tripped = result
                return result
        return None
