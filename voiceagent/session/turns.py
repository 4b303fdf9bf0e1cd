"""Responses as epochs: which response the user is hearing, and how much of it.

Rules:
1. The epoch counts barge-ins. Every response belongs to the epoch it started in and
   its audio is tagged with it; the writer only sends audio of the current epoch (see
   outbox.py). Responses of one epoch (e.g. "let me check" and, after a tool call, the
   answer) are spoken one after another; a barge-in ends them all at once.
2. A response is *audible* from its start until the client has presumably finished
   playing it: the server sends TTS audio faster than real time, so the client may
   still be playing seconds after the last byte left. Playback is estimated from
   the client's `playback` acknowledgements when it sends them, else from the wall
   clock since the first audio byte.
3. Barge-in applies to audible responses only. It ends their epoch (no more of their
   audio), and `heard()` says how much the user heard: played milliseconds, and the
   text spoken by then (from TTS word timings when the provider gives them, else in
   proportion to the audio played).
4. A response that has finished playing is simply forgotten; interrupting then is a
   no-op (nothing to flush, nothing to cancel).
5. While the user's speech is being judged (session/interruptions.py) the audible
   responses are *paused*: the client holds its audio, so the time paused does not
   count as played, and a paused response stays audible until it is resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import trio

from voiceagent.conversation import Heard
from voiceagent.graph import GuardrailMonitor
from voiceagent.metrics import TurnTimer
from voiceagent.protocol import pcm_ms
from voiceagent.tts.base import WordTiming

# Grace after the estimated end of playback before a response stops being audible
# (client jitter buffer and scheduling).
PLAYBACK_SLACK_S = 0.5


@dataclass(slots=True)
class Response:
    response_id: str
    epoch: int
    agent: str
    item_id: str | None = None
    text: str = ""
    model_done: bool = False  # the model finished writing (ResponseDone seen)
    speech_done: bool = False  # TTS finished (or there is no audio)
    interrupted: bool = False
    audio_bytes: int = 0
    first_audio_at: float | None = None
    played_ms: int | None = None  # from the client's playback acks
    words: list[WordTiming] = field(default_factory=list)
    tts_scope: trio.CancelScope | None = None
    text_tx: trio.MemorySendChannel[str] | None = None
    timer: TurnTimer | None = None
    guardrails: GuardrailMonitor | None = None
    reported: bool = False
    uninterruptible: bool = False  # the user's speech does not stop it (interruption.py)
    paused_s: float = 0.0  # time spent paused before now (rule 5)
    paused_at: float | None = None  # paused since then

    def _playing_s(self, now: float) -> float:
        assert self.first_audio_at is not None
        paused = self.paused_s + (now - self.paused_at if self.paused_at is not None else 0.0)
        return max(0.0, now - self.first_audio_at - paused)

    @property
    def audio_ms(self) -> int:
        return pcm_ms(self.audio_bytes)

    def estimated_played_ms(self, now: float) -> int:
        """How much audio the user has heard by `now` (never more than was sent)."""
        if self.played_ms is not None:
            return min(self.played_ms, self.audio_ms)
        if self.first_audio_at is None:
            return 0
        return min(self.audio_ms, int(self._playing_s(now) * 1000))

    def audible(self, now: float) -> bool:
        if self.interrupted:
            return False
        if not (self.model_done and self.speech_done) or self.paused_at is not None:
            return True
        if self.first_audio_at is None:
            return False
        return self._playing_s(now) < self.audio_ms / 1000 + PLAYBACK_SLACK_S

    def heard(self, now: float) -> Heard:
        played = self.estimated_played_ms(now)
        return Heard(
            response_id=self.response_id,
            item_id=self.item_id,
            audio_ms=played,
            text=self.heard_text(played),
        )

    def heard_text(self, played_ms: int) -> str:
        """The words of this response that were spoken within `played_ms`."""
        if self.words:
            limit = played_ms / 1000
            return " ".join(w.word for w in self.words if w.start < limit).strip()
        if self.audio_bytes == 0:
            return ""
        spoken = self.text
        share = min(1.0, played_ms / max(1, self.audio_ms))
        cut = math.floor(len(spoken) * share)
        if cut >= len(spoken):
            return spoken.strip()
        # End at a word boundary: a half word was not heard as a word.
        return spoken[:cut].rsplit(" ", 1)[0].strip() if " " in spoken[:cut] else ""


class Turns:
    """Owns the epoch counter and the responses the user may be hearing."""

    def __init__(self) -> None:
        self.epoch = 0
        self._responses: list[Response] = []  # of the current epoch, oldest first

    @property
    def current(self) -> Response | None:
        return self._responses[-1] if self._responses else None

    def begin(self, response_id: str, agent: str) -> Response:
        now = trio.current_time()
        # Forget responses that finished playing; keep the ones still being heard.
        self._responses = [r for r in self._responses if r.audible(now)]
        response = Response(response_id=response_id, epoch=self.epoch, agent=agent)
        self._responses.append(response)
        return response

    def get(self, response_id: str) -> Response | None:
        for response in reversed(self._responses):
            if response.response_id == response_id:
                return response
        return None

    def audible(self, now: float) -> Response | None:
        for response in reversed(self._responses):
            if response.audible(now):
                return response
        return None

    def heard_now(self, now: float) -> Response | None:
        """The audible response the user is hearing: the oldest one whose audio began
        (responses of an epoch play in order), else the newest audible one."""
        audible = [r for r in self._responses if r.audible(now)]
        playing = [r for r in audible if r.first_audio_at is not None]
        return playing[0] if playing else (audible[-1] if audible else None)

    def quiet_since(self) -> float | None:
        """When the agent stopped being heard (0.0: never spoke); None while it is busy:
        a response unfinished or paused."""
        quiet = 0.0
        for r in self._responses:
            if not (r.model_done and r.speech_done) or r.paused_at is not None:
                return None
            if r.first_audio_at is not None and not r.interrupted:
                end = r.first_audio_at + r.paused_s + r.audio_ms / 1000 + PLAYBACK_SLACK_S
                quiet = max(quiet, end)
        return quiet

    def pause(self, now: float) -> list[Response]:
        """Pause the audible responses (rule 5); returns them."""
        speaking = [r for r in self._responses if r.audible(now)]
        for response in speaking:
            if response.paused_at is None:
                response.paused_at = now
        return speaking

    def resume(self, now: float) -> None:
        for response in self._responses:
            if response.paused_at is not None:
                response.paused_s += now - response.paused_at
                response.paused_at = None

    def interrupt(self, now: float) -> list[Response]:
        """End the epoch of the audible responses; returns them (empty: nothing to stop)."""
        speaking = [r for r in self._responses if r.audible(now)]
        if not speaking:
            return []
        for response in speaking:
            response.interrupted = True
            if response.paused_at is not None:  # what was heard ends where it paused
                response.paused_s += now - response.paused_at
                response.paused_at = None
        self.epoch += 1
        return speaking
