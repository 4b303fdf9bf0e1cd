"""The offline brain on a graph it has never heard of: everything comes from the schemas."""

from __future__ import annotations

from typing import Literal

import pytest
import trio

from tests.brain.dialogue import Dialogue
from voiceagent.brain import OfflineBrain
from voiceagent.brain.slots import extract_arguments, question_for
from voiceagent.conversation import AgentSetup, ConversationItem, ToolSpec
from voiceagent.graph import Agent, ToolError, function_tool


@function_tool(examples=("I would like to order a pizza", "two large pizzas please"))
def order_pizza(size: Literal["small", "medium", "large"], quantity: int) -> str:
    """Order pizzas for delivery.

    Args:
        size: The pizza size: small, medium or large.
        quantity: The number of pizzas.
    """
    return f"{quantity} {size} pizzas are on their way"


@function_tool(examples=("where is my order",))
def track_order(order_id: str) -> dict[str, str]:
    """Track a pizza order.

    Args:
        order_id: Your order code: two letters and four digits, like AB1234.
    """
    if order_id == "ZZ9999":
        raise ToolError(f"order code {order_id} is unknown")
    return {"order": order_id, "status": "in the oven"}


@function_tool(examples=("I want my money back",))
def refund(order_id: str) -> str:
    """Refund a pizza order.

    Args:
        order_id: Your order code, like AB1234.
    """
    return f"order {order_id} is refunded"


billing = Agent(
    name="Billing",
    tools=[refund],
    handoffs=[lambda: pizzeria],
    handoff_description="Handle refunds.",
)
pizzeria = Agent(
    name="Pizzeria",
    tools=[order_pizza, track_order],
    handoffs=[billing],
    handoff_description="Order and track pizzas.",
)


async def test_a_silent_start_introduces_the_agent_and_what_it_can_do() -> None:
    reply = OfflineBrain().respond(pizzeria.setup(), [])
    assert reply.text == (
        "Hello! This is the Pizzeria. I can order pizzas for delivery; "
        "track a pizza order; or handle refunds."
    )


async def test_arguments_come_from_the_request() -> None:
    dialogue = Dialogue(pizzeria)
    said = await dialogue.say("I'd like two large pizzas please")
    assert said == "2 large pizzas are on their way"
    assert dialogue.calls[0].arguments == {"size": "large", "quantity": 2}


async def test_missing_arguments_are_asked_for_one_by_one() -> None:
    dialogue = Dialogue(pizzeria)
    assert await dialogue.say("I want to order a pizza") == "What is the pizza size?"
    assert await dialogue.say("medium") == "What is the number of pizzas?"
    assert await dialogue.say("three") == "3 medium pizzas are on their way"
    assert dialogue.calls[-1].arguments == {"size": "medium", "quantity": 3}


async def test_an_unclear_answer_repeats_the_question() -> None:
    dialogue = Dialogue(pizzeria)
    await dialogue.say("I want to order a pizza")
    assert await dialogue.say("hmm banana") == "Sorry, I didn't catch that. What is the pizza size?"
    assert dialogue.calls == []


async def test_a_question_can_be_cancelled() -> None:
    dialogue = Dialogue(pizzeria)
    await dialogue.say("I want to order a pizza")
    assert await dialogue.say("never mind") == "Okay, never mind. What else can I do for you?"
    assert "I can't help" in await dialogue.say("small")
    assert dialogue.calls == []


async def test_a_new_request_replaces_an_unanswered_question() -> None:
    dialogue = Dialogue(pizzeria)
    await dialogue.say("I want to order a pizza")
    said = await dialogue.say("actually where is my order A B one two three four")
    assert said == "order: AB1234. status: in the oven"
    assert [c.name for c in dialogue.calls] == ["track_order"]


async def test_a_tool_error_is_apologised_for_and_the_blamed_argument_asked_again() -> None:
    dialogue = Dialogue(pizzeria)
    said = await dialogue.say("where is my order Z Z nine nine nine nine")
    assert said == "Sorry, order code ZZ9999 is unknown. What is your order code?"
    assert await dialogue.say("A B one two three four") == "order: AB1234. status: in the oven"


async def test_a_handoff_answers_the_request_with_the_new_agents_tools() -> None:
    dialogue = Dialogue(pizzeria)
    said = await dialogue.say("I want my money back for order X Y five five five five")
    assert said == "order XY5555 is refunded"
    assert [(c.agent, c.name) for c in dialogue.calls] == [
        ("Pizzeria", "transfer_to_billing"),
        ("Billing", "refund"),
    ]
    assert dialogue.calls[1].arguments == {"order_id": "XY5555"}


async def test_unknown_requests_get_the_list_of_what_the_agent_can_do() -> None:
    said = await Dialogue(pizzeria).say("what is the capital of France")
    assert said.startswith("Sorry, I can't help with that. I can order pizzas for delivery;")


async def test_two_agents_never_bounce_the_caller_between_them() -> None:
    ping = Agent(name="Ping", handoffs=[lambda: pong], handoff_description="Play ping.")
    pong = Agent(name="Pong", handoffs=[ping], handoff_description="Play pong.")
    dialogue = Dialogue(ping)
    said = await dialogue.say("let's play pong")
    assert said == "This is the Pong. I can play ping."
    assert [c.name for c in dialogue.calls] == ["transfer_to_pong"]


