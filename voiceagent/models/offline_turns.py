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

from voiceagent.speech.turn_detector import (
    SmartTurnDetector,
    TurnModelError,
    TurnVerdict,
    load_turn_detector,
)
from voiceagent.speech.turn_end import EARLY_PAUSE_MS, Eagerness, Hold, TurnEnder
from voiceagent.speech.vad import SpeechPause, SpeechStop, VadConfig

log = logging.getLogger(__name__)

_BACKSTOP_EXTRA_S = 1.0


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
        commit: Callable[[SpeechStop], Awaitable[None]],
    ) -> None:
        self._detector = detector
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
        decision = self._ender.vad_stop(stop)
        if isinstance(decision, Hold):
            self._nursery.start_soon(self._decide, decision)
        elif decision is not None:
            await self._commit(decision)

    async def audio_fed(self, audio_ms: int) -> None:
        if self._ender.holding:
            due = self._ender.tick(audio_ms)
            if due is not None:
                await self._commit(due)

    def flush(self, stop: SpeechStop | None) -> SpeechStop | None:
        """An explicit commit: the held turn (if any) joined with `stop`."""
        return self._ender.flush(stop)

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
            due = self._ender.verdict(hold.generation, complete)
            if due is None and not complete:
                await trio.sleep(self._ender.max_delay_ms / 1000 + _BACKSTOP_EXTRA_S)
                due = self._ender.expire(hold.generation)
        if due is not None:
            await self._commit(due)


async def _no_commit(stop: SpeechStop) -> None:
    """What a detached gate commits to: nothing (its connection is closed)."""
