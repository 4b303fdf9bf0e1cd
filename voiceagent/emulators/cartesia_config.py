"""Configuration of the Cartesia emulator (latency, voice, limits, faults) and its log."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class CartesiaEmulatorConfig:
    #: the accepted key (None: any non-empty credential is accepted)
    api_key: str | None = None
    #: wall-clock seconds per second of audio (0.25 = 4x faster than real time; 0 = no pacing)
    realtime_factor: float = 0.25
    #: delay before the first chunk of every generation
    first_chunk_latency_ms: float = 90.0
    chunk_ms: int = 100
    #: "tone" (cheap, deterministic) or "local" (real speech from the local voice)
    voice: str = "tone"
    max_contexts_per_socket: int = 32
    max_inputs_per_context: int = 256
    #: the first N handshakes are refused with `reject_status` (-1: all of them)
    reject_handshakes: int = 0
    reject_status: int = 429
    #: every context fails with an error message after this many chunks (None: never)
    error_after_chunks: int | None = None
    #: close a socket after this many seconds without traffic (Cartesia: 300)
    idle_close_s: float | None = 300.0
    #: the first N accepted sockets never answer (-1: all of them)
    silent_connections: int = 0
    #: hold the first `delayed_handshakes` handshakes (-1: all) this long before
    #: answering them: a provider slow to accept, for cancellation mid-handshake
    handshake_delay_ms: float = 0.0
    delayed_handshakes: int = -1


@dataclass
class EmulatorLog:
    """What the emulator saw and sent (bounded), for tests and debugging."""

    limit: int = 10_000
    handshakes: deque[dict[str, Any]] = field(default_factory=deque)
    requests: deque[tuple[int, Any]] = field(default_factory=deque)
    responses: deque[tuple[int, dict[str, Any]]] = field(default_factory=deque)
    #: ("in" | "out", context_id, kind) in the order the emulator handled them
    timeline: deque[tuple[str, str | None, str]] = field(default_factory=deque)
    accepted: int = 0
    refused: int = 0
    idle_closed: int = 0

    def add(self, queue: deque, item: Any) -> None:
        queue.append(item)
        while len(queue) > self.limit:
            queue.popleft()

    def requests_for(self, context_id: str) -> list[dict[str, Any]]:
        return [
            r for _, r in self.requests if isinstance(r, dict) and r.get("context_id") == context_id
        ]
