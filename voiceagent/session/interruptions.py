"""Speech over the agent: pause, judge, then resume or commit the barge-in.

The policy (what counts as an interruption) is voiceagent/interruption.py; this module
applies it to one room. Rules:

1. Each utterance the model's VAD hears (`SpeechStarted` ... `InputCommitted`) is
   tracked here. Nothing audible when it starts: it is an ordinary turn. Over an
   uninterruptible response: it is not a turn (its input is forgotten) and the
   response plays on. Otherwise, with `resume_false_interruption` and a model that
   holds spoken turns (`ModelConnection.holds_spoken_turns`), the agent *pauses*:
   `playback_pause` goes out at once, the outbox holds the epoch's audio and the
   voice waits (outbox.py, speaker.py). Without them the barge-in is committed at
   once, as it always was.
2. A paused utterance is judged by `InterruptionSettings.judge` when its speech stops
   (too short?), when a partial transcript settles it, when its transcript arrives,
   or when its deadline passes (`false_interruption_timeout_ms` after its speech
   stopped: no transcript, not a turn; or after it started, still speaking: a turn).
3. A turn commits the barge-in exactly as before (responses.py `barge_in`: the epoch
   ends, `audio_interrupted`, zero stale bytes, heard text clamped). Not a turn: once
   no other utterance is being judged, `playback_resume` goes out and the held audio
   follows it; the model is told to forget the input (`answer_input(respond=False)`)
   and the client sees no `user_transcript` for it.
4. Every utterance of a holding model is answered exactly once (`AnswerInput` on the
   control channel, after any `CancelResponse`): respond when it is a turn.
5. A barge-in from elsewhere (the client's `interrupt`, a guardrail) ends any pause:
   the utterances being judged become turns.

Tasks: one deadline watch per pause, in the session's work; it ends when nothing is
left to judge and holds the router only while it runs (no reference cycle).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import trio

from voiceagent.interruption import InterruptionSettings
from voiceagent.logs import log_event
from voiceagent.protocol import event
from voiceagent.session.model_link import AnswerInput, ModelLink
from voiceagent.session.room import Room
from voiceagent.session.wakeup import Wakeup

log = logging.getLogger("voiceagent.session")

MAX_TRACKED = 16  # utterances remembered to match their later events


class BargeIn(Protocol):
    def barge_in(self, source: str) -> None: ...


@dataclass(slots=True)
class _Utterance:
    item_id: str | None
    audio_start_ms: int
    started_at: float
    stopped_at: float | None = None
    speech_ms: int | None = None
    partial: str = ""
    turn: bool | None = None  # None: being judged
    committed: bool = False  # InputCommitted seen (item_id known)
    answered: bool = False


_NONE_TRACKED: deque[_Utterance] = deque(maxlen=0)  # shared, never appended to


class Interruptions:
    def __init__(self, room: Room, link: ModelLink) -> None:
        self._room = room
        self._link = link
        # Made on the first speech over the agent: an empty deque is 760 bytes per room.
        self._utterances: deque[_Utterance] = _NONE_TRACKED
        self._paused_at: float | None = None
        self._paused_rid = ""
        self._changed = Wakeup()
        self._watching = False

    @property
    def settings(self) -> InterruptionSettings:
        base = InterruptionSettings.from_settings(self._room.settings)
        return self._room.agent.interruption_settings(base)

    def _track(self, utterance: _Utterance) -> None:
        if self._utterances is _NONE_TRACKED:
            self._utterances = deque(maxlen=MAX_TRACKED)
        self._utterances.append(utterance)

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def _holding(self) -> bool:
        conn = self._link.connection
        return conn is not None and conn.holds_spoken_turns

    # -- events -----------------------------------------------------------------------

    def speech_started(self, router: BargeIn, item_id: str | None, audio_start_ms: int) -> None:
        now = trio.current_time()
        utterance = _Utterance(item_id, audio_start_ms, now)
        self._track(utterance)
        audible = self._room.turns.heard_now(now)
        if audible is None:
            utterance.turn = True  # rule 1: an ordinary turn
            return
        settings = self.settings
        holding = self._holding()
        if audible.uninterruptible or not self._room.agent.allow_interruptions:
            utterance.turn = not holding  # a model that answers by itself: nothing to do
            log_event(log, "speech_over_uninterruptible", response_id=audible.response_id)
            return
        if not (settings.resume_false_interruption and holding):
            utterance.turn = True
            router.barge_in("model_vad")
            return
        if self._paused_at is None:
            self._paused_at = now
            self._paused_rid = audible.response_id
            self._room.turns.pause(now)
            self._room.outbox.pause(event("playback_pause", response_id=audible.response_id))
            log_event(log, "playback_pause", response_id=audible.response_id)
        self._watch(router)

    def speech_stopped(self, router: BargeIn, item_id: str | None, audio_end_ms: int) -> None:
        utterance = self._find(item_id, lambda u: u.stopped_at is None)
        if utterance is None:
            return
        utterance.stopped_at = trio.current_time()
        utterance.speech_ms = max(0, audio_end_ms - utterance.audio_start_ms)
        if utterance.turn is None and utterance.speech_ms < self.settings.min_interruption_ms:
            self._judge(router, utterance, False, "too_short")
        self._changed.set()

    def input_committed(self, item_id: str) -> bool:
        """Match the committed item to its utterance; False while it is being judged."""
        utterance = self._find(item_id, lambda u: not u.committed)
        if utterance is None:
            # A manual commit, or speech heard before any of this: an ordinary turn.
            utterance = _Utterance(item_id, 0, trio.current_time(), turn=True)
            self._track(utterance)
        utterance.item_id = item_id
        utterance.committed = True
        self._answer(utterance)
        return utterance.turn is not False

    def transcript_delta(self, router: BargeIn, item_id: str, delta: str) -> bool:
        """Returns whether the client may see this partial transcript."""
        utterance = self._find(item_id)
        if utterance is None or utterance.turn:
            return True
        if utterance.turn is None:
            utterance.partial += delta
            if self.settings.clearly_interrupting(utterance.partial):
                self._judge(router, utterance, True, "words")
                return True
        return False

    def transcript(self, router: BargeIn, item_id: str, text: str) -> bool:
        """The utterance's transcript; returns whether it is a user turn."""
        utterance = self._find(item_id)
        if utterance is None:
            return True
        if utterance.turn is None:
            reason = self.settings.judge(text, utterance.speech_ms)
            self._judge(router, utterance, reason is None, reason or "words")
        return bool(utterance.turn)

    def transcript_failed(self, router: BargeIn, item_id: str) -> None:
        utterance = self._find(item_id)
        if utterance is not None and utterance.turn is None:
            self._judge(router, utterance, False, "no_transcript")

    def barged_in(self) -> None:
        """A barge-in was committed (rule 5): the pause is over, judged or not."""
        if self._paused_at is None:
            return
        self._paused_at = None
        for utterance in self._utterances:
            if utterance.turn is None:
                utterance.turn = True
                self._answer(utterance)
        self._changed.set()

    # -- judging ----------------------------------------------------------------------

    def _judge(self, router: BargeIn, utterance: _Utterance, turn: bool, reason: str) -> None:
        utterance.turn = turn
        log_event(
            log,
            "interruption" if turn else "false_interruption",
            reason=reason,
            speech_ms=utterance.speech_ms,
            item_id=utterance.item_id,
        )
        if turn:
            if self._paused_at is not None:
                router.barge_in("model_vad")  # calls barged_in(): rule 5
        elif self._paused_at is not None and not self._judging():
            self._resume(reason)
        self._answer(utterance)
        self._changed.set()

    def _resume(self, reason: str) -> None:
        now = trio.current_time()
        assert self._paused_at is not None
        paused_ms = int((now - self._paused_at) * 1000)
        self._paused_at = None
        self._room.turns.resume(now)
        self._room.outbox.resume(
            event(
                "playback_resume",
                response_id=self._paused_rid,
                paused_ms=paused_ms,
                reason=reason,
            )
        )
        log_event(log, "playback_resume", response_id=self._paused_rid, paused_ms=paused_ms)

    def _answer(self, utterance: _Utterance) -> None:
        """Rule 4: tell a holding model what became of the utterance, once."""
        if utterance.answered or not utterance.committed or utterance.turn is None:
            return
        utterance.answered = True
        if utterance.item_id is None or not self._holding():
            return
        if not self._link.send_nowait(AnswerInput(utterance.item_id, utterance.turn)):
            log_event(log, "answer_not_queued", level=logging.WARNING)

    def _judging(self) -> bool:
        return any(u.turn is None for u in self._utterances)

    def _find(self, item_id: str | None, *fallback: object) -> _Utterance | None:
        """The utterance of `item_id`, else (no id) the oldest one matching the filter."""
        if item_id is not None:
            for utterance in self._utterances:
                if utterance.item_id == item_id:
                    return utterance
        test = fallback[0] if fallback else None
        if test is None:
            return None
        for utterance in self._utterances:
            if utterance.item_id is None and test(utterance):  # type: ignore[operator]
                return utterance
        return None

    # -- the deadline watch -----------------------------------------------------------

    def _deadline(self, utterance: _Utterance, timeout: float) -> float:
        if utterance.stopped_at is None:
            return utterance.started_at + timeout  # still speaking then: a turn
        return utterance.stopped_at + timeout  # no transcript by then: not a turn

    def _watch(self, router: BargeIn) -> None:
        self._changed.set()
        if self._watching or self._room.work is None:
            return
        self._watching = True
        self._room.work.start_soon(self._run_watch, router)

    async def _run_watch(self, router: BargeIn) -> None:
        try:
            while self._judging():
                timeout = self.settings.false_interruption_timeout_ms / 1000
                open_ = [u for u in self._utterances if u.turn is None]
                due = min((self._deadline(u, timeout) for u in open_), default=math.inf)
                await self._changed.wait_until(due)
                now = trio.current_time()
                for utterance in [u for u in self._utterances if u.turn is None]:
                    if now >= self._deadline(utterance, timeout):
                        still = utterance.stopped_at is None
                        reason = "long_speech" if still else "no_transcript"
                        self._judge(router, utterance, still, reason)
        finally:
            self._watching = False
