"""Function calls and handoffs the model asks for.

Rules:
1. Each tool call runs in its own task and cancel scope in the session's work, so a
   slow tool never holds up the model's events or the user's audio.
2. A barge-in cancels only the running calls whose tool is `cancel_on_interrupt`;
   the others finish (an order lookup is still worth answering).
3. A call's output always goes back to the model, even when the tool failed, is
   unknown or was cancelled (the model would otherwise wait for it forever); a
   cancelled call's output asks for no follow-up response (the user spoke instead).
4. A handoff switches the room's agent, tells the client (`handoff`, `agent_end`,
   `agent_start`), gives the model the new agent's setup, then answers the call.
5. Each call, output and handoff is a history item; an output carries the tool's
   error and how long it ran to the conversation store.
"""

from __future__ import annotations

import logging
import time

import trio

from voiceagent import metrics
from voiceagent.conversation import ConversationItem
from voiceagent.events import FunctionCall
from voiceagent.graph import FunctionTool, Handoff, ToolContext, ToolResult, run_tool
from voiceagent.logs import log_event
from voiceagent.protocol import event
from voiceagent.session.model_link import ModelLink, ToolOutput, UpdateAgent
from voiceagent.session.room import Room

log = logging.getLogger("voiceagent.session")


class ToolRunner:
    def __init__(self, room: Room, link: ModelLink) -> None:
        self._room = room
        self._link = link
        self._context = ToolContext(session_id=room.session_id, state={})
        # Running calls: call id -> (its scope, whether a barge-in stops it).
        self._running: dict[str, tuple[trio.CancelScope, bool]] = {}

    @property
    def running(self) -> bool:
        """Some tool call has not finished yet."""
        return bool(self._running)

    def cancel_interruptible(self) -> None:
        """A barge-in: stop the calls that asked to be stopped by one (rule 2)."""
        for scope, cancel_on_interrupt in self._running.values():
            if cancel_on_interrupt:
                scope.cancel()

    async def on_function_call(self, call: FunctionCall) -> None:
        room = self._room
        agent = room.agent
        tool = agent.resolve(call.name)
        room.history.put(
            ConversationItem(
                id=call.item_id or call.call_id,
                role="assistant",
                type="function_call",
                status="completed",
                agent=agent.name,
                name=call.name,
                call_id=call.call_id,
                arguments=call.arguments,
            )
        )
        if isinstance(tool, Handoff):
            await self._hand_off(call, tool)
            return
        await room.put(
            event(
                "tool_start",
                call_id=call.call_id,
                name=call.name,
                arguments=call.arguments,
                agent=agent.name,
            )
        )
        assert room.work is not None
        scope = trio.CancelScope()
        self._running[call.call_id] = (scope, tool is not None and tool.cancel_on_interrupt)
        room.work.start_soon(self._run, call, tool, scope)

    async def _run(
        self, call: FunctionCall, tool: FunctionTool | None, scope: trio.CancelScope
    ) -> None:
        """Run one tool in its own scope; its output always goes back to the model."""
        room = self._room
        respond = True
        started = time.monotonic()
        try:
            with scope:
                if tool is None:
                    result = ToolResult(f"error: no tool named {call.name!r}", "unknown tool")
                else:
                    result = await run_tool(
                        tool,
                        call.arguments,
                        self._context,
                        limiter=room.services.tool_limiter,
                    )
            if scope.cancelled_caught:
                result = ToolResult("error: cancelled because the user interrupted", "cancelled")
                respond = False
        finally:
            self._running.pop(call.call_id, None)
        if result.error:
            metrics.count_error("tool_failed")
        await room.put(
            event(
                "tool_end",
                call_id=call.call_id,
                name=call.name,
                output=result.output,
                error=result.error,
            )
        )
        room.history.put(
            ConversationItem(
                id=f"out_{call.call_id}",
                role="tool",
                type="function_call_output",
                status="completed",
                agent=room.agent.name,
                name=call.name,
                call_id=call.call_id,
                output=result.output,
            ),
            error=result.error,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        await self._link.send(ToolOutput(call.call_id, result.output, respond))

    async def _hand_off(self, call: FunctionCall, handoff: Handoff) -> None:
        room = self._room
        previous, target = room.agent, handoff.target
        room.agent = target
        log_event(log, "handoff", source=previous.name, target=target.name)
        await room.put(event("handoff", **{"from": previous.name, "to": target.name}))
        await room.put(event("agent_end", agent=previous.name))
        await room.put(event("agent_start", agent=target.name))
        room.history.put(
            ConversationItem(
                id=f"handoff_{call.call_id}",
                role="assistant",
                type="handoff",
                text=f"{previous.name} -> {target.name}",
                status="completed",
                agent=target.name,
            )
        )
        await self._link.send(UpdateAgent(target.setup()))
        output = f'{{"assistant": "{target.name}"}}'
        await self._link.send(ToolOutput(call.call_id, output, True))
