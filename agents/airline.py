"""The airline demo graph: a triage agent that hands callers to an FAQ agent or a seat
booking agent, and back. Copy this file to start your own graph, then point
`VOICEAGENT_AGENT` at it ("mypackage.mygraph:start_agent").

Write descriptions as short verb phrases and give tools a few example requests: cloud
models read the descriptions, the offline demo brain reads both.
"""

from __future__ import annotations

import os
import re
from urllib.parse import quote

import httpx

from voiceagent.graph import (
    Agent,
    ToolContext,
    ToolError,
    function_tool,
    handoff,
    output_guardrail,
)

# The weather API (wttr.in JSON format); VOICEAGENT_WEATHER_URL overrides it.
DEFAULT_WEATHER_URL = "https://wttr.in"
WEATHER_TIMEOUT_S = 2.0


# -- tools -----------------------------------------------------------------------------

FAQ_ANSWERS = {
    ("bag", "bags", "baggage", "luggage", "suitcase", "carry-on"): (
        "You can bring one carry-on bag up to 7 kilograms, and check one bag up to "
        "23 kilograms for free."
    ),
    ("wifi", "wi-fi", "internet", "online"): (
        "We have free wifi on board: join the network called Airline Wifi."
    ),
    ("seat", "seats", "plane", "legroom", "exit"): (
        "There are 120 seats on the plane: 22 in business and 98 in economy. "
        "Exit rows are 4 and 16, and rows 5 to 8 have extra legroom."
    ),
}


@function_tool(
    timeout=2,
    examples=(
        "what is the baggage allowance",
        "how many bags can I bring",
        "is there wifi on the plane",
        "how many seats does the plane have",
    ),
)
def faq_lookup_tool(question: str) -> str:
    """Answer questions about baggage, wifi and seats.

    Args:
        question: The caller's question, in their own words.
    """
    said = set(re.findall(r"[a-z-]+", question.lower()))
    for keywords, answer in FAQ_ANSWERS.items():
        if said & set(keywords):
            return answer
    return "I don't know the answer to that question."


CONFIRMATION_RE = re.compile(r"[A-Z0-9]{6}")
SEAT_RE = re.compile(r"([1-9]|[1-5][0-9]|60)([A-F])")


@function_tool(
    timeout=5,
    cancel_on_interrupt=False,  # a booking change is never left half-done
    examples=("change my seat", "I want a different seat", "move me to seat 14C"),
)
def update_seat(ctx: ToolContext, confirmation_number: str, new_seat: str) -> str:
    """Change the seat on a booking.

    Args:
        confirmation_number: Your confirmation number: six letters or digits, like ABC123.
            Leave it empty to reuse the one given earlier in this conversation.
        new_seat: The new seat: a row from 1 to 60 and a letter from A to F, like 14C.
    """
    confirmation = confirmation_number.replace(" ", "").upper()
    confirmation = confirmation or ctx.state.get("confirmation_number", "")
    seat = new_seat.replace(" ", "").upper()
    if not confirmation:
        raise ToolError("I need your confirmation number first")
    if not CONFIRMATION_RE.fullmatch(confirmation):
        raise ToolError(f"confirmation number {confirmation} is not valid: it has six characters")
    if not SEAT_RE.fullmatch(seat):
        raise ToolError(f"seat {seat or 'empty'} does not exist: rows are 1 to 60, letters A to F")
    ctx.state["confirmation_number"] = confirmation
    return f"Done: your seat is now {seat} on booking {confirmation}."


@function_tool(timeout=5, examples=("what's the weather like", "will it rain", "how warm is it"))
async def get_weather(city: str) -> str:
    """Check the current weather in a city.

    Args:
        city: The city name, like Paris.
    """
    base_url = os.environ.get("VOICEAGENT_WEATHER_URL", DEFAULT_WEATHER_URL)
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=WEATHER_TIMEOUT_S) as client:
            response = await client.get(f"/{quote(city, safe='')}", params={"format": "j1"})
    except httpx.HTTPError:
        # Never guess a forecast: say plainly that there is none.
        raise ToolError(
            f"the weather service is unreachable, so I have no weather for {city}"
        ) from None
    if response.status_code == 404:
        raise ToolError(f"the weather service does not know a city called {city}")
    try:
        response.raise_for_status()
        now = response.json()["current_condition"][0]
        sky = now["weatherDesc"][0]["value"].lower()
        return f"In {city} it is {now['temp_C']} degrees Celsius and {sky}."
    except (httpx.HTTPError, ValueError, LookupError, TypeError, AttributeError):
        raise ToolError(f"the weather service gave no usable answer for {city}") from None


# -- guardrails ------------------------------------------------------------------------


@output_guardrail
def no_card_numbers(text: str) -> bool:
    """Trip when the agent starts reading out something that looks like a card number."""
    return re.search(r"(?:\d[ -]?){13,19}", text) is not None


# -- agents ----------------------------------------------------------------------------

# Specialists hand back to triage, which is defined below: a lambda resolves it later.
back_to_triage = handoff(lambda: triage_agent, examples=("go back to the main menu",))
SAFE_LINE = "Sorry, I can't read out card numbers. Can I help with anything else?"

faq_agent = Agent(
    name="FAQ Agent",
    handoff_description="Answer questions about baggage, wifi and seats.",
    instructions=(
        "You answer airline questions. Always use faq_lookup_tool; never answer from "
        "memory. If the caller wants something else, transfer them back to triage."
    ),
    tools=[faq_lookup_tool],
    handoffs=[back_to_triage],
    output_guardrails=[no_card_numbers],
    guardrail_safe_line=SAFE_LINE,
)

seat_booking_agent = Agent(
    name="Seat Booking Agent",
    handoff_description="Change the seat on your booking.",
    instructions=(
        "You change seats. Ask for the confirmation number, then the new seat, then call "
        "update_seat. If the caller wants something else, transfer them back to triage."
    ),
    tools=[update_seat],
    handoffs=[back_to_triage],
    output_guardrails=[no_card_numbers],
    guardrail_safe_line=SAFE_LINE,
)

triage_agent = Agent(
    name="Triage Agent",
    handoff_description="Go back to the main menu for anything else.",
    instructions=(
        "You are a helpful airline assistant on a phone line: short, friendly sentences. "
        "Transfer questions about baggage, wifi or seats to the FAQ agent and seat "
        "changes to the seat booking agent. Use get_weather for weather questions."
    ),
    tools=[get_weather],
    handoffs=[faq_agent, seat_booking_agent],
    output_guardrails=[no_card_numbers],
    guardrail_safe_line=SAFE_LINE,
)
