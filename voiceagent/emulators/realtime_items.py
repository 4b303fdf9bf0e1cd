"""The emulator's conversation: `ConversationItem`s plus what only the wire needs.

Everywhere in the project a conversation item is a `voiceagent.conversation.
ConversationItem`; the brain is given those. The Realtime wire needs two things more,
kept next to the item in a `WireItem`:

- the content parts of a message, in the GA shape (``input_text``, ``input_audio``,
  ``input_image``, ``output_text``, ``output_audio``; beta's ``text`` / ``audio`` are
  renamed on the way in and back on the way out) and without audio bytes. The parts
  are the truth; ``item.text`` is kept equal to their joined text by `set_text` /
  `add_text`, so never assign it directly;
- `audio_ms`: the audio length of the item (user input, assistant output), which bounds
  ``conversation.item.truncate``.

`Conversation` is the ordered item list with O(1) lookup, bounded like a context window:
at most `max_items` items and about `max_chars` characters of text; the oldest items go
first, checked on insert (once a turn, not once a frame).

The ``conversation.item.*`` client events are applied here (`create_item`,
`truncate_item`, `delete_item`, `retrieve_item`): each returns the server events that
answer it, or raises `ClientEventError` before changing anything. Truncating an
assistant audio message cuts its transcript in proportion to the audio kept. Pure data
and computation: no I/O, no clock.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from voiceagent.conversation import ConversationItem
from voiceagent.emulators.realtime_checks import ClientEventError
from voiceagent.handoffs import HANDOFF_PREFIX

_TO_BETA = {"output_text": "text", "output_audio": "audio"}
_FROM_BETA = {v: k for k, v in _TO_BETA.items()}
_ROLE_OF_TYPE = {"function_call": "assistant", "function_call_output": "tool"}


def _text_key(part: dict[str, Any]) -> str:
    return "text" if "text" in part else "transcript"


@dataclass(slots=True)
class WireItem:
    """A conversation item and its wire-only parts (see the module docstring)."""

    item: ConversationItem
    parts: list[dict[str, Any]] = field(default_factory=list)
    audio_ms: int = 0

    @property
    def id(self) -> str:
        return self.item.id

    def part_text(self, index: int) -> str:
        part = self.parts[index]
        return part.get(_text_key(part)) or ""

    def set_text(self, index: int, value: str) -> None:
        """Set part `index`'s text (or transcript) and the item's joined text."""
        part = self.parts[index]
        part[_text_key(part)] = value
        self.sync_text()

    def sync_text(self) -> None:
        """Make ``item.text`` the joined non-empty texts and transcripts of the parts."""
        self.item.text = " ".join(v for p in self.parts if (v := p.get(_text_key(p))))

    def add_text(self, index: int, delta: str) -> None:
        self.set_text(index, self.part_text(index) + delta)

    def wire(self, flavor: str) -> dict[str, Any]:
        """The item as ``realtime.item`` in the `flavor` (``"ga"`` or ``"beta"``) shape."""
        item = self.item
        base: dict[str, Any] = {"id": item.id, "object": "realtime.item", "type": item.type}
        if item.type == "message":
            rename = _TO_BETA if flavor == "beta" else {}
            content = [{**p, "type": rename.get(p["type"], p["type"])} for p in self.parts]
            base.update(status=item.status, role=item.role, content=content)
        elif item.type == "function_call":
            base.update(
                status=item.status, name=item.name, call_id=item.call_id, arguments=item.arguments
            )
        else:
            base.update(call_id=item.call_id, output=item.output)
            if flavor == "ga":
                base["status"] = item.status
        return base


def item_from_client(raw: dict[str, Any], item_id: str) -> WireItem:
    """A validated client item (GA or beta shape) as a `WireItem`; audio bytes dropped."""
    parts = []
    for part in raw.get("content") or ():
        entry = {k: v for k, v in part.items() if k != "audio"}
        entry["type"] = _FROM_BETA.get(part["type"], part["type"])
        parts.append(entry)
    kind = raw["type"]
    wire = WireItem(
        ConversationItem(
            id=item_id,
            role=raw.get("role") or _ROLE_OF_TYPE.get(kind, "assistant"),
            type=kind,
            name=raw.get("name"),
            call_id=raw.get("call_id"),
            arguments=raw.get("arguments"),
            output=raw.get("output"),
        ),
        parts,
    )
    wire.sync_text()
    return wire


def user_audio_item(item_id: str, audio_ms: int) -> WireItem:
    """A committed input audio buffer: its transcript is unknown (None) until transcribed."""
    return WireItem(
        ConversationItem(id=item_id, role="user"),
        [{"type": "input_audio", "transcript": None}],
        audio_ms,
    )


def assistant_message(item_id: str) -> WireItem:
    """An assistant message being generated: no parts until its first part is added."""
    return WireItem(ConversationItem(id=item_id, role="assistant", status="in_progress"))


def function_call_item(item_id: str, name: str, call_id: str) -> WireItem:
    """A function call being generated: its arguments grow from ``""``."""
    return WireItem(
        ConversationItem(
            id=item_id,
            role="assistant",
            type="function_call",
            status="in_progress",
            name=name,
            call_id=call_id,
            arguments="",
        )
    )


class Conversation:
    """Ordered `WireItem`s with O(1) lookup, bounded (see the module docstring)."""

    def __init__(self, max_items: int = 512, max_chars: int = 1_000_000) -> None:
        self._items: OrderedDict[str, WireItem] = OrderedDict()
        self.max_items = max_items
        self.max_chars = max_chars

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def get(self, item_id: str) -> WireItem | None:
        return self._items.get(item_id)

    @property
    def last_id(self) -> str | None:
        return next(reversed(self._items), None) if self._items else None

    def insert(
        self, item: WireItem, previous_item_id: str | None = None, *, at_end: bool = True
    ) -> str | None:
        """Insert after `previous_item_id` (or at the end); return the actual previous id."""
        if at_end or previous_item_id is None:
            prev = self.last_id
            self._items[item.id] = item
        else:
            prev = previous_item_id
            items = list(self._items.items())
            index = next(i for i, (k, _) in enumerate(items) if k == previous_item_id)
            items.insert(index + 1, (item.id, item))
            self._items = OrderedDict(items)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)
        while len(self._items) > 1 and self._chars() > self.max_chars:
            self._items.popitem(last=False)
        return prev

    def _chars(self) -> int:
        return sum(
            len(w.item.text) + len(w.item.arguments or "") + len(w.item.output or "")
            for w in self._items.values()
        )

    def delete(self, item_id: str) -> bool:
        return self._items.pop(item_id, None) is not None

    def previous_of(self, item_id: str) -> str | None:
        """The id of the item before `item_id` (None when first or unknown)."""
        previous = None
        for key in self._items:
            if key == item_id:
                return previous
            previous = key
        return None

    def user_audio_ms(self) -> int:
        return sum(w.audio_ms for w in self._items.values() if w.item.role == "user")

    def last_transfer_target(self) -> str | None:
        """The agent named by the latest ``transfer_to_<agent>`` call, if any."""
        for wire in reversed(self._items.values()):
            name = wire.item.name or ""
            if wire.item.type == "function_call" and name.startswith(HANDOFF_PREFIX):
                return name[len(HANDOFF_PREFIX) :].replace("_", " ")
        return None

    def history(self) -> list[ConversationItem]:
        """Copies of the items, oldest first: what the brain is given (a snapshot)."""
        return [dataclasses.replace(w.item) for w in self._items.values()]


# ---------------------------------------------------------------- conversation.item.* events


def _not_found(item_id: str) -> ClientEventError:
    return ClientEventError("invalid_value", f"Item with id '{item_id}' not found.", "item_id")


def announce(item: WireItem, prev: str | None, flavor: str) -> list[dict[str, Any]]:
    """The item-creation events of this flavour (GA: added + done; beta: created)."""
    wire = item.wire(flavor)
    kinds = ("added", "done") if flavor == "ga" else ("created",)
    return [
        {"type": f"conversation.item.{kind}", "previous_item_id": prev, "item": wire}
        for kind in kinds
    ]


def create_item(
    conversation: Conversation, data: dict[str, Any], flavor: str, new_id: Callable[[str], str]
) -> list[dict[str, Any]]:
    raw = data["item"]
    item_id = raw.get("id") or new_id("item")
    if item_id in conversation:
        raise ClientEventError(
            "item_already_exists", f"Item with id '{item_id}' already exists.", "item.id"
        )
    previous = data.get("previous_item_id")
    if previous is not None and previous not in conversation:
        raise ClientEventError(
            "invalid_value",
            f"Previous item with id '{previous}' does not exist.",
            "previous_item_id",
        )
    item = item_from_client(raw, item_id)
    prev = conversation.insert(item, previous, at_end=previous is None)
    return announce(item, prev, flavor)


def truncate_item(conversation: Conversation, data: dict[str, Any]) -> dict[str, Any]:
    item = conversation.get(data["item_id"])
    if item is None:
        raise _not_found(data["item_id"])
    audio = [i for i, p in enumerate(item.parts) if p["type"] == "output_audio"]
    if item.item.role != "assistant" or not audio:
        raise ClientEventError(
            "invalid_value", "Only assistant messages with audio can be truncated.", "item_id"
        )
    if data["content_index"] != 0:
        raise ClientEventError("invalid_value", "Invalid 'content_index'.", "content_index")
    end_ms = data["audio_end_ms"]
    if end_ms < 0 or end_ms > item.audio_ms:
        raise ClientEventError(
            "invalid_value",
            f"Audio content of {item.audio_ms}ms is already shorter than {end_ms}ms",
            "audio_end_ms",
        )
    if item.audio_ms:
        transcript = item.part_text(audio[0])
        item.set_text(audio[0], transcript[: len(transcript) * end_ms // item.audio_ms])
    item.audio_ms = end_ms
    return {
        "type": "conversation.item.truncated",
        "item_id": item.id,
        "content_index": 0,
        "audio_end_ms": end_ms,
    }


def delete_item(conversation: Conversation, data: dict[str, Any]) -> dict[str, Any]:
    if not conversation.delete(data["item_id"]):
        raise _not_found(data["item_id"])
    return {"type": "conversation.item.deleted", "item_id": data["item_id"]}


def retrieve_item(conversation: Conversation, data: dict[str, Any], flavor: str) -> dict[str, Any]:
    item = conversation.get(data["item_id"])
    if item is None:
        raise _not_found(data["item_id"])
    return {"type": "conversation.item.retrieved", "item": item.wire(flavor)}
