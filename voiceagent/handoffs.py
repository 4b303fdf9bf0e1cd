"""How handoff tools are named: "Seat Booking Agent" -> `transfer_to_seat_booking_agent`.

The agent graph names its handoff tools this way, and the offline brain and the Realtime
emulator recognise them by the prefix. It sits below them all (it imports nothing from
the package), so none of them imports another for a name.
"""

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
    """Whether `tool_name` is a handoff tool rather than a function tool."""
    return tool_name.startswith(HANDOFF_PREFIX)
