"""Agent graphs: agents, function tools, handoffs and output guardrails.

A graph is plain configuration (see `agents/airline.py` for the demo users copy):

    @function_tool(timeout=5, examples=("what is the baggage allowance",))
    def faq_lookup_tool(question: str) -> str:
        '''Answer questions about baggage, wifi and seats.

        Args:
            question: The caller's question, in their words.
        '''

    faq_agent = Agent(name="FAQ Agent", instructions="...", tools=[faq_lookup_tool],
                      handoffs=[lambda: triage_agent],
                      handoff_description="Answer questions about baggage, wifi and seats.")
    triage_agent = Agent(name="Triage Agent", handoffs=[faq_agent])

Pieces:
- `function_tool` turns a sync or async function into a `FunctionTool`. Its JSON schema
  comes from the type hints and the docstring's `Args:` section; a first parameter
  annotated `ToolContext` is injected (session id, per-session `state` that survives
  handoffs). Options: `name`, `description`, `timeout` (seconds), `cancel_on_interrupt`,
  `examples` (phrases for the offline brain). Raise `ToolError("...")` for a failure the
  caller should hear.
- `Agent(name, instructions, tools, handoffs, handoff_description, output_guardrails,
  guardrail_safe_line)`. `agent.setup()` is what a speech model receives: instructions
  plus tool specs, handoffs included as `transfer_to_<agent_name>` tools;
  `agent.resolve(tool_name)` finds the tool or handoff a model called.
- `handoff(target, tool_description=..., examples=...)`: an edge to an Agent, a
  zero-argument callable returning one (for cycles such as triage <-> specialists), or
  a dotted path. Plain Agents and callables in `handoffs=[...]` are wrapped for you.
- `run_tool(tool, arguments_json, ctx, limiter=...)` runs one call: validation, timeout,
  sync tools in a thread behind the limiter. Failures come back as a `ToolResult` with
  output "error: ..." for the model to read; only cancellation propagates.
- `output_guardrail` / `OutputGuardrail` and `GuardrailMonitor`: debounced checks on the
  assistant text as it streams; a trip means "cancel and say the agent's safe line".
- `load_agent("package.module:agent")`: the starting agent (`VOICEAGENT_AGENT`, default
  `voiceagent.demo.airline:triage_agent`, the repository's `agents/airline.py`).

The graph knows nothing of any model. The offline model is driven by a separate brain
(`voiceagent.brain.OfflineBrain`) that reads only the `AgentSetup`s the graph produces:
it matches requests against the tool names, descriptions, parameters and examples, and
fills arguments from speech. Write tool and handoff descriptions as short verb phrases
("Change the seat on a booking.") and give tools a few `examples`: the offline brain
reads them out to users ("I can change the seat on a booking") and matches requests
against them.
"""

from voiceagent.graph.agent import Agent, Handoff, handoff
from voiceagent.graph.execution import ToolResult, run_tool
from voiceagent.graph.guardrails import (
    GuardrailMonitor,
    GuardrailResult,
    OutputGuardrail,
    output_guardrail,
)
from voiceagent.graph.loading import DEFAULT_AGENT_PATH, load_agent
from voiceagent.graph.schema import ToolArgumentError
from voiceagent.graph.tools import FunctionTool, ToolContext, ToolError, function_tool
from voiceagent.handoffs import transfer_tool_name

__all__ = [
    "DEFAULT_AGENT_PATH",
    "Agent",
    "FunctionTool",
    "GuardrailMonitor",
    "GuardrailResult",
    "Handoff",
    "OutputGuardrail",
    "ToolArgumentError",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "function_tool",
    "handoff",
    "load_agent",
    "output_guardrail",
    "run_tool",
    "transfer_tool_name",
]
