"""When a turn ends: VAD silence, then (optionally) the semantic end-of-turn model.

Rules of this module:

* It is sans-I/O: `TurnEnder` turns VAD stops, model verdicts and the passing of input
  audio into "commit this turn now" answers. It never sleeps or runs the model; the
  offline model (and benchmarks/turn_taking.py, which replays the same rules) does.
* Time is *input-audio time* (ms of audio fed), like the VAD's, so the rules do not
  depend on how fast audio arrives. The offline model adds a wall-clock backstop for
  a client that stops sending audio altogether (see `expire()`).
* Without a model (`semantic=False`) every VAD stop is a turn, exactly as before.

Theory of operation
-------------------
With the model, a VAD stop (silence_duration_ms of silence) is *held*, not committed,
and the model is asked about the audio so far. It is asked early: the VAD reports a
pause (`SpeechPause`, ~300 ms of silence) before its stop (500 ms), the model runs
while the silence goes on, and a verdict that arrives before the stop is kept for it
(so a finished turn ends when VAD-only would have ended it, not a model run later):

    IDLE  --VAD pause----------------------------> ask the model (early)
    IDLE  --VAD stop-----------------------------> HELD (verdict pending or known)
    HELD  --verdict "complete"-------------------> commit           -> IDLE
          --verdict "still talking"--------------> HELD (waiting)
          --speech again (VAD start)-------------> the turn goes on  (no new item)
          --max_delay_ms of audio since the stop-> commit            -> IDLE
          --explicit commit / a cut utterance----> commit            -> IDLE

When speech resumes, the next VAD stop carries only the new audio: it is joined to
the held part (the turn is one item with one transcript) and the model is asked
again about the whole. Each hold has a generation number, so a verdict that arrives
after the speaker went on talking is ignored. A turn whose joined audio reaches
`max_turn_ms` is committed at once (memory stays bounded).
"""

from __future__ import annotations

from dataclasses import dataclass

from voiceagent.speech.vad import SpeechPause, SpeechStop


@dataclass(frozen=True, slots=True)
class Eagerness:
    """How eager the end of turn is: the model's probability above which the speaker is
    done, and the longest the model may hold a turn after the VAD's silence."""

    threshold: float
    max_delay_ms: int


#: VOICEAGENT_VAD_EAGERNESS, as the Realtime API's semantic_vad: "low" lets the speaker
#: take their time, "high" ends turns soonest ("auto" is "medium"). Measured trade-off
#: per level: benchmarks/results/turn_taking.md.
EAGERNESS = {
    "low": Eagerness(0.9, 6000),
    "medium": Eagerness(0.7, 3000),
    "auto": Eagerness(0.7, 3000),
    "high": Eagerness(0.5, 1500),
}
#: silence before the model is asked early (VadConfig.pause_ms). At least the VAD's 250 ms
#: tail, so the audio asked about is the audio the VAD stop carries; with the default
#: 500 ms VAD silence it gives the model a ~210 ms head start (a decision takes ~100-200
#: ms on a loaded 2-core machine, see benchmarks/turn_taking.py).
EARLY_PAUSE_MS = 260


@dataclass(frozen=True, slots=True)
class Hold:
    """A turn waiting for the model: ask about `audio` and answer with `generation`."""

    generation: int
    audio: bytes


class TurnEnder:
    """Joins VAD utterances into turns; see the module docstring. One per audio stream."""

    def __init__(
        self, *, semantic: bool, max_delay_ms: int = 3000, max_turn_ms: int = 60_000
    ) -> None:
        if max_delay_ms < 0:
            raise ValueError("max_delay_ms must be >= 0")
        self.semantic = semantic
        self.max_delay_ms = max_delay_ms
        self.max_turn_ms = max_turn_ms
        self._held: SpeechStop | None = None
        self._generation = 0
        self._resumed = False  # the held turn's speaker is talking again
        self._asked = -1  # the generation the model was asked about at a pause
        self._early: bool | None = None  # its verdict, when it came before the stop

    @property
    def generation(self) -> int:
        """The current hold's number: what a verdict or a commit now would be about."""
        return self._generation

    @property
    def holding(self) -> bool:
        """True while a turn waits for the model, more speech or the max delay."""
        return self._held is not None and not self._resumed

    def vad_pause(self, pause: SpeechPause) -> Hold | None:
        """A pause before the VAD's stop: a `Hold` to ask the model about early."""
        if not self.semantic or self.max_delay_ms == 0:
            return None
        self._generation += 1
        self._asked, self._early = self._generation, None
        held = self._held.audio if self._held is not None else b""
        return Hold(self._generation, held + pause.audio)

    def vad_stop(self, stop: SpeechStop) -> SpeechStop | Hold | None:
        """The VAD heard silence: the turn to commit now, a `Hold` to ask the model
        about, or None (held; the model was already asked at the pause)."""
        joined = _join(self._held, stop)
        # The silence that stopped the speech is the one of the latest pause, if any.
        asked = self._asked == self._generation
        early = self._early if asked else None
        if not asked:
            self._generation += 1
        self._resumed = False
        too_long = joined.audio_end_ms - joined.audio_start_ms >= self.max_turn_ms
        if not self.semantic or stop.truncated or too_long or self.max_delay_ms == 0 or early:
            self._held = None
            self._generation += 1
            return joined
        self._held = joined
        return None if asked else Hold(self._generation, joined.audio)

    def speech_resumed(self) -> bool:
        """The VAD heard speech start: True when it continues a held turn (no new item)."""
        if self._held is None:
            return False
        self._generation += 1  # any verdict in flight is about less than the whole turn
        self._resumed = True
        return True

    def verdict(self, generation: int, complete: bool) -> SpeechStop | None:
        """The model answered for `generation`: the turn to commit, or None."""
        if generation != self._generation:
            return None
        if self._held is None or self._resumed:  # asked at a pause: the stop will use it
            if generation == self._asked:
                self._early = complete
            return None
        return self._release() if complete else None

    def tick(self, audio_ms: int) -> SpeechStop | None:
        """Input audio reached `audio_ms`: the held turn once max_delay_ms has passed."""
        held = self._held
        if held is None or self._resumed or audio_ms - held.audio_end_ms < self.max_delay_ms:
            return None
        return self._release(audio_ms)

    def expire(self, generation: int) -> SpeechStop | None:
        """Wall-clock backstop: commit `generation` if it is still the one held."""
        if self._held is None or self._resumed or generation != self._generation:
            return None
        return self._release()

    def flush(self, stop: SpeechStop | None = None) -> SpeechStop | None:
        """An explicit commit: the held turn joined with `stop` (either may be None)."""
        held, self._held = self._held, None
        self._generation += 1
        self._resumed = False
        if held is None:
            return stop
        return _join(held, stop) if stop is not None else held

    def _release(self, audio_ms: int | None = None) -> SpeechStop:
        held = self._held
        assert held is not None
        self._held = None
        self._generation += 1
        self._resumed = False
        if audio_ms is None:
            return held
        return SpeechStop(held.audio_start_ms, max(audio_ms, held.audio_end_ms), held.audio)


def _join(first: SpeechStop | None, second: SpeechStop) -> SpeechStop:
    if first is None:
        return second
    return SpeechStop(
        audio_start_ms=first.audio_start_ms,
        audio_end_ms=second.audio_end_ms,
        audio=first.audio + second.audio,
        truncated=second.truncated,
    )
