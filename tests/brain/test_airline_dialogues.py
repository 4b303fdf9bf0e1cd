"""The airline demo graph, driven by the offline brain through real tool calls."""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable

import pytest
import trio
from voiceagent.demo.airline import (
    faq_agent,
    faq_lookup_tool,
    get_weather,
    seat_booking_agent,
    triage_agent,
    update_seat,
)

from tests.brain.dialogue import Dialogue
from voiceagent.graph import ToolContext, run_tool


@pytest.fixture(params=["offline", "wire"])
def dialogue(request: pytest.FixtureRequest) -> Dialogue:
    """Both ways the brain meets this graph: with example phrases, and without them."""
    return Dialogue(triage_agent, wire=request.param == "wire")


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_baggage_question_is_handed_to_faq_and_answered(dialogue: Dialogue) -> None:
    said = await dialogue.say("What's the baggage allowance?")
    assert [(c.agent, c.name) for c in dialogue.calls] == [
        ("Triage Agent", "transfer_to_faq_agent"),
        ("FAQ Agent", "faq_lookup_tool"),
    ]
    assert dialogue.calls[1].arguments == {"question": "What's the baggage allowance?"}
    assert "23 kilograms" in said
    assert dialogue.agent is faq_agent


async def test_wifi_question_is_answered_from_the_faq(dialogue: Dialogue) -> None:
    said = await dialogue.say("is there wifi on the plane")
    assert "free wifi" in said
    assert dialogue.calls[-1].name == "faq_lookup_tool"
    # A follow-up stays with the FAQ agent: no second handoff.
    mark = len(dialogue.calls)
    assert "120 seats" in await dialogue.say("how many seats does the plane have")
    assert [c.name for c in dialogue.calls_since(mark)] == ["faq_lookup_tool"]


async def test_seat_change_across_turns(dialogue: Dialogue) -> None:
    assert await dialogue.say("I want to change my seat") == "What is your confirmation number?"
    assert dialogue.agent is seat_booking_agent
    assert await dialogue.say("A B C one two three") == "What is the new seat?"
    said = await dialogue.say("fourteen C")
    assert said == "Done: your seat is now 14C on booking ABC123."
    update = dialogue.calls[-1]
    assert (update.name, update.arguments) == (
        "update_seat",
        {"confirmation_number": "ABC123", "new_seat": "14C"},
    )
    assert dialogue.ctx.state["confirmation_number"] == "ABC123"


async def test_an_impossible_seat_is_refused_and_asked_again(dialogue: Dialogue) -> None:
    await dialogue.say("I want to change my seat")
    await dialogue.say("my confirmation number is X Y Z nine eight seven")
    said = await dialogue.say("ninety nine Z")
    assert said == (
        "Sorry, seat 99Z does not exist: rows are 1 to 60, letters A to F. What is the new seat?"
    )
    assert "confirmation_number" not in dialogue.ctx.state
    assert await dialogue.say("twelve A") == "Done: your seat is now 12A on booking XYZ987."


async def test_a_later_seat_change_reuses_the_confirmation_number(dialogue: Dialogue) -> None:
    await dialogue.say("change my seat to fourteen C, confirmation A B C one two three")
    assert dialogue.calls[-1].output == "Done: your seat is now 14C on booking ABC123."
    said = await dialogue.say("actually move me to seat twenty two A")
    assert said == "Done: your seat is now 22A on booking ABC123."


