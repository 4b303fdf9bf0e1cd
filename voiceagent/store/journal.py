"""What one connection of a room tells the store: the session runtime's only door to it.

Rules:
1. Every method is synchronous, never waits and never raises into the room: it builds
   a record from values the room already has and hands it to `Store.put()` (a
   `send_nowait`; see writer.py for what a full queue does). With no store configured
   every method returns at once.
2. Items are recorded when they become final (history.py: any status but
   `in_progress`); a later version of the same item replaces the earlier one in the
   store, so a reply cut by a barge-in is stored as heard.
3. `closed()` carries the billing record: duration, tokens by kind, and cost from the
   price table, per provider.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from voiceagent.conversation import ConversationItem
from voiceagent.events import Usage
from voiceagent.store.records import (
    ConnectionClosed,
    ConnectionOpened,
    ItemFinal,
    Mark,
    TurnMetrics,
)

if TYPE_CHECKING:
    from voiceagent.store.writer import Store

USAGE_KINDS = (
    "input_tokens",
    "output_tokens",
    "input_text_tokens",
    "input_audio_tokens",
    "output_text_tokens",
    "output_audio_tokens",
    "cached_tokens",
)


class Journal:
    def __init__(self, store: Store | None, session_id: str) -> None:
        self._store = store
        self.session_id = session_id
        self.connection_id = uuid.uuid4().hex
        self.started_at = time.time()
        self.usage = dict.fromkeys(USAGE_KINDS, 0)  # what the model reported, summed
        self.cost_usd = 0.0
        self.responses = 0

    @property
    def enabled(self) -> bool:
        return self._store is not None

    def opened(
        self,
        *,
        sub: str | None,
        agent: str,
        model: str,
        tts: str,
        resumed: int,
        recording: str | None = None,
    ) -> None:
        if self._store is not None:
            self._store.put(
                ConnectionOpened(
                    self.session_id,
                    self.connection_id,
                    self.started_at,
                    sub,
                    agent,
                    model,
                    tts,
                    resumed,
                    recording,
                )
            )

    def item(
        self,
        item: ConversationItem,
        seq: int,
        *,
        error: str | None = None,
        duration_ms: float | None = None,
    ) -> None:
        if self._store is not None:
            self._store.put(
                ItemFinal.of(
                    self.session_id,
                    self.connection_id,
                    seq,
                    time.time(),
                    item,
                    error=error,
                    duration_ms=duration_ms,
                )
            )

    def turn(self, metrics: dict[str, Any]) -> None:
        if self._store is not None:
            self._store.put(TurnMetrics(self.session_id, self.connection_id, time.time(), metrics))

    def mark(self, kind: str, **detail: Any) -> None:
        if self._store is not None:
            self._store.put(Mark(self.session_id, self.connection_id, time.time(), kind, detail))

    def charge(self, usage: Usage, cost_usd: float) -> None:
        """One response's usage (room.py `charge()`); summed for the billing record."""
        self.responses += 1
        self.cost_usd += cost_usd
        totals = self.usage
        for kind in USAGE_KINDS:
            totals[kind] += getattr(usage, kind)

    def closed(self, *, reason: str, code: int, agent: str, model: str, tts: str) -> None:
        if self._store is None:
            return
        ended = time.time()
        self._store.put(
            ConnectionClosed(
                self.session_id,
                self.connection_id,
                ended,
                reason,
                code,
                agent,
                self.billing(ended, model, tts),
            )
        )

    def billing(self, ended: float, model: str, tts: str) -> dict[str, Any]:
        """The billing record (docs/session-report.schema.json, `billing`)."""
        cost = round(self.cost_usd, 8)
        return {
            "duration_s": round(ended - self.started_at, 3),
            "responses": self.responses,
            "cost_usd": cost,
            "providers": [
                {"kind": "model", "provider": model, **self.usage, "cost_usd": cost},
                # No price table for voices: their cost is the provider's invoice.
                {"kind": "tts", "provider": tts, "cost_usd": None},
            ],
        }
