"""Names shared by the graph and the offline brain (the `transfer_to_<agent>` convention)."""

from __future__ import annotations

import re

HANDOFF_PREFIX = "transfer_to_"


def snake_name(name: str) -> str:
    """ "Seat Booking Agent" -> "seat_booking_agent"."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def transfer_tool_name(agent_name: str) -> str:
    """The tool a model calls to hand the conversation to `agent_name`."""
    return HANDOFF_PREFIX + snake_name(agent_name)


def is_transfer(tool_name: str) -> bool:
    return tool_name.startswith(HANDOFF_PREFIX)