async def test_weather_with_the_service_unreachable_is_honest(
    dialogue: Dialogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEAGENT_WEATHER_URL", f"http://127.0.0.1:{closed_port()}")
    said = await dialogue.say("what's the weather in Paris today")
    call = dialogue.calls[-1]
    assert (call.agent, call.name, call.arguments) == (
        "Triage Agent",
        "get_weather",
        {"city": "Paris"},
    )
    assert call.output.startswith("error: the weather service is unreachable")
    assert said == "Sorry, the weather service is unreachable, so I have no weather for Paris."


async def test_weather_asks_for_the_city_when_none_is_given(
    dialogue: Dialogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEAGENT_WEATHER_URL", f"http://127.0.0.1:{closed_port()}")
    assert await dialogue.say("what's the weather like") == "What is the city name?"
    await dialogue.say("new york")
    assert dialogue.calls[-1].arguments == {"city": "New York"}


async def test_an_unknown_request_is_answered_with_what_the_graph_can_do(
    dialogue: Dialogue,
) -> None:
    said = await dialogue.say("tell me a joke")
    assert said == (
        "Sorry, I can't help with that. I can check the current weather in a city; "
        "answer questions about baggage, wifi and seats; or change the seat on your booking."
    )
    assert dialogue.calls == []


async def test_a_specialist_hands_back_to_triage_for_other_requests(dialogue: Dialogue) -> None:
    await dialogue.say("is there wifi")
    mark = len(dialogue.calls)
    assert await dialogue.say("I want to change my seat") == "What is your confirmation number?"
    assert [(c.agent, c.name) for c in dialogue.calls_since(mark)] == [
        ("FAQ Agent", "transfer_to_triage_agent"),
        ("Triage Agent", "transfer_to_seat_booking_agent"),
    ]


async def test_go_back_to_the_main_menu(dialogue: Dialogue) -> None:
    await dialogue.say("what's the baggage allowance")
    said = await dialogue.say("go back to the main menu")
    assert dialogue.agent is triage_agent
    assert said.startswith("This is the Triage Agent. I can check the current weather")


# -- the tools on their own ---------------------------------------------------------------


async def test_update_seat_validates_and_remembers_per_session() -> None:
    limiter = trio.CapacityLimiter(1)
    ctx = ToolContext(session_id="a")

    async def call(args: str, context: ToolContext = ctx) -> str:
        return (await run_tool(update_seat, args, context, limiter=limiter)).output

    bad = await call('{"confirmation_number": "AB", "new_seat": "1A"}')
    assert bad == "error: confirmation number AB is not valid: it has six characters"
    assert await call('{"confirmation_number": "", "new_seat": "1A"}') == (
        "error: I need your confirmation number first"
    )
    assert await call('{"confirmation_number": "abc123", "new_seat": "61A"}') == (
        "error: seat 61A does not exist: rows are 1 to 60, letters A to F"
    )
    assert await call('{"confirmation_number": "abc123", "new_seat": "60f"}') == (
        "Done: your seat is now 60F on booking ABC123."
    )
    # Empty means "the one from earlier in this session", and only this session.
    assert await call('{"confirmation_number": "", "new_seat": "2B"}') == (
        "Done: your seat is now 2B on booking ABC123."
    )
    other = ToolContext(session_id="b")
    assert (await call('{"confirmation_number": "", "new_seat": "2B"}', other)).startswith("error")


Handler = Callable[[str], Awaitable[tuple[int, bytes]]]


async def serve_http_once(nursery: trio.Nursery, handler: Handler) -> int:
    """A one-request HTTP/1.1 server on 127.0.0.1; returns its port."""
    listeners = await nursery.start(trio.serve_tcp, lambda s: _answer(s, handler), 0)
    return int(listeners[0].socket.getsockname()[1])


async def _answer(stream: trio.SocketStream, handler: Handler) -> None:
    request = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in request:
            chunk = await stream.receive_some(4096)
            if not chunk:
                return
            request += chunk
    target = request.split(b" ", 2)[1].decode()
    status, body = await handler(target)
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
    head += f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    await stream.send_all(head.encode() + body)
    await stream.aclose()


async def test_get_weather_reads_the_weather_api(monkeypatch: pytest.MonkeyPatch) -> None:
    targets: list[str] = []

    async def wttr(target: str) -> tuple[int, bytes]:
        targets.append(target)
        body = b'{"current_condition": [{"temp_C": "18", "weatherDesc": [{"value": "Sunny"}]}]}'
        return 200, body

    async with trio.open_nursery() as nursery:
        port = await serve_http_once(nursery, wttr)
        monkeypatch.setenv("VOICEAGENT_WEATHER_URL", f"http://127.0.0.1:{port}")
        ctx = ToolContext(session_id="w")
        result = await run_tool(
            get_weather, '{"city": "New York"}', ctx, limiter=trio.CapacityLimiter(1)
        )
        nursery.cancel_scope.cancel()
    assert result.output == "In New York it is 18 degrees Celsius and sunny."
    assert targets == ["/New%20York?format=j1"]


async def test_get_weather_for_an_unknown_city(monkeypatch: pytest.MonkeyPatch) -> None:
    async def not_found(target: str) -> tuple[int, bytes]:
        return 404, b"{}"

    async with trio.open_nursery() as nursery:
        port = await serve_http_once(nursery, not_found)
        monkeypatch.setenv("VOICEAGENT_WEATHER_URL", f"http://127.0.0.1:{port}")
        ctx = ToolContext(session_id="w")
        result = await run_tool(
            get_weather, '{"city": "Atlantis"}', ctx, limiter=trio.CapacityLimiter(1)
        )
        nursery.cancel_scope.cancel()
    assert result.error == "the weather service does not know a city called Atlantis"


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("how many bags can I bring", "23 kilograms"),
        ("can I take a carry-on", "7 kilograms"),
        ("do you have internet on board", "free wifi"),
        ("which rows have extra legroom", "rows 5 to 8"),
        ("can I bring my cat", "I don't know the answer to that question."),
    ],
)
async def test_faq_lookup_answers(question: str, answer: str) -> None:
    ctx = ToolContext(session_id="f")
    args = json.dumps({"question": question})
    result = await run_tool(faq_lookup_tool, args, ctx, limiter=trio.CapacityLimiter(1))
    assert answer in result.output


async def test_seat_first_then_confirmation(dialogue: Dialogue) -> None:
    assert await dialogue.say("please change my seat to fourteen C") == (
        "What is your confirmation number?"
    )
    said = await dialogue.say("it's Q W E four five six")
    assert said == "Done: your seat is now 14C on booking QWE456."
