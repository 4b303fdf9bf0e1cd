"""Live sessions by id: replacement on reconnect, and the counts /healthz reports.

`Registry` is what the app, the admin routes and sessions use; it has two
implementations:

- `SessionRegistry` (here): one process, the embedded default. A room lives where its
  socket is; a second connection for a live room closes the older one with 1012.
- `voiceagent.fleet.RedisRegistry` (`VOICEAGENT_REDIS_URL`): several processes or
  machines share room presence, replacement, admin commands and limits through Redis.
  It keeps a `SessionRegistry` for its own rooms.

The synchronous half (`register`, `unregister`, `get`, `sessions`, `close_all`) is
about this process's sessions and never waits. The asynchronous half (`owner_of`,
`claim`, `describe_all`, `command`) may ask other instances; it runs at the handshake
or on an operator's request, never on the per-frame path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Protocol

import trio

from voiceagent import metrics
from voiceagent.close_codes import CloseCode

if TYPE_CHECKING:
    from voiceagent.access.tokens import RoomGrant
    from voiceagent.session.session import Session


class RegistryUnavailable(Exception):
    """The shared registry cannot answer now (Redis down, or an instance silent)."""


#: What an operator may do to a live room from any instance (admin.py).
Command = Literal["kick", "mute", "unmute"]
COMMANDS: tuple[Command, ...] = ("kick", "mute", "unmute")


class Registry(Protocol):
    @property
    def with_model(self) -> int:
        """Live sessions in this process with a model connection open."""
        ...

    def __len__(self) -> int:
        """Live sessions in this process."""
        ...

    def register(self, session: Session) -> None: ...

    def unregister(self, session: Session) -> None: ...

    def get(self, session_id: str) -> Session | None:
        """The live session with this id in this process."""
        ...

    def sessions(self) -> list[Session]: ...

    def close_all(self, code: int, reason: str) -> int: ...

    def model_opened(self) -> None: ...

    def model_closed(self) -> None: ...

    async def owner_of(self, session_id: str) -> RoomGrant | None:
        """The grant of the live room `session_id` wherever it lives (None: no such room).

        May raise `AccessRefused` (503) when the shared registry cannot answer."""
        ...

    async def claim(self, session: Session) -> None:
        """Before `session` is accepted: take its room over from wherever it lives.

        A room live on another instance is closed there with 1012. May raise
        `AccessRefused` (503) when the shared registry is down and the policy is closed."""
        ...

    async def describe_all(self) -> dict[str, Any]:
        """`{"sessions": [...]}` for every live room (admin.py's list)."""
        ...

    async def command(self, session_id: str, command: Command, reason: str = "") -> bool:
        """Kick, mute or unmute the room wherever it lives; False: no such live room.

        Raises `RegistryUnavailable` when the owner cannot be reached."""
        ...

    def health(self) -> dict[str, Any]:
        """What /healthz says about the registry."""
        ...

    @property
    def admitting(self) -> bool:
        """False while new rooms are refused for want of the shared registry."""
        ...

    async def serve(self, *, task_status: Any = ...) -> None:
        """Background work for the app's lifetime (reports started when ready)."""
        ...

    async def flush(self) -> None:
        """Before the background stops: send what is still queued (bounded wait)."""
        ...


def apply_command(session: Session, command: Command, reason: str) -> None:
    if command == "kick":
        session.kick(reason)
    else:
        session.set_muted(command == "mute")


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

    # -- the Registry protocol's asynchronous half: here, all of it is local ----------

    async def owner_of(self, session_id: str) -> RoomGrant | None:
        live = self._live.get(session_id)
        return live.grant if live is not None else None

    async def claim(self, session: Session) -> None:
        """Nothing to do: `register` replaces an older session of this process."""

    async def describe_all(self) -> dict[str, Any]:
        return {"sessions": [session.describe() for session in self._live.values()]}

    async def command(self, session_id: str, command: Command, reason: str = "") -> bool:
        session = self._live.get(session_id)
        if session is None:
            return False
        apply_command(session, command, reason)
        return True

    def health(self) -> dict[str, Any]:
        return {"kind": "local"}

    @property
    def admitting(self) -> bool:
        return True

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()  # nothing runs in the background

    async def flush(self) -> None:
        """Nothing is ever queued."""
