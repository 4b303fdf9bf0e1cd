"""Resume: a reconnect to a room continues its conversation (docs/store.md, "Resume").

Rules:
1. A connection to `session_id` resumes when the conversation store holds an earlier
   connection to it that was active within `VOICEAGENT_RESUME_WINDOW_S` (its end, or
   its newest item when the server that held it was killed), and, with room tokens
   on, the same token `sub` held it. Works across instances that share a database.
2. The store is read once, before `session_started`, bounded by `RESUME_TIMEOUT_S`
   in all: a store that is slow or down means a fresh conversation, never a stuck
   room. This room's records this process still has queued are flushed first (a quick
   reconnect to the same instance), for at most `FLUSH_WAIT_S`; a room with none
   queued does not wait for other rooms' writes (they would add up to
   `VOICEAGENT_STORE_FLUSH_MS` to every handshake); a store still migrating (a
   server that has just started) is waited for as long, then skipped.
3. What resumes: the browser gets `history_added` for every earlier item (ids made
   unique as `<id>@<connection>`, since a model's ids are unique in one connection
   only); the model gets the items it can take (conversation.py `replayable`) as soon
   as it connects; the agent that spoke last speaks again.
"""

from __future__ import annotations

import logging
import time

import trio

from voiceagent.access.tokens import RoomGrant
from voiceagent.conversation import ConversationItem
from voiceagent.graph import Agent
from voiceagent.logs import log_event
from voiceagent.session.history import HISTORY_MAX_ITEMS
from voiceagent.session.room import Room

log = logging.getLogger("voiceagent.session")

RESUME_TIMEOUT_S = 3.0
FLUSH_WAIT_S = 1.0


async def resume(room: Room, grant: RoomGrant) -> int:
    """Load an earlier conversation of this room if rule 1 allows; returns its length."""
    store = room.services.store
    settings = room.settings
    if store is None or not settings.resume_window_s:
        return 0
    items: list[ConversationItem] = []
    final_agent: str | None = None
    try:
        with trio.fail_after(RESUME_TIMEOUT_S):
            with trio.move_on_after(FLUSH_WAIT_S):
                await store.migrated.wait()  # a server that has just started
            if not store.migrated.is_set():
                log_event(log, "resume_skipped", reason="the store is not ready")
                return 0
            await store.flush_room(room.session_id, FLUSH_WAIT_S)
            visit = await store.last_visit(room.session_id)
            if visit is None:
                return 0
            if time.time() - visit.last_active > settings.resume_window_s:
                return 0
            if settings.auth_enabled and (visit.sub or "") != grant.sub:
                log_event(log, "resume_refused", reason="another user held this room")
                return 0
            final_agent = visit.final_agent
            # As many as the page's history keeps (history.py), the newest.
            earlier = await store.items(room.session_id, newest=HISTORY_MAX_ITEMS)
            for record in earlier:
                item = record.conversation_item()
                item.id = f"{item.id}@{record.connection_id[:8]}"
                items.append(item)
    except Exception as exc:  # trio.TooSlowError included: a fresh conversation instead
        log_event(log, "resume_failed", level=logging.WARNING, error=repr(exc))
        return 0
    if final_agent:
        room.agent = find_agent(room.agent, final_agent) or room.agent
    room.resumed = tuple(items)  # the session shows them after `session_started`
    log_event(log, "session_resumed", items=len(items), agent=room.agent.name)
    return len(items)


def find_agent(start: Agent, name: str) -> Agent | None:
    """The agent called `name` among those reachable from `start` by handoffs."""
    seen: set[int] = set()
    todo = [start]
    while todo:
        agent = todo.pop()
        if id(agent) in seen:
            continue
        seen.add(id(agent))
        if agent.name == name:
            return agent
        todo.extend(edge.target for edge in agent._handoffs())
    return None
