"""The `RealtimeModel` interface: what a session needs from any speech model.

A `RealtimeModel` is a shared, immutable factory (one per app). `connect()` opens one
live conversation for one session and yields a `ModelConnection`. The connection owns
whatever background tasks its transport needs, inside the `async with` block, so its
lifetime is the block's lifetime: when the owning task leaves the block (normally, by
error or by cancellation) the provider connection is closed within a bounded time.

Send methods may be called from any task of the owning session while the block is open.
After the block closes they raise `ModelClosed`. Events are read by iterating the
connection; iteration ends when the provider closes, and raises `ModelConnectionError`
when the transport fails.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Literal

from voiceagent.conversation import AgentSetup, ConversationItem, Heard
from voiceagent.events import ModelEvent

OutputMode = Literal["text", "audio"]


class ModelConnectionError(Exception):
    """The provider could not be reached, refused us, or dropped the connection.

    `str()` is a human message a client may see (no URL, host, port or key); `detail`
    is the technical cause for the log, already redacted (see `voiceagent.redact`).
    """

    def __init__(
        self, message: str, *, code: str = "model_unavailable", detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class ModelClosed(ModelConnectionError):
    """A send was attempted on a connection that is no longer open."""

    def __init__(self, message: str = "model connection is closed") -> None:
        super().__init__(message, code="model_closed")


class ModelConnection(ABC):
    """One live conversation. See the module docstring for lifetime rules."""

    @abstractmethod
    async def send_audio(self, pcm: bytes) -> None:
        """Append user audio: PCM16 LE mono 24 kHz, any length (callers batch ~100 ms)."""

    @abstractmethod
    async def commit_audio(self) -> None:
        """End the user's turn by hand (push-to-talk); the model then responds."""

    @abstractmethod
    async def send_text(self, text: str) -> None:
        """Add a user text message and start a response to it."""

    @abstractmethod
    async def send_tool_result(self, call_id: str, output: str, *, respond: bool = True) -> None:
        """Give a function call its output; `respond` starts the follow-up response."""

    @abstractmethod
    async def update_agent(self, setup: AgentSetup) -> None:
        """Switch instructions and tools on the live conversation (handoff)."""

    @abstractmethod
    async def cancel_response(self, heard: Heard) -> None:
        """Barge-in: stop the current response and keep only what was heard.

        Must be harmless when no response is in progress.
        """

    async def add_history(self, items: Sequence[ConversationItem]) -> None:
        """Give a new conversation the items of an earlier one (a resumed room).

        Called once, right after connecting and before any input. Only items a model
        can take arrive (`conversation.replayable`). The default forgets them: a
        provider that cannot take history starts afresh.
        """
        return None

    #: True once `hold_spoken_turns()` took effect (see there).
    holds_spoken_turns: bool = False

    def hold_spoken_turns(self) -> bool:
        """From now on, a spoken turn the model's VAD ends waits for `answer_input()`.

        The model commits and transcribes it (InputCommitted, TranscriptCompleted) but
        does not answer until told, so the session can judge speech over the agent
        (voiceagent/interruption.py) before it becomes a turn. Called once, before any
        audio. Returns False when the model cannot (it then answers by itself, and
        speech over the agent interrupts at once).
        """
        return self.holds_spoken_turns

    async def answer_input(self, item_id: str, respond: bool) -> None:  # noqa: B027
        """Answer the held spoken turn `item_id` (`respond`) or forget it (not respond:
        a backchannel or noise, which must not stay in the conversation).

        A no-op for an item that is not held (already answered, or a manual commit).
        """

    @abstractmethod
    def __aiter__(self) -> AsyncIterator[ModelEvent]: ...


class RealtimeModel(ABC):
    """A speech model provider; see the module docstring."""

    #: short provider name shown to clients ("offline", "azure", "openai", "scripted")
    name: str = "model"
    #: True when this provider is the offline demo brain, not a language model
    offline_brain: bool = False
    #: True when the model can speak itself (`output="audio"`); without a TTS, a model
    #: that cannot speak runs text-only
    audio_output: bool = True

    @abstractmethod
    def connect(
        self, setup: AgentSetup, *, output: OutputMode
    ) -> AbstractAsyncContextManager[ModelConnection]:
        """Open a conversation for one session.

        `output="text"` means an external TTS voices the reply (text deltas only);
        `output="audio"` means the model speaks itself (AudioDelta events).
        Raises `ModelConnectionError` when the provider cannot be reached.
        """
