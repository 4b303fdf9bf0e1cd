"""The value types every layer shares: conversation items, agent setups, tools, replies.

This module sits below everything else (it imports nothing from the package), so the
session, the agent graph, the models, the offline brain and the emulators can all speak
of the same things without importing each other.

`ConversationItem` is the one shape of a conversation item everywhere: the session's
history (and the browser's `history_*` events), the offline model's memory, the
brain's input and the Realtime emulator's conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["user", "assistant", "system", "tool"]
ItemType = Literal["message", "function_call", "function_call_output", "handoff"]
ItemStatus = Literal["in_progress", "completed", "incomplete", "interrupted", "failed"]


@dataclass(slots=True)
class ConversationItem:
    """One item of a conversation: a message, a function call or output, a handoff."""

    id: str
    role: Role
    type: ItemType = "message"
    text: str = ""  # message: what was said (or heard, after a barge-in); handoff: "a -> b"
    status: ItemStatus = "completed"
    agent: str | None = None  # the agent that said it (assistant items)
    name: str | None = None  # function_call / function_call_output: the tool name
    call_id: str | None = None  # function_call / function_call_output
    arguments: str | None = None  # function_call: JSON text
    output: str | None = None  # function_call_output: the tool's result text

    def as_event_item(self) -> dict[str, Any]:
        """The item as the browser protocol's `history_*` events carry it."""
        text = self.text
        if self.type == "function_call":
            text = self.arguments or ""
        elif self.type == "function_call_output":
            text = self.output or ""
        item: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "type": self.type,
            "text": text,
            "status": self.status,
            "agent": self.agent,
        }
        if self.name is not None:
            item["name"] = self.name
        return item


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function the model may call: name, description and JSON-schema parameters."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    # Optional example utterances; cloud models ignore them, the offline brain uses them.
    examples: tuple[str, ...] = ()

    def as_function(self) -> dict[str, Any]:
        """The Realtime API `tools[]` entry."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }


@dataclass(frozen=True, slots=True)
class AgentSetup:
    """What the model must know about the current agent (sent again on handoff)."""

    agent_name: str
    instructions: str
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: str = "auto"


@dataclass(frozen=True, slots=True)
class Heard:
    """What the user actually heard of an interrupted response.

    `audio_ms` is how much of the response's audio the client played (None when
    unknown); `text` is the part of the response text that was spoken by then (None
    when unknown). Models keep only this much of the response in the conversation.
    """

    response_id: str
    item_id: str | None = None
    audio_ms: int | None = None
    text: str | None = None


@dataclass(frozen=True, slots=True)
class BrainReply:
    """What a brain wants to do next: call functions, or say `text` (not both)."""

    text: str = ""
    calls: tuple[tuple[str, str], ...] = ()  # (tool name, arguments JSON)


class Brain(Protocol):
    """Decides the next reply from the agent setup and the whole conversation.

    The offline model and the Realtime emulator are given one (the offline demo brain
    in `voiceagent.brain`, or a test's own); neither imports a particular brain.
    """

    def respond(self, setup: AgentSetup, history: list[ConversationItem]) -> BrainReply: ...


def replayable(items: list[ConversationItem]) -> list[ConversationItem]:
    """The items of an earlier conversation a model can be given again (a resume).

    Messages with text (an interrupted reply as heard), and function calls together
    with their outputs; a call without its output (or the reverse) is left out, since
    providers refuse an unanswered call. Handoffs and failed items are left out.
    """
    calls = {i.call_id for i in items if i.type == "function_call" and i.call_id}
    outputs = {i.call_id for i in items if i.type == "function_call_output" and i.call_id}
    paired = calls & outputs
    kept: list[ConversationItem] = []
    for item in items:
        if item.type == "message":
            if item.text and item.role in ("user", "assistant") and item.status != "failed":
                kept.append(item)
        elif item.type in ("function_call", "function_call_output") and item.call_id in paired:
            kept.append(item)
    return kept
