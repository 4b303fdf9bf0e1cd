"""A tiny agent graph for session tests: one tool, one slow tool, a handoff."""

from __future__ import annotations

import trio

from voiceagent.graph import Agent, ToolContext, function_tool, handoff


@function_tool(cancel_on_interrupt=False)  # finishes even if the user barges in
def lookup_order(order_id: str) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return f"order {order_id} ships tomorrow"


@function_tool
def explode(reason: str) -> str:
    """A tool that always fails.

    Args:
        reason: Why.
    """
    raise RuntimeError(f"kaboom: {reason}")


@function_tool(cancel_on_interrupt=True)
async def slow_search(ctx: ToolContext, query: str) -> str:
    """Search slowly.

    Args:
        query: What to search for.
    """
    ctx.state["slow_search_started"] = True
    await trio.sleep(30)
    return "found it"


specialist = Agent(
    name="Specialist",
    instructions="You are the specialist.",
    tools=[lookup_order],
    handoff_description="Knows about orders.",
)

front_desk = Agent(
    name="Front Desk",
    instructions="You greet people.",
    tools=[lookup_order, explode, slow_search],
    handoffs=[handoff(specialist)],
)
