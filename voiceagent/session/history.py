"""The conversation as the browser shows it: `ConversationItem`s by id, newest last.

Rules:
1. `put()` adds an item, or updates the item with the same id in place (its position
   stays; a `name` it had is kept when the update has none).
2. Every change posts `history_added` (new items only) and then `history_updated`
   with the whole list, as droppable traffic: a client that reads too slowly misses
   some snapshots, and the next one brings it up to date.
3. At most `max_items` items are kept; the oldest is forgotten first.
4. An item put with a status other than `in_progress` is final: it also goes to the
   room's journal (the conversation store, voiceagent/store/journal.py) with its
   position (the order the history first saw it), and any tool `error` and
   `duration_ms`. A later version of the same item is recorded again and wins.
5. `restore()` shows items of an earlier connection to the room (a resume): each
   gets `history_added`, then one `history_updated`; they are already stored.

The browser's item JSON is `ConversationItem.as_event_item()` (conversation.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from voiceagent.conversation import ConversationItem
from voiceagent.protocol import event
from voiceagent.session.outbox import Outbox
from voiceagent.store.journal import Journal

HISTORY_MAX_ITEMS = 200


class History:
    def __init__(
        self, outbox: Outbox, journal: Journal | None = None, max_items: int = HISTORY_MAX_ITEMS
    ) -> None:
        self._outbox = outbox
        self._journal = journal if journal is not None and journal.enabled else None
        self._max_items = max_items
        self._items: dict[str, ConversationItem] = {}
        self._positions: dict[str, int] = {}
        self._next_position = 1

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[ConversationItem]:
        return list(self._items.values())

    def put(
        self,
        item: ConversationItem,
        *,
        error: str | None = None,
        duration_ms: float | None = None,
    ) -> None:
        items = self._items
        known = items.get(item.id)
        if known is None:
            self._add(item)
            self._outbox.post(event("history_added", item=item.as_event_item()))
        else:
            if item.name is None:
                item.name = known.name
            items[item.id] = item  # replacing a dict value keeps its position
        if self._journal is not None and item.status != "in_progress":
            position = self._positions.get(item.id, 0)
            self._journal.item(item, position, error=error, duration_ms=duration_ms)
        self._post_snapshot()

    def restore(self, earlier: Iterable[ConversationItem]) -> int:
        """Rule 5; returns how many items were shown."""
        count = 0
        for item in earlier:
            if item.id in self._items:
                continue
            self._add(item)
            self._outbox.post(event("history_added", item=item.as_event_item()))
            count += 1
        if count:
            self._post_snapshot()
        return count

    def _add(self, item: ConversationItem) -> None:
        items = self._items
        items[item.id] = item
        self._positions[item.id] = self._next_position
        self._next_position += 1
        if len(items) > self._max_items:
            oldest = next(iter(items))
            del items[oldest]
            self._positions.pop(oldest, None)

    def _post_snapshot(self) -> None:
        self._outbox.post(
            event("history_updated", items=[i.as_event_item() for i in self._items.values()])
        )
