"""Live sessions by id: replacement on reconnect, and the counts /healthz reports."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voiceagent import metrics
from voiceagent.close_codes import CloseCode

if TYPE_CHECKING:
    from voiceagent.session.session import Session


class SessionRegistry:
    def __init__(self) -> None:
        self._live: dict[str, Session] = {}
        self.with_model = 0

    def __len__(self) -> int:
        return len(self._live)

    def register(self, session: Session) -> None:
        """Make `session` the live one for its id; an older one is closed with 1012."""
        previous = self._live.get(session.session_id)
        self._live[session.session_id] = session
        metrics.SESSIONS_OPEN.set(len(self._live))
        if previous is not None and previous is not session:
            previous.close(CloseCode.REPLACED, "replaced")

    def unregister(self, session: Session) -> None:
        # Only the live session may remove its id: a replaced one must not evict its
        # replacement when it finishes later.
        if self._live.get(session.session_id) is session:
            del self._live[session.session_id]
        metrics.SESSIONS_OPEN.set(len(self._live))

    def close_all(self, code: int, reason: str) -> int:
        """Close every live session with `code` (a server going down); returns how many."""
        sessions = list(self._live.values())
        for session in sessions:
            session.close(code, reason)
        return len(sessions)

    def get(self, session_id: str) -> Session | None:
        return self._live.get(session_id)

    def sessions(self) -> list[Session]:
        return list(self._live.values())

    def model_opened(self) -> None:
        self.with_model += 1
        metrics.SESSIONS_WITH_MODEL.set(self.with_model)

    def model_closed(self) -> None:
        self.with_model -= 1
        metrics.SESSIONS_WITH_MODEL.set(self.with_model)
