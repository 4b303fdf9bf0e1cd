"""Agents, handoffs as transfer_to_* tools, and loading the starting agent by path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from voiceagent.config import Settings
from voiceagent.graph import (
    DEFAULT_AGENT_PATH,
    Agent,
    FunctionTool,
    Handoff,
    function_tool,
    handoff,
    load_agent,
)


@function_tool(examples=("where is my order",))
def track_order(order_id: str) -> str:
    """Track an order.

    Args:
        order_id: The order number.
    """
    return f"{order_id} is on its way"


@function_tool(examples=("I want my money back",))
def refund(order_id: str) -> str:
    """Refund an order.

    Args:
        order_id: The order number.
    """
    return "refunded"


# A cycle: desk -> orders -> desk, declared without any import trick.
orders = Agent(
    name="Orders Desk",
    instructions="You handle orders.",
    tools=[track_order],
    handoffs=[lambda: front_desk],
    handoff_description="Track your orders.",
)
refunds = Agent(name="Refunds", tools=[refund], handoffs=["tests.graph.test_agent:front_desk"])
front_desk = Agent(name="Front Desk", instructions="Greet.", handoffs=[orders, handoff(refunds)])
not_an_agent = "just a string"


def test_setup_lists_tools_and_transfer_tools() -> None:
    setup = orders.setup()
    assert setup.agent_name == "Orders Desk"
    assert setup.instructions == "You handle orders."
    assert [t.name for t in setup.tools] == ["track_order", "transfer_to_front_desk"]
    assert setup.tools[0].parameters["required"] == ["order_id"]
    transfer = setup.tools[1].as_function()
    assert transfer["parameters"] == {"type": "object", "properties": {}}


def test_handoff_tool_description_comes_from_the_target() -> None:
    specs = {t.name: t for t in front_desk.setup().tools}
    assert specs["transfer_to_orders_desk"].description == "Track your orders."
    # No handoff_description: a plain sentence naming the target.
    assert specs["transfer_to_refunds"].description == (
        "Transfer the conversation to the Refunds. From there: refund an order."
    )


def test_a_way_back_describes_what_lies_beyond_it() -> None:
    back = {t.name: t for t in orders.setup().tools}["transfer_to_front_desk"]
    # Front Desk has no description of its own; what it leads to is still described.
    assert back.description == (
        "Transfer the conversation to the Front Desk. From there: refund an order."
    )


def test_handoff_tool_carries_example_phrases_of_what_lies_behind_it() -> None:
    specs = {t.name: t for t in front_desk.setup().tools}
    assert "where is my order" in specs["transfer_to_orders_desk"].examples
    assert "I want my money back" not in specs["transfer_to_orders_desk"].examples
    # Going back to the desk leads on to refunds, so its phrases count too.
    back = {t.name: t for t in orders.setup().tools}["transfer_to_front_desk"]
    assert "I want my money back" in back.examples
    assert "where is my order" not in back.examples


def test_resolve_finds_tools_and_handoffs() -> None:
    assert front_desk.resolve("nope") is None
    tool = orders.resolve("track_order")
    assert isinstance(tool, FunctionTool)
    edge = orders.resolve("transfer_to_front_desk")
    assert isinstance(edge, Handoff)
    assert edge.target is front_desk
    assert edge.tool_name == "transfer_to_front_desk"


def test_lazy_and_dotted_handoff_targets_resolve() -> None:
    edge = refunds.resolve("transfer_to_front_desk")
    assert isinstance(edge, Handoff)
    assert edge.target is front_desk


def test_handoffs_can_be_added_after_creation() -> None:
    a = Agent(name="A")
    b = Agent(name="B Team")
    a.handoffs.append(b)
    assert [t.name for t in a.setup().tools] == ["transfer_to_b_team"]
    assert isinstance(a.resolve("transfer_to_b_team"), Handoff)


def test_handoff_options_override_description_and_add_examples() -> None:
    a = Agent(name="A", handoffs=[handoff(orders, tool_description="Orders.", examples=["x y"])])
    spec = a.setup().tools[0]
    assert spec.description == "Orders. From there: track an order; refund an order."
    assert spec.examples[0] == "x y"


def test_a_handoff_that_is_not_an_agent_is_a_clear_error() -> None:
    a = Agent(name="A", handoffs=[lambda: "oops"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not an Agent"):
        a.setup()


def test_duplicate_tool_names_are_refused() -> None:
    a = Agent(name="A", tools=[track_order, track_order])
    with pytest.raises(ValueError, match="two tools are named 'track_order'"):
        a.setup()


def test_an_agent_needs_a_name() -> None:
    with pytest.raises(ValueError):
        Agent(name="  ")


@pytest.mark.parametrize(
    "path", ["tests.graph.test_agent:front_desk", "tests.graph.test_agent.front_desk"]
)
def test_load_agent_accepts_colon_and_dot_paths(path: str) -> None:
    assert load_agent(path) is front_desk


def test_the_default_agent_is_the_airline_triage() -> None:
    agent = load_agent(DEFAULT_AGENT_PATH)
    assert agent.name == "Triage Agent"
    # The setting's default is the same path, and its module is agents/airline.py.
    assert Settings().agent == DEFAULT_AGENT_PATH
    module = sys.modules[DEFAULT_AGENT_PATH.partition(":")[0]]
    assert Path(module.__file__ or "") == Path(__file__).parents[2] / "agents" / "airline.py"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_package.graph:agent", "no module named 'no_such_package.graph'"),
        ("tests.graph.test_agent:missing", "has no attribute 'missing'"),
        ("tests.graph.test_agent:not_an_agent", "names a str, not a voiceagent Agent"),
        ("front_desk", "must look like 'package.module:agent_name'"),
        ("tests.graph.test_agent:", "must look like"),
    ],
)
def test_load_agent_errors_name_the_path(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        load_agent(path)
    assert repr(path) in str(info.value)


def test_load_agent_reports_a_module_that_fails_to_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "broken_graph_mod.py").write_text("raise RuntimeError('typo in my graph')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError, match="importing 'broken_graph_mod' failed: typo in my graph"):
        load_agent("broken_graph_mod:agent")


def test_plain_functions_in_tools_become_tools() -> None:
    def shout(text: str) -> str:
        """Shout it.

        Args:
            text: What to shout.
        """
        return text.upper()

    agent = Agent(name="Loud", tools=[shout])  # type: ignore[list-item]
    tool = agent.resolve("shout")
    assert isinstance(tool, FunctionTool)
    assert tool.parameters["properties"]["text"]["description"] == "What to shout."
