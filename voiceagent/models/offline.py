"""The offline model: server VAD + local STT + an injected brain behind `RealtimeModel`.

Rules of this module:

* It speaks exactly the event vocabulary of `voiceagent.events`, in the order a cloud
  Realtime model would: SpeechStarted -> SpeechStopped -> InputCommitted ->
  TranscriptCompleted -> ResponseStarted -> (TextDelta* TextDone | FunctionCall*) ->
  ResponseDone. The session cannot tell it from a cloud model except by its `name`.
* The conversation is a list of `ConversationItem`; the brain reads all of it and
  keeps (almost) no state of its own, so handoffs and barge-in only edit the list.
* The brain is given (`brain_factory`: one `Brain` per conversation); this module imports
  no particular brain, so the models layer never depends on the demo brain or the graph
  (the app passes `voiceagent.brain.OfflineBrain`).
* Every background task lives in the nursery of `connect()`'s block: leaving the block
  cancels pending transcriptions (their worker processes are killed) and the response.

Theory of operation
-------------------
`send_audio()` runs the VAD inline (~0.5 ms per 100 ms of audio, see `speech/vad.py`)
and emits SpeechStarted/SpeechStopped as it goes, so barge-in is never delayed by a
transcription. With `semantic_turn`, a VAD stop is first held for the end-of-turn model
(`offline_turns.py`): speech after a pause that the model judged unfinished continues
the same item. A finished utterance becomes an item (InputCommitted) and goes to one
*turn task* through a small channel: it transcribes utterances one after another (so
transcripts stay in speaking order), appends the user message and asks for a response.

Responses are one at a time. A new response first cancels the one in progress and waits
for it to end (its ResponseDone comes first). A response asks the brain for a reply and
either emits FunctionCalls (and waits for all their outputs before the next response)
or streams the reply text in small word chunks. `cancel_response(heard)` cancels the
response's scope; the response task then cuts the assistant item to `heard.text` and
emits ResponseDone("cancelled"). It never waits for that itself, so it is safe to call
from any task, even one that is also draining the events.

Errors never end the connection: odd audio or text -> ModelError (not fatal); a failed
transcription -> TranscriptFailed; a transcript with no words (noise the VAD let
through) -> TranscriptCompleted("") and no response; a brain exception ->
ResponseDone("failed"). A new user turn drops calls still waiting for outputs (their
tools may have been cancelled by the barge-in); late outputs are still recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import trio

from voiceagent.conversation import AgentSetup, Brain
from voiceagent.models.base import (
    ModelConnection,
    ModelConnectionError,
    OutputMode,
    RealtimeModel,
)
from voiceagent.models.offline_connection import OfflineConnection, word_chunks  # noqa: F401
from voiceagent.models.offline_turns import TurnModel, vad_config_for
from voiceagent.speech.availability import check_offline_engines
from voiceagent.speech.stt import Recognizer
from voiceagent.speech.turn_detector import SmartTurnDetector
from voiceagent.speech.turn_end import EAGERNESS
from voiceagent.speech.vad import (
    VadConfig,
    VoiceActivityDetector,
)


@dataclass(frozen=True, slots=True)
class OfflineModelConfig:
    """Offline model settings (proposed env names in the comments)."""

    #: VOICEAGENT_VAD_THRESHOLD / _PREFIX_PADDING_MS / _SILENCE_DURATION_MS
    vad: VadConfig = field(default_factory=VadConfig)
    #: utterances decoded at once in this process (VOICEAGENT_STT_CONCURRENCY)
    stt_concurrency: int = 2
    #: words per TextDelta
    words_per_delta: int = 3
    #: pause between TextDeltas, so the reply streams like a cloud model's (seconds)
    delta_interval_s: float = 0.02
    #: bound on the events waiting for the session to read them
    event_capacity: int = 256
    #: utterances waiting for transcription; more are dropped with an error event
    pending_utterances: int = 4
    #: conversation items kept (oldest dropped first)
    max_history_items: int = 200
    #: longest user text message accepted, in characters
    max_text_chars: int = 4000
    #: after VAD silence, the end-of-turn model decides (VOICEAGENT_TURN_DETECTION=
    #: semantic_vad); VAD-only when the model is not installed
    semantic_turn: bool = False
    #: how soon the model ends a turn (VOICEAGENT_VAD_EAGERNESS; see speech/turn_end.py)
    turn_eagerness: str = "auto"
    #: with the end-of-turn model, a turn the model calls complete is also checked on its
    #: words (speech/unfinished.py): "my number is..." waits (VOICEAGENT_TURN_WORDS)
    turn_words: bool = True

    def __post_init__(self) -> None:
        if self.stt_concurrency < 1:
            raise ValueError("stt_concurrency must be >= 1")
        if self.words_per_delta < 1:
            raise ValueError("words_per_delta must be >= 1")
        if not 0.0 <= self.delta_interval_s <= 1.0:
            raise ValueError("delta_interval_s must be in [0, 1]")
        if self.turn_eagerness not in EAGERNESS:
            raise ValueError(f"turn_eagerness must be one of {', '.join(EAGERNESS)}")
        for name in ("event_capacity", "pending_utterances", "max_history_items"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


class OfflineModel(RealtimeModel):
    """VAD + STT + the offline brain; one per app (the recogniser pool is shared)."""

    name = "offline"
    offline_brain = True
    audio_output = False  # it speaks through the local TTS; without one it runs text-only

    def __init__(
        self,
        config: OfflineModelConfig | None = None,
        *,
        brain_factory: Callable[[], Brain],
        recognizer: Recognizer | None = None,
        turn_detector: SmartTurnDetector | None = None,
    ) -> None:
        """`brain_factory` makes each conversation's brain (a brain keeps per-conversation
        state; the app passes `voiceagent.brain.OfflineBrain`, tests their own);
        `recognizer` shares one STT pool between models; `turn_detector` the end-of-turn
        model (loaded on first use when `config.semantic_turn` and not given)."""
        self.config = config or OfflineModelConfig()
        self._recognizer = recognizer
        self._brain_factory = brain_factory
        self._missing: str | None = None  # what the engine check found, once
        self.turn_model = TurnModel(self.config.semantic_turn, turn_detector)

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = Recognizer(self.config.stt_concurrency)
        return self._recognizer

    async def warm_up(self) -> None:
        """Start the recogniser's worker processes and load the VAD (call at app startup;
        ~1-2 s, off the loop except the VAD import). Cancellable."""
        self._check_engines()
        # Imports the VAD and leaves one loaded model in the pool for the first session.
        vad = await trio.to_thread.run_sync(VoiceActivityDetector, self.config.vad)
        vad.close()
        await self.turn_model.get()
        await self.recognizer.warm_up()

    def _check_engines(self) -> None:
        if self._missing is None:
            availability = check_offline_engines()
            self._missing = "" if availability.speech_ok else availability.messages()[0]
        if self._missing:
            raise ModelConnectionError(self._missing, code="model_unavailable")

    def connect(
        self, setup: AgentSetup, *, output: OutputMode
    ) -> AbstractAsyncContextManager[ModelConnection]:
        """Open one conversation; raises `ModelConnectionError` for output="audio" or
        when the offline engines are not installed (the message names the extra)."""
        if output != "text":
            raise ModelConnectionError(
                "the offline model has no voice of its own; it speaks through the local "
                "TTS, so connect it with output='text'",
                code="model_unsupported",
            )
        self._check_engines()
        return self._open(setup)

    @asynccontextmanager
    async def _open(self, setup: AgentSetup) -> AsyncIterator[ModelConnection]:
        brain = self._brain_factory()
        detector = await self.turn_model.get()
        vad = VoiceActivityDetector(vad_config_for(self.config.vad, detector is not None))
        connection: OfflineConnection | None = None
        try:
            async with trio.open_nursery() as nursery:
                connection = OfflineConnection(
                    self.config, setup, vad, self.recognizer, brain, nursery, detector
                )
                nursery.start_soon(connection.run_turns)
                try:
                    yield connection
                finally:
                    connection.close()
                    nursery.cancel_scope.cancel()
        finally:
            vad.close()  # after the nursery: no task of this connection can feed it now
            if connection is not None:
                connection.turns.detach()  # its commit is a bound method: no cycle left
