"""WebSocket close codes the server uses, and the `error` event that announces each.

RFC 6455 section 7.4.1 defines the 1000-range codes; 4000-4999 are for applications.
docs/protocol.md lists what a client sees and what it should do about each.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    NORMAL = 1000  # the session ended as asked
    GOING_AWAY = 1001  # the server is shutting down: reconnect later
    PROTOCOL_ERROR = 1002  # the client broke the WebSocket protocol
    INVALID_DATA = 1007  # a text frame that is not UTF-8
    POLICY = 1008  # invalid session id, or too many invalid messages
    TOO_BIG = 1009  # a message over the size limit
    INTERNAL = 1011  # a bug ended this session (and only this one)
    REPLACED = 1012  # another connection took over this session id
    TRY_AGAIN = 1013  # the client read too slowly; reconnect
    KICKED = 4000  # an operator ended the session (the reason is in the error event)
    TIME_LIMIT = 4001  # the session reached its longest allowed duration
    BUDGET = 4002  # the session reached its token or cost limit


# The `error` code a client receives just before the socket closes with a given code,
# so the reason survives a transport that loses the Close frame.
CLOSE_ERRORS: dict[int, str] = {
    CloseCode.GOING_AWAY: "server_shutting_down",
    CloseCode.POLICY: "too_many_errors",
    CloseCode.REPLACED: "replaced",
    CloseCode.KICKED: "kicked",
    CloseCode.TIME_LIMIT: "session_time_limit",
    CloseCode.BUDGET: "session_budget",
}

# Closes after which the client should open the same session id again at once: its
# `error` event carries `"reconnect": true` (a load balancer sends it to another
# instance).
RECONNECT_CODES: frozenset[int] = frozenset({CloseCode.GOING_AWAY})
