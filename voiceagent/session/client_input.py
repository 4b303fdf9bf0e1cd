"""What the client's messages do: audio, text, commits, barge-in, playback reports.

Rules:
1. Nothing here waits: a message is acted on, queued or refused at once, so the reader
   (session.py) is always ready for the next frame.
2. Audio passes only when the room is not muted by an operator, the room's token grants
   audio, the room is not saying goodbye, and the audio bucket has room (a client may
   send up to `VOICEAGENT_MAX_AUDIO_RATE` times real time, with a two-second burst).
   Other messages take one token each from the message bucket.
3. Every refusal is an `error` event with a code (docs/protocol.md) and counts against
   the error budget: more than `WS_MAX_ERRORS` in 10 s closes the room with 1008. So a
   client sending audio at 10x real time is first throttled, then closed.
4. The model link starts on the first audio, text or commit (an idle room costs no
   provider connection).
"""

from __future__ import annotations

import logging
from collections import deque

import trio

from voiceagent import metrics
from voiceagent.access.limits import MessageRates
from voiceagent.access.tokens import RoomGrant
from voiceagent.close_codes import CloseCode
from voiceagent.conversation import ConversationItem
from voiceagent.logs import log_event
from voiceagent.protocol import (
    AudioIn,
    ClientMessage,
    ClientMetrics,
    ClientVadSpeechStart,
    CommitAudio,
    Interrupt,
    Playback,
    TextIn,
    error_event,
)
from voiceagent.session.model_link import ModelLink, SendText
from voiceagent.session.responses import ResponseRouter
from voiceagent.session.room import Room

log = logging.getLogger("voiceagent.session")

ERROR_WINDOW_S = 10.0


class ClientInput:
    def __init__(
        self, room: Room, link: ModelLink, router: ResponseRouter, grant: RoomGrant
    ) -> None:
        self._room = room
        self._link = link
        self._router = router
        self._grant = grant
        self._rates = MessageRates.from_settings(room.settings, trio.current_time())
        self._errors: deque[float] | None = None  # times of recent bad messages (lazy)
        self._audio_refused = False  # told once that the token allows no audio
        self.muted = False  # an operator muted the microphone (admin.py)

    def dispatch(self, message: ClientMessage) -> None:
        """Act on one client message without waiting for anything."""
        if isinstance(message, AudioIn):
            if self._accept_audio(message.pcm) and self._ensure_model():
                self._link.audio.append(message.pcm)
                if self._room.recorder is not None:
                    self._room.recorder.user(message.pcm, trio.current_time())
            return
        rates = self._rates
        if rates.messages is not None and not rates.messages.take(1, trio.current_time()):
            self.error("rate_limited", "too many messages: slow down")
            return
        if isinstance(message, TextIn | CommitAudio | Interrupt | ClientVadSpeechStart):
            self._router.away.user_active()  # a sign of life (session/away.py)
        if isinstance(message, TextIn):
            if not self._grant.text:
                self.error("not_allowed", "this room's token does not allow typing")
            elif self._room.ending:
                pass  # the room is saying goodbye: nothing more reaches the model
            elif self._ensure_model():
                room = self._room
                if room.text_pending:  # one typed turn at a time: no unbounded queue
                    self.error("busy", "the previous message is still unanswered")
                    return
                room.new_turn().user_text()
                if self._link.request(SendText(message.text)):
                    room.text_pending = True
                else:
                    self.error("busy", "too many requests are waiting for the model")
                room.history.put(
                    ConversationItem(f"text_{room.next_id()}", "user", text=message.text)
                )
        elif isinstance(message, CommitAudio):
            if not self._room.ending and self._ensure_model():
                self._room.new_turn().commit()
                if not self._link.audio.commit():
                    self.error("busy", "too much audio is waiting for the model")
        elif isinstance(message, Interrupt | ClientVadSpeechStart):
            self._router.barge_in(type(message).__name__)
        elif isinstance(message, Playback):
            response = self._room.turns.get(message.response_id)
            if response is not None:
                response.played_ms = max(response.played_ms or 0, message.played_ms)
        elif isinstance(message, ClientMetrics):
            metrics.observe_client_e2e(message.e2e_ms / 1000)

    def _accept_audio(self, pcm: bytes) -> bool:
        """False for audio the room must not pass on: muted, not granted, too fast."""
        if not pcm or self.muted or self._room.ending:
            return False
        if not self._grant.audio:
            if not self._audio_refused:
                self._audio_refused = True
                self.error("not_allowed", "this room's token does not allow audio")
            return False
        bucket = self._rates.audio
        if bucket is not None and not bucket.take(len(pcm), trio.current_time()):
            self.error("rate_limited", "audio is arriving faster than real time")
            return False
        return True

    def _ensure_model(self) -> bool:
        """Start the model link on first use; False (and an error) without a model."""
        if self._link.started:
            return True
        if self._room.services.model is None or self._room.work is None:
            self.error("no_provider", self._room.services.model_problem)
            return False
        self._link.start(self._router)
        return True

    def error(self, code: str, message: str) -> None:
        metrics.count_error(code)
        now = trio.current_time()
        errors = self._errors
        if errors is None:
            errors = self._errors = deque()
        errors.append(now)
        while errors and errors[0] < now - ERROR_WINDOW_S:
            errors.popleft()
        if len(errors) > self._room.settings.ws_max_errors:
            log_event(log, "client_abusive", level=logging.WARNING, last_error=code)
            self._room.close(CloseCode.POLICY, "too many invalid messages")
            return
        # Errors are few (the budget above bounds them), so they may skip the queue.
        self._room.outbox.urgent(error_event(code, message))
