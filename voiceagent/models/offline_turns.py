"""The offline model's end of turn: VAD silence, then the semantic model when enabled.

Rules of this module:

* `TurnGate` sits between the VAD's events and the offline connection's commit. The
  rules (hold, join, max delay) live in `voiceagent.speech.turn_end.TurnEnder`; this
  module only runs them: it asks the model in a task of the connection's nursery and
  calls `commit` when a turn ends.
* Without a detector (VOICEAGENT_TURN_DETECTION=server_vad, or the model is not
  installed) every VAD stop is committed at once, exactly as before.
* A model error never loses a turn: the held turn is committed as VAD-only would have.
* A decision task is cancelled with the connection's nursery; its worker thread is
  abandoned and finishes on its own. A verdict that arrives after the speaker went on
  talking is ignored (generation numbers).
* Words: when the acoustic model calls a held turn complete, the gate also asks the
  recogniser for the words so far (`transcribe`, when given) and holds the turn when
  they end where a sentence cannot (`voiceagent.speech.unfinished`). The transcript is
  handed to `commit` with the turn, so the committed turn is not decoded twice: a
  finished turn's words are ready sooner than with VAD-only, whose decode starts at
  the VAD stop. A recogniser error, or words slower than the max delay, keep the
  acoustic verdict.
* Max delay: input-audio time (`audio_fed`) ends a held turn after `max_delay_ms`; a
  wall-clock backstop of the same length plus one second covers a client that stops
  sending audio altogether.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import replace

import trio

from voiceagent.speech.stt import SpeechRecognitionError
from voiceagent.speech.turn_detector import (
    SmartTurnDetector,
    TurnModelError,
    TurnVerdict,
    load_turn_detector,
)
from voiceagent.speech.turn_end import EARLY_PAUSE_MS, Eagerness, Hold, TurnEnder
from voiceagent.speech.unfinished import sounds_unfinished
from voiceagent.speech.vad import SpeechPause, SpeechStop, VadConfig

log = logging.getLogger(__name__)

_BACKSTOP_EXTRA_S = 1.0

#: what a turn is committed with: its audio, and its transcript when already made
Commit = Callable[[SpeechStop, str | None], Awaitable[None]]
Transcribe = Callable[[bytes], Awaitable[str]]


class TurnModel:
    """The end-of-turn model of one offline model: loaded once, on first use, when on."""

    def __init__(self, enabled: bool, detector: SmartTurnDetector | None = None) -> None:
        self.enabled = enabled
        self._detector = detector
        self._loaded = detector is not None
        self._lock = trio.Lock()

    async def get(self) -> SmartTurnDetector | None:
        """The detector, or None when off or not installed (~150 ms to load, in a thread)."""
        if not self.enabled:
            return None
        async with self._lock:
            if not self._loaded:
                self._detector = await trio.to_thread.run_sync(load_turn_detector)
                self._loaded = True
                if self._detector is None:
                    log.warning(
                        "semantic turn detection is on but its model is not installed "
                        "(pip install --no-deps pipecat-ai): turns end on VAD silence"
                    )
        return self._detector


def vad_config_for(vad: VadConfig, semantic: bool) -> VadConfig:
    """The VAD settings of a stream: with the model, it also reports early pauses."""
    if not semantic or vad.silence_duration_ms <= EARLY_PAUSE_MS + 32:
        return vad
    return replace(vad, pause_ms=EARLY_PAUSE_MS)


class TurnGate:
    """One audio stream's end-of-turn decisions; see the module docstring."""

    def __init__(
        self,
        detector: SmartTurnDetector | None,
        *,
        eagerness: Eagerness,
        max_turn_ms: int,
        nursery: trio.Nursery,
        commit: Commit,
        transcribe: Transcribe | None = None,
        language: str = "en",
    ) -> None:
        self._detector = detector
        self._transcribe = transcribe
        self._language = language
        #: (generation, transcript) of the latest words asked for
        self._words: tuple[int, str] | None = None
        #: turns the acoustic model called complete and the words held (tests read it)
        self.held_by_words = 0
        self._ender = TurnEnder(
            semantic=detector is not None,
            max_delay_ms=eagerness.max_delay_ms,
            max_turn_ms=max_turn_ms,
        )
        self._threshold = eagerness.threshold
        self._nursery = nursery
        self._commit = commit
        #: the latest verdicts (benchmarks and tests read them)
        self.verdicts: deque[TurnVerdict] = deque(maxlen=64)

    def detach(self) -> None:
        """Forget the commit callback once the connection is over: it is the
        connection's bound method, and keeping it would make a reference cycle."""
        self._commit = _no_commit

    @property
    def semantic(self) -> bool:
        return self._detector is not None

    def speech_started(self) -> bool:
        """True when this speech continues a held turn (the caller starts no new item)."""
        return self._ender.speech_resumed()

    def speech_paused(self, pause: SpeechPause) -> None:
        hold = self._ender.vad_pause(pause)
        if hold is not None:
            self._nursery.start_soon(self._decide, hold)

    async def speech_stopped(self, stop: SpeechStop) -> None:
        generation = self._ender.generation
        decision = self._ender.vad_stop(stop)
        if isinstance(decision, Hold):
            self._nursery.start_soon(self._decide, decision)
        elif decision is not None:
            await self._commit(decision, self._words_of(generation))

    async def audio_fed(self, audio_ms: int) -> None:
        if self._ender.holding:
            generation = self._ender.generation
            due = self._ender.tick(audio_ms)
            if due is not None:
                await self._commit(due, self._words_of(generation))

    def flush(self, stop: SpeechStop | None) -> SpeechStop | None:
        """An explicit commit: the held turn (if any) joined with `stop`."""
        self._words = None
        return self._ender.flush(stop)

    def _words_of(self, generation: int) -> str | None:
        """The transcript made for `generation`: the same speech as the turn committed
        now (any new speech starts a new generation), only with more silence after."""
        words, self._words = self._words, None
        return words[1] if words is not None and words[0] == generation else None

    async def _decide(self, hold: Hold) -> None:
        assert self._detector is not None
        try:
            verdict = await self._detector.decide(hold.audio)
        except TurnModelError as exc:
            log.warning("end-of-turn model failed, ending the turn on silence: %s", exc)
            due = self._ender.expire(hold.generation)
        else:
            self.verdicts.append(verdict)
            complete = verdict.probability > self._threshold
            if complete and self._transcribe is not None:
                complete = await self._words_say_complete(hold)
            due = self._ender.verdict(hold.generation, complete)
            if due is None and not complete:
                await trio.sleep(self._ender.max_delay_ms / 1000 + _BACKSTOP_EXTRA_S)
                due = self._ender.expire(hold.generation)
        if due is not None:
            await self._commit(due, self._words_of(hold.generation))

    async def _words_say_complete(self, hold: Hold) -> bool:
        assert self._transcribe is not None
        # A recogniser far behind must not hold the turn longer than the max delay would.
        words: str | None = None
        with trio.move_on_after(self._ender.max_delay_ms / 1000):
            try:
                words = await self._transcribe(hold.audio)
            except SpeechRecognitionError as exc:
                log.warning("end-of-turn words unavailable, the model's verdict stands: %s", exc)
                return True
        if words is None:
            log.warning("end-of-turn words too slow, the model's verdict stands")
            return True
        self._words = (hold.generation, words)
        if sounds_unfinished(words, self._language):
            self.held_by_words += 1
            return False
        return True


async def _no_commit(stop: SpeechStop, transcript: str | None) -> None:
    """What a detached gate commits to: nothing (its connection is closed)."""
