"""Agents and handoffs: the nodes and edges of an agent graph.

An `Agent` is configuration: instructions, tools, handoffs, output guardrails. A
`Handoff` is an edge to another agent, offered to the model as a tool named
`transfer_to_<agent_name>`. Handoff targets may be given lazily, so agents can point at
each other (triage <-> specialists) without import cycles:

    faq_agent = Agent(name="FAQ Agent", ..., handoffs=[lambda: triage_agent])
    triage_agent = Agent(name="Triage Agent", ..., handoffs=[faq_agent])

A target is an `Agent`, a zero-argument callable returning one, or a dotted path
("voiceagent.demo.airline:triage_agent"). It is resolved on first use (`Agent.setup()`), and a
target that does not resolve to an `Agent` raises `TypeError` naming the handoff.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from voiceagent.conversation import AgentSetup, ToolSpec
from voiceagent.graph.guardrails import OutputGuardrail
from voiceagent.graph.tools import FunctionTool, function_tool
from voiceagent.handoffs import transfer_tool_name
from voiceagent.interruption import InterruptionSettings
from voiceagent.stems import content_stems

HandoffTarget = Union["Agent", Callable[[], "Agent"], str]

DEFAULT_SAFE_LINE = "Sorry, I can't share that. Is there anything else I can help with?"

# How far handoff tools look into the graph for example phrases (bounded fan-out).
_MAX_REACHABLE_AGENTS = 8
_MAX_EXAMPLES = 64


@dataclass(eq=False, slots=True)
class Handoff:
    """An edge to another agent, exposed to the model as `transfer_to_<agent>`."""

    agent: HandoffTarget
    tool_description: str | None = None
    examples: tuple[str, ...] = ()
    _resolved: Agent | None = None

    @property
    def target(self) -> Agent:
        """The target agent (resolved on first access)."""
        if self._resolved is None:
            self._resolved = _resolve_target(self.agent)
        return self._resolved

    @property
    def tool_name(self) -> str:
        return transfer_tool_name(self.target.name)

    @property
    def description(self) -> str:
        target = self.target
        if self.tool_description:
            return self.tool_description
        return target.handoff_description or f"Transfer the conversation to the {target.name}."


def _resolve_target(target: HandoffTarget) -> Agent:
    if isinstance(target, Agent):
        return target
    if isinstance(target, str):
        from voiceagent.graph.loading import load_agent  # late: it imports user modules

        return load_agent(target)
    if callable(target):
        agent = target()
        if isinstance(agent, Agent):
            return agent
        raise TypeError(f"handoff target callable returned {type(agent).__name__}, not an Agent")
    raise TypeError(f"handoff target must be an Agent, a callable or a dotted path: {target!r}")


def handoff(
    agent: HandoffTarget,
    *,
    tool_description: str | None = None,
    examples: tuple[str, ...] | list[str] = (),
) -> Handoff:
    """A handoff to `agent` (an Agent, a zero-arg callable returning one, or a dotted path).

    `tool_description` overrides the target's `handoff_description` for this edge;
    `examples` are phrases that should lead here (used by the offline brain only).
    """
    return Handoff(agent, tool_description, tuple(examples))


@dataclass(eq=False)
class Agent:
    """One agent of a graph. `setup()` is what a speech model is given on (re)entry."""

    name: str
    instructions: str = ""
    tools: list[FunctionTool] = field(default_factory=list)
    handoffs: list[Handoff | HandoffTarget] = field(default_factory=list)
    handoff_description: str = ""
    output_guardrails: list[OutputGuardrail] = field(default_factory=list)
    guardrail_safe_line: str = DEFAULT_SAFE_LINE
    # Turn-taking (voiceagent/interruption.py): False makes every response of this
    # agent play through the user's speech (a legal disclaimer); `interruption`
    # overrides the server's settings for this agent, e.g. {"min_interruption_words": 2}.
    allow_interruptions: bool = True
    interruption: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("an agent needs a name")
        unknown = set(self.interruption) - set(InterruptionSettings.__dataclass_fields__)
        if unknown:
            raise ValueError(f"agent {self.name!r}: unknown interruption settings {unknown}")
        # A plain function in `tools` is made a tool with the defaults.
        self.tools = [t if isinstance(t, FunctionTool) else function_tool(t) for t in self.tools]
        self.handoffs = [h if isinstance(h, Handoff) else Handoff(h) for h in self.handoffs]

    def _handoffs(self) -> list[Handoff]:
        # Edges added after creation (agent.handoffs.append(other)) are accepted too.
        self.handoffs = [h if isinstance(h, Handoff) else Handoff(h) for h in self.handoffs]
        return self.handoffs  # type: ignore[return-value]

    def setup(self) -> AgentSetup:
        """Instructions plus ToolSpecs for every tool and `transfer_to_*` handoff.

        Raises `ValueError` when two tools would share a name, `TypeError` when a
        handoff target does not resolve to an Agent.
        """
        specs = [tool.spec() for tool in self.tools]
        for edge in self._handoffs():
            description, examples = _reachable(edge, origin=self)
            specs.append(ToolSpec(edge.tool_name, description, examples=examples))
        seen: set[str] = set()
        for spec in specs:
            if spec.name in seen:
                raise ValueError(f"agent {self.name!r}: two tools are named {spec.name!r}")
            seen.add(spec.name)
        return AgentSetup(agent_name=self.name, instructions=self.instructions, tools=tuple(specs))

    def interruption_settings(self, base: InterruptionSettings) -> InterruptionSettings:
        """The server's interruption settings with this agent's overrides."""
        return base.override(**self.interruption) if self.interruption else base

    def resolve(self, name: str) -> FunctionTool | Handoff | None:
        """The tool or handoff the model called by `name`, or None if this agent has none."""
        for tool in self.tools:
            if tool.name == name:
                return tool
        for edge in self._handoffs():
            if edge.tool_name == name:
                return edge
        return None


def _reachable(edge: Handoff, *, origin: Agent) -> tuple[str, tuple[str, ...]]:
    """Description and example phrases for a handoff tool, from what lies behind it.

    A caller at triage who asks about baggage should pick "transfer_to_faq_agent" because
    the FAQ agent's tool fits; a caller at the FAQ agent who wants a seat change should
    pick "transfer_to_triage_agent" because triage leads on to seat booking. So the
    description gains the sentences of agents and tools reachable through the target
    that it does not already say (models read them), and the examples gain their
    example phrases (the offline brain reads those). The walk skips the origin agent
    and is bounded.
    """
    description = edge.description
    said = set(content_stems(description))
    extra: list[str] = []
    phrases: list[str] = list(edge.examples)
    visited = {id(origin)}
    queue = [edge.target]

    def mention(sentence: str) -> None:
        stems = set(content_stems(sentence))
        if sentence and not stems <= said:
            said.update(stems)
            extra.append(_first_sentence(sentence))

    while queue and len(visited) <= _MAX_REACHABLE_AGENTS:
        agent = queue.pop(0)
        if id(agent) in visited:
            continue
        visited.add(id(agent))
        for tool in agent.tools:
            mention(tool.description)
            phrases.append(tool.name.replace("_", " "))
            phrases.extend(tool.examples)
        for further in agent._handoffs():
            if id(further.target) not in visited:
                # Only what the graph's author wrote; not the generic "Transfer to X".
                mention(further.tool_description or further.target.handoff_description)
                phrases.extend(further.examples)
                queue.append(further.target)
    if extra:
        description = f"{description.rstrip()} From there: {'; '.join(extra)}."
    unique = list(dict.fromkeys(phrases))
    return description, tuple(unique[:_MAX_EXAMPLES])


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].rstrip(".!? ")
    return sentence if sentence[:2].isupper() else sentence[:1].lower() + sentence[1:]
