"""What the Realtime client remembers of responses and items (sans-I/O, bounded).

Plain records that `RealtimeProtocol` updates as server events arrive (its module
docstring tells when); nothing here reads the wire. Memory is bounded: `remember` keeps
the newest `MAX_TRACKED_ITEMS` entries of a table, and the protocol caps the assistant
text per item at `MAX_ITEM_TEXT` characters.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

MAX_TRACKED_ITEMS = 256
MAX_ITEM_TEXT = 64 * 1024


@dataclass(slots=True)
class TrackedItem:
    """What the client tracks of one assistant message item the server holds.

    Not a `ConversationItem`: the conversation lives on the server (and in the session's
    own history); this is only what the client needs to truncate, delete or rewrite the
    item after a barge-in (its response, the item before it, the text and audio so far).
    """

    response_id: str
    previous_item_id: str | None = None
    text: str = ""
    audio_bytes: int = 0
    # Set once the item was truncated, deleted or rewritten: it is not touched again.
    settled: bool = False


@dataclass(slots=True)
class TrackedResponse:
    """One response from ``response.created`` on: its message item and its tool calls."""

    id: str
    message_item: str | None = None
    outstanding: set[str] = field(default_factory=set)  # calls without an output yet
    answered: set[str] = field(default_factory=set)
    follow_up: bool = False  # an output asked for a response after this one
    done: bool = False


def remember(table: OrderedDict[str, Any], key: str, value: Any) -> None:
    """Put `key` last in `table`, dropping the oldest entries beyond the bound."""
    table[key] = value
    table.move_to_end(key)
    while len(table) > MAX_TRACKED_ITEMS:
        table.popitem(last=False)
