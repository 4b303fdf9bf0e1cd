"""The per-context state machine of the Cartesia TTS client (sans-I/O).

Theory of operation (one context = one agent response):

    OPEN --push(continue=true)--> STREAMING --push(continue=false)--> CLOSED
    OPEN/STREAMING/CLOSED --recv chunk/timestamps/flush_done--> (same state)
    CLOSED --recv done--> DONE                 (STREAMING --recv done--> DONE too:
                                                a server may end a context early)
    OPEN/STREAMING/CLOSED --cancel--> CANCELLED
    OPEN/STREAMING/CLOSED --recv error--> FAILED

Once a context is DONE, CANCELLED or FAILED it is finished: anything still arriving for
it is late and `ContextMachine.accepts()` says to drop it. Pushing text after CLOSED is a
local error (`ProtocolError` with `remote=False`; the server would answer "context
closed"). A push of the first text while OPEN moves to STREAMING or, with
`continue=false`, straight to CLOSED. A flush (empty transcript, `continue: true`,
`flush: true`) is allowed only while STREAMING and does not change the state; the
server answers `flush_done`.
"""

from __future__ import annotations

import enum
from typing import Any

from voiceagent.tts.cartesia.client_messages import (
    AudioChunk,
    Done,
    ErrorResponse,
    GenerationSettings,
    Response,
    cancel_request,
    generation_request,
)
from voiceagent.tts.cartesia.wire import ProtocolError


class ContextState(enum.Enum):
    OPEN = "open"
    STREAMING = "streaming"
    CLOSED = "closed"
    DONE = "done"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINISHED = frozenset({ContextState.DONE, ContextState.CANCELLED, ContextState.FAILED})
_LIVE = frozenset({ContextState.OPEN, ContextState.STREAMING, ContextState.CLOSED})

# (state, event) -> next state. Events: "push_more", "push_last", "done", "error", "cancel".
_TRANSITIONS: dict[tuple[ContextState, str], ContextState] = {
    (ContextState.OPEN, "push_more"): ContextState.STREAMING,
    (ContextState.OPEN, "push_last"): ContextState.CLOSED,
    (ContextState.STREAMING, "push_more"): ContextState.STREAMING,
    (ContextState.STREAMING, "push_last"): ContextState.CLOSED,
    (ContextState.STREAMING, "done"): ContextState.DONE,
    (ContextState.CLOSED, "done"): ContextState.DONE,
    **{(s, "cancel"): ContextState.CANCELLED for s in _LIVE},
    **{(s, "error"): ContextState.FAILED for s in _LIVE},
}


class ContextMachine:
    """Tracks one context from the client's side and builds its requests."""

    def __init__(self, context_id: str, settings: GenerationSettings) -> None:
        self.context_id = context_id
        self.settings = settings
        self.state = ContextState.OPEN
        self.audio_bytes = 0

    def _move(self, event: str) -> None:
        nxt = _TRANSITIONS.get((self.state, event))
        if nxt is None:
            raise ProtocolError(f"{event} not allowed in state {self.state.value}", remote=False)
        self.state = nxt

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    @property
    def sent_anything(self) -> bool:
        return self.state is not ContextState.OPEN

    def push(self, transcript: str, *, more: bool) -> dict[str, Any]:
        """A generation request for `transcript`; `more=False` closes the context."""
        self._move("push_more" if more else "push_last")
        return generation_request(self.settings, self.context_id, transcript, more=more)

    def flush(self) -> dict[str, Any]:
        """A flush request: voice what was pushed so far; the server answers `flush_done`."""
        if self.state is not ContextState.STREAMING:
            raise ProtocolError(f"flush not allowed in state {self.state.value}", remote=False)
        return generation_request(self.settings, self.context_id, "", more=True, flush=True)

    def cancel(self) -> dict[str, Any] | None:
        """The cancel request, or None when there is nothing live to cancel."""
        if self.state not in _LIVE:
            return None
        was_open = self.state is ContextState.OPEN
        self._move("cancel")
        return None if was_open else cancel_request(self.context_id)

    def accepts(self, response: Response) -> bool:
        """True when `response` belongs to this live context (else: drop it as late)."""
        context_id = getattr(response, "context_id", None)
        return context_id == self.context_id and self.state in _LIVE

    def receive(self, response: Response) -> None:
        """Apply an accepted response to the state."""
        if isinstance(response, AudioChunk):
            self.audio_bytes += len(response.audio)
        elif isinstance(response, Done):
            self._move("done")
        elif isinstance(response, ErrorResponse):
            self._move("error")
