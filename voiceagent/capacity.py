"""How many rooms one process takes: a cap under its open-file limit.

Rules:
- Every WebSocket holds one file descriptor (two or three with cloud model and voice
  sockets). The cap is `WS_MAX_CONNECTIONS`, or by default min(10 000, the soft
  RLIMIT_NOFILE read at start-up minus `FD_RESERVE`); a configured value above that
  room is lowered to it, with a warning. The reserve keeps descriptors for the
  listening socket, /healthz and /metrics, model files and log files.
- Past the cap a WebSocket is refused at the handshake with HTTP 503 (`Retry-After`),
  before any session exists, and counted (`voiceagent_connections_refused_total`).
- If descriptors run out anyway (idle TCP connections count too), Trio's accept loop
  logs `EMFILE` with a traceback every 0.1 s while it retries. `watch_accept_errors()`
  turns that into one line per 5 s saying how many were held back, and a counter
  (`voiceagent_accept_errors_total`).
Nothing here blocks or raises: admission is a counter on the event loop's thread.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass, field

from prometheus_client import Counter

from voiceagent import metrics
from voiceagent.logs import RateLimitFilter, log_event

log = logging.getLogger("voiceagent.capacity")

FD_RESERVE = 64
DEFAULT_MAX_CONNECTIONS = 10_000
REFUSED = Counter(
    "voiceagent_connections_refused",
    "WebSockets refused at the handshake (HTTP 503): the process was at its cap",
    registry=metrics.REGISTRY,
)
ACCEPT_ERRORS = Counter(
    "voiceagent_accept_errors",
    "accept() failures of the listening socket (EMFILE, ENFILE, ENOMEM, ENOBUFS)",
    registry=metrics.REGISTRY,
)
_refusals = logging.getLogger("voiceagent.capacity.refused")
_refusals.addFilter(RateLimitFilter(5.0))


def fd_limit() -> int | None:
    """The soft open-file limit of this process (None: unlimited)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


@dataclass(slots=True)
class Capacity:
    """The room count of one app: its cap, and how many WebSockets are open now."""

    max_connections: int
    fd_limit: int | None
    connections: int = field(default=0)

    @classmethod
    def from_setting(cls, configured: int) -> Capacity:
        """`configured` (0: the default) bounded by the open-file limit."""
        limit = fd_limit()
        room = DEFAULT_MAX_CONNECTIONS if limit is None else max(1, limit - FD_RESERVE)
        cap = min(configured or DEFAULT_MAX_CONNECTIONS, room)
        if configured and configured > room:
            log_event(
                log,
                "max_connections_lowered",
                level=logging.WARNING,
                configured=configured,
                max_connections=cap,
                fd_limit=limit,
            )
        return cls(cap, limit)

    def admit(self) -> bool:
        """Take a place for one WebSocket; False (counted, logged) when full."""
        if self.connections >= self.max_connections:
            REFUSED.inc()
            log_event(
                _refusals,
                "connection_refused",
                level=logging.WARNING,
                max_connections=self.max_connections,
            )
            return False
        self.connections += 1
        return True

    def release(self) -> None:
        self.connections -= 1


def watch_accept_errors() -> None:
    """Rate-limit Trio's accept-failure lines and count them (idempotent)."""
    logger = logging.getLogger("trio.serve_listeners")
    if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
        logger.addFilter(RateLimitFilter(5.0, count=lambda record: ACCEPT_ERRORS.inc()))
