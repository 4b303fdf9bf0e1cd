"""What a session hands the store: one small immutable record per fact.

A record is built in the session's task from values it already has (a snapshot:
`ConversationItem` is mutable, so an item's fields are copied at the moment it
becomes final) and put on the store's channel. Nothing here does I/O.

Every record also has an `as_event()` form: the JSON object the audit stream
publishes (docs/store.md, "Audit stream").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from voiceagent.conversation import ConversationItem


@dataclass(frozen=True, slots=True)
class ConnectionOpened:
    """A WebSocket connection to room `session_id` began (`resumed_items` were loaded)."""

    session_id: str
    connection_id: str
    started_at: float
    sub: str | None
    agent: str
    model: str
    tts: str
    resumed_items: int = 0
    recording: str | None = None  # the WAV file's path (VOICEAGENT_RECORD=1)

    def as_event(self) -> dict[str, Any]:
        return {"type": "connection_opened", **asdict(self)}


@dataclass(frozen=True, slots=True)
class ItemFinal:
    """A conversation item in its final form (a later record for the same id wins)."""

    session_id: str
    connection_id: str
    seq: int  # its position in the connection, first seen
    at: float
    item_id: str
    role: str
    type: str
    text: str
    status: str
    agent: str | None = None
    name: str | None = None
    call_id: str | None = None
    arguments: str | None = None
    output: str | None = None
    error: str | None = None  # function_call_output: why the tool failed
    duration_ms: float | None = None  # function_call_output: how long the tool ran

    @classmethod
    def of(
        cls,
        session_id: str,
        connection_id: str,
        seq: int,
        at: float,
        item: ConversationItem,
        *,
        error: str | None = None,
        duration_ms: float | None = None,
    ) -> ItemFinal:
        return cls(
            session_id,
            connection_id,
            seq,
            at,
            item.id,
            item.role,
            item.type,
            item.text,
            item.status,
            item.agent,
            item.name,
            item.call_id,
            item.arguments,
            item.output,
            error,
            duration_ms,
        )

    def conversation_item(self) -> ConversationItem:
        return ConversationItem(
            id=self.item_id,
            role=self.role,  # type: ignore[arg-type]
            type=self.type,  # type: ignore[arg-type]
            text=self.text,
            status=self.status,  # type: ignore[arg-type]
            agent=self.agent,
            name=self.name,
            call_id=self.call_id,
            arguments=self.arguments,
            output=self.output,
        )

    def as_event(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["item_type"] = fields.pop("type")  # "type" names the event
        return {"type": "item", **fields}


@dataclass(frozen=True, slots=True)
class TurnMetrics:
    """One turn's `metrics` event (docs/protocol.md): timings, tokens, cost."""

    session_id: str
    connection_id: str
    at: float
    metrics: dict[str, Any]

    def as_event(self) -> dict[str, Any]:
        return {"type": "turn", **asdict(self)}


@dataclass(frozen=True, slots=True)
class Mark:
    """A moment on the room's timeline: a barge-in, a guardrail trip, a handoff."""

    session_id: str
    connection_id: str
    at: float
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_event(self) -> dict[str, Any]:
        return {"type": "mark", **asdict(self)}


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection ended; `billing` is its billing record (docs/store.md)."""

    session_id: str
    connection_id: str
    ended_at: float
    end_reason: str
    close_code: int
    agent: str  # the agent speaking at the end (a resume continues with it)
    billing: dict[str, Any]

    def as_event(self) -> dict[str, Any]:
        return {"type": "connection_closed", **asdict(self)}


Record = ConnectionOpened | ItemFinal | TurnMetrics | Mark | ConnectionClosed
