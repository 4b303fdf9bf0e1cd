"""Conversation items as the providers' brains see them (provider-neutral).

The offline model and the Realtime emulator keep their conversation as a list of these
and hand it to a brain (`voiceagent.graph.brain.OfflineBrain`) to produce a reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["user", "assistant", "system", "tool"]
ItemType = Literal["message", "function_call", "function_call_output"]


@dataclass(slots=True)
class ConversationItem:
    id: str
    role: Role
    type: ItemType = "message"
    text: str = ""
    name: str | None = None  # function_call: the tool name
    call_id: str | None = None  # function_call / function_call_output
    arguments: str | None = None  # function_call: JSON text
    output: str | None = None  # function_call_output: the tool's result text


@dataclass(frozen=True, slots=True)
class BrainReply:
    """What a brain wants to do next: call functions, or say `text` (not both)."""

    text: str = ""
    calls: tuple[tuple[str, str], ...] = ()  # (tool name, arguments JSON)
