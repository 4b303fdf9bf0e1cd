"""A conversation loop over a graph, the way a session drives the offline brain.

user item -> brain.respond -> either text (the turn ends) or calls: tools run through
`run_tool`, a `transfer_to_*` call switches the agent, their outputs are appended, and
the brain is asked again with the (possibly new) agent's setup.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field, replace

import trio

from voiceagent.brain import OfflineBrain
from voiceagent.conversation import AgentSetup, ConversationItem
from voiceagent.graph import Agent, Handoff, ToolContext, run_tool

MAX_STEPS_PER_TURN = 8


@dataclass(frozen=True, slots=True)
class Call:
    agent: str
    name: str
    arguments: dict[str, object]
    output: str


@dataclass
class Dialogue:
    agent: Agent
    brain: OfflineBrain = field(default_factory=OfflineBrain)
    history: list[ConversationItem] = field(default_factory=list)
    ctx: ToolContext = field(default_factory=lambda: ToolContext(session_id="test"))
    calls: list[Call] = field(default_factory=list)
    limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(2))
    # True: the brain sees only what crosses a Realtime wire (no example phrases), as in
    # the Realtime emulator. False: the full setup, as in the embedded offline model.
    wire: bool = False
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def setup(self) -> AgentSetup:
        setup = self.agent.setup()
        if not self.wire:
            return setup
        tools = tuple(replace(spec, examples=()) for spec in setup.tools)
        return replace(setup, tools=tools)

    def _add(self, **fields: object) -> None:
        self.history.append(ConversationItem(id=f"item_{next(self._ids)}", **fields))  # type: ignore[arg-type]

    def calls_since(self, mark: int) -> list[Call]:
        return self.calls[mark:]

    async def say(self, text: str) -> str:
        """One user turn; returns what the agent says at the end of it."""
        self._add(role="user", text=text)
        for _ in range(MAX_STEPS_PER_TURN):
            reply = self.brain.respond(self.setup(), self.history)
            if not reply.calls:
                self._add(role="assistant", text=reply.text)
                return reply.text
            for name, arguments in reply.calls:
                call_id = f"call_{next(self._ids)}"
                self._add(
                    role="assistant",
                    type="function_call",
                    name=name,
                    call_id=call_id,
                    arguments=arguments,
                )
                caller = self.agent.name
                tool = self.agent.resolve(name)
                if isinstance(tool, Handoff):
                    self.agent = tool.target
                    output = json.dumps({"assistant": self.agent.name})
                elif tool is None:
                    output = f"error: no tool named {name}"
                else:
                    output = (
                        await run_tool(tool, arguments, self.ctx, limiter=self.limiter)
                    ).output
                self.calls.append(Call(caller, name, json.loads(arguments), output))
                self._add(role="tool", type="function_call_output", call_id=call_id, output=output)
        raise AssertionError(f"no spoken reply to {text!r} after {MAX_STEPS_PER_TURN} steps")