async def test_the_brain_is_deterministic() -> None:
    requests = ["hello", "I want to order a pizza", "large", "two", "where is my order"]
    first, second = Dialogue(pizzeria), Dialogue(pizzeria)
    assert [await first.say(r) for r in requests] == [await second.say(r) for r in requests]


def test_odd_histories_do_not_raise() -> None:
    brain = OfflineBrain()
    setup = pizzeria.setup()
    orphan = ConversationItem("o", "tool", "function_call_output", call_id="x", output="hi")
    assert brain.respond(setup, [orphan]).text == "hi"
    silent = ConversationItem("u", "user", text="   ")
    assert "didn't catch" in brain.respond(setup, [silent]).text
    call = ConversationItem("c", "assistant", "function_call", name="track_order", call_id="c")
    assert brain.respond(setup, [call]).text


# -- argument extraction and questions -----------------------------------------------


SEAT_SCHEMA = {
    "type": "object",
    "properties": {
        "confirmation_number": {
            "type": "string",
            "description": "Your confirmation number: six letters or digits, like ABC123.",
        },
        "new_seat": {"type": "string", "description": "The new seat, like 14C."},
    },
}


@pytest.mark.parametrize(
    ("said", "expected"),
    [
        ("seat fourteen C", {"new_seat": "14C"}),
        ("move me to 22 A", {"new_seat": "22A"}),
        ("A B C one two three", {"confirmation_number": "ABC123"}),
        (
            "confirmation X Y Z nine eight seven seat three F",
            {"confirmation_number": "XYZ987", "new_seat": "3F"},
        ),
        ("seat 3F on booking QWE456", {"confirmation_number": "QWE456", "new_seat": "3F"}),
        ("I want a window seat", {}),
    ],
)
def test_codes_go_to_the_parameter_they_fit(said: str, expected: dict[str, str]) -> None:
    assert extract_arguments(SEAT_SCHEMA, said) == expected


def test_an_answer_fills_the_parameter_that_was_asked_for() -> None:
    found = extract_arguments(SEAT_SCHEMA, "it's one two three", answering="confirmation_number")
    assert found == {"confirmation_number": "123"}


@pytest.mark.parametrize(
    ("said", "answering", "city"),
    [
        ("what's the weather in new york today", None, "New York"),
        ("will it rain in San Francisco tomorrow", None, "San Francisco"),
        ("weather for paris please", None, "Paris"),
        ("what's the weather like", None, None),
        ("London", "city", "London"),
        ("it's in oslo", "city", "Oslo"),
    ],
)
def test_city_names(said: str, answering: str | None, city: str | None) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    found = extract_arguments(schema, said, answering=answering)
    assert found.get("city") == city


def test_free_text_is_the_whole_utterance() -> None:
    schema = {"type": "object", "properties": {"question": {"type": "string"}}}
    assert extract_arguments(schema, " is there wifi? ") == {"question": "is there wifi?"}


def test_booleans_when_asked() -> None:
    schema = {"type": "object", "properties": {"window": {"type": "boolean"}}}
    assert extract_arguments(schema, "yes please", answering="window") == {"window": True}
    assert extract_arguments(schema, "no thanks", answering="window") == {"window": False}


@pytest.mark.parametrize(
    ("name", "schema", "question"),
    [
        ("confirmation_number", SEAT_SCHEMA["properties"]["confirmation_number"],
         "What is your confirmation number?"),
        ("new_seat", SEAT_SCHEMA["properties"]["new_seat"], "What is the new seat?"),
        ("city", {"description": "City name, like Paris."}, "What is the city name?"),
        ("departure_date", {}, "What is the departure date?"),
        ("size", {"description": "Which size you want."}, "Which size you want?"),
    ],
)  # fmt: skip
def test_questions_are_made_from_descriptions(
    name: str, schema: dict[str, str], question: str
) -> None:
    assert question_for(name, schema) == question


def test_small_talk_is_generic() -> None:
    brain = OfflineBrain()
    setup = pizzeria.setup()
    thanks = ConversationItem("t", "user", text="thank you")
    assert brain.respond(setup, [thanks]).text == "You're welcome. Anything else?"
    bye = ConversationItem("b", "user", text="bye")
    assert brain.respond(setup, [bye]).text == "Goodbye!"


def test_a_graph_it_cannot_read_gets_an_apology_not_an_exception() -> None:
    broken = ToolSpec("weird", "Do weird things.", {"properties": "oops", "required": ["x"]})
    setup = AgentSetup(agent_name="Odd", instructions="", tools=(broken,))
    reply = OfflineBrain().respond(setup, [ConversationItem("u", "user", text="do weird things")])
    assert reply.text.startswith("Sorry, something went wrong")


async def test_a_timed_out_tool_is_reported_in_words(autojump_clock: object) -> None:
    @function_tool(timeout=5, examples=("check the status",))
    async def status() -> str:
        """Check the system status."""
        await trio.sleep(60)
        return "all good"

    said = await Dialogue(Agent(name="Ops", tools=[status])).say("check the status")
    assert said == "Sorry, timed out after 5 seconds."


async def test_repeated_unclear_answers_offer_a_way_out() -> None:
    dialogue = Dialogue(pizzeria)
    await dialogue.say("I want to order a pizza")
    await dialogue.say("hmm")
    said = await dialogue.say("I don't know")
    assert said == "Sorry, I still didn't catch that. What is the pizza size? Or say never mind."
