"""The conversation as the browser shows it: `ConversationItem`s by id, newest last.

Rules:
1. `put()` adds an item, or updates the item with the same id in place (its position
   stays; a `name` it had is kept when the update has none).
2. Every change posts `history_added` (new items only) and then `history_updated`
   with the whole list, as droppable traffic: a client that reads too slowly misses
   some snapshots, and the next one brings it up to date.
3. At most `max_items` items are kept; the oldest is forgotten first.

The browser's item JSON is `ConversationItem.as_event_item()` (conversation.py).
"""

from __future__ import annotations

from voiceagent.conversation import ConversationItem
from voiceagent.protocol import event
from voiceagent.session.outbox import Outbox

HISTORY_MAX_ITEMS = 200


class History:
    def __init__(self, outbox: Outbox, max_items: int = HISTORY_MAX_ITEMS) -> None:
        self._outbox = outbox
        self._max_items = max_items
        self._items: dict[str, ConversationItem] = {}

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[ConversationItem]:
        return list(self._items.values())

    def put(self, item: ConversationItem) -> None:
        items = self._items
        known = items.get(item.id)
        if known is None:
            items[item.id] = item
            if len(items) > self._max_items:
                del items[next(iter(items))]
            self._outbox.post(event("history_added", item=item.as_event_item()))
        else:
            if item.name is None:
                item.name = known.name
            items[item.id] = item  # replacing a dict value keeps its position
        self._outbox.post(
            event("history_updated", items=[i.as_event_item() for i in items.values()])
        )
