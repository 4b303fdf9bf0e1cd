"""Function tools and handoffs as the session runs them, over a real socket."""

from __future__ import annotations

import orjson

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.graph import Agent, output_guardrail
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.tts.scripted import ScriptedTTS


def scripted(**replies: ScriptedReply) -> ScriptedModel:
    return ScriptedModel(replies=replies, delta_delay=0.001)


async def test_tool_call_round_trip() -> None:
    model = scripted(order=ScriptedReply(calls=(("lookup_order", '{"order_id": "A12"}'),)))
    async with running_app(make_services(model, ScriptedTTS(), agent=front_desk)) as address:
        async with connect(address) as client:
            await client.send(type="text", text="where is my order")
            start = await client.wait_for("tool_start")
            assert start["name"] == "lookup_order" and start["agent"] == "Front Desk"
            end = await client.wait_for("tool_end")
            assert end["output"] == "order A12 ships tomorrow" and end["error"] is None
            done = await client.wait_for("text_done")
            assert done["text"] == "Done: order A12 ships tomorrow"
            assert ("tool", (start["call_id"], "order A12 ships tomorrow")) in model.log


async def test_tool_exception_becomes_error_output_and_session_goes_on() -> None:
    model = scripted(boom=ScriptedReply(calls=(("explode", '{"reason": "test"}'),)))
    async with running_app(make_services(model, ScriptedTTS(), agent=front_desk)) as address:
        async with connect(address) as client:
            await client.send(type="text", text="boom")
            end = await client.wait_for("tool_end")
            assert end["error"] and "kaboom" in end["output"]
            assert end["output"].startswith("error:")
            # The model was given the error to read, and answered.
            assert (await client.wait_for("text_done"))["text"].startswith("Done: error:")
            await client.send(type="text", text="anything else")
            assert (await client.wait_for("text_done"))["text"] == "I heard you."


async def test_unknown_tool_is_reported_to_the_model() -> None:
    model = scripted(x=ScriptedReply(calls=(("no_such_tool", "{}"),)))
    async with running_app(make_services(model, ScriptedTTS(), agent=front_desk)) as address:
        async with connect(address) as client:
            await client.send(type="text", text="x")
            end = await client.wait_for("tool_end")
            assert end["error"] and "no_such_tool" in end["output"]


async def test_interrupt_cancels_slow_tool_marked_cancel_on_interrupt() -> None:
    model = scripted(search=ScriptedReply(calls=(("slow_search", '{"query": "flights"}'),)))
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="search please")
        await client.wait_for("tool_start")
        await client.send(type="interrupt")  # "never mind": the user stops the search
        end = await client.wait_for("tool_end", within=5)
        assert end["error"] == "cancelled"
        await client.drain(0.3)
        # The model still gets an output for its call, without a new response.
        assert ("tool", (end["call_id"], end["output"])) in model.log
        assert client.of_type("text_done") == []


async def test_interrupt_leaves_tools_without_the_flag_running() -> None:
    model = scripted(order=ScriptedReply(calls=(("lookup_order", '{"order_id": "B7"}'),)))
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="order status")
        await client.wait_for("tool_start")
        await client.send(type="interrupt")
        end = await client.wait_for("tool_end", within=5)
        assert end["error"] is None and end["output"] == "order B7 ships tomorrow"


async def test_handoff_switches_agent_and_model_setup() -> None:
    model = scripted(
        specialist=ScriptedReply(
            calls=(("transfer_to_specialist", "{}"),), after_tools="Hi, specialist here."
        )
    )
    async with running_app(make_services(model, ScriptedTTS(), agent=front_desk)) as address:
        async with connect(address) as client:
            await client.send(type="text", text="I need the specialist")
            handoff = await client.wait_for("handoff")
            assert handoff["from"] == "Front Desk" and handoff["to"] == "Specialist"
            assert (await client.wait_for("agent_end"))["agent"] == "Front Desk"
            assert (await client.wait_for("agent_start"))["agent"] == "Specialist"
            done = await client.wait_for("text_done")
            assert done["text"] == "Hi, specialist here."
            assert ("agent", "Specialist") in model.log
            start = client.of_type("response_start")[-1]
            assert start["agent"] == "Specialist"
            history = client.of_type("history_updated")[-1]["items"]
            assert any(item["type"] == "handoff" for item in history)


@output_guardrail
def no_secrets(text: str) -> bool:
    """Trip when the assistant is about to read out the secret."""
    return "secret" in text.lower()


async def test_output_guardrail_cuts_response_and_says_safe_line() -> None:
    guarded = Agent(
        name="Guarded",
        instructions="Keep secrets.",
        output_guardrails=[no_secrets],
        guardrail_safe_line="Sorry, I can't share that.",
    )
    reply = "Sure, the password is secret and then many more words follow here"
    model = scripted(password=ScriptedReply(reply))
    async with running_app(make_services(model, ScriptedTTS(), agent=guarded)) as address:
        async with connect(address) as client:
            await client.send(type="text", text="tell me the password")
            tripped = await client.wait_for("guardrail_tripped")
            assert tripped["guardrail"] == "no_secrets"
            safe = await client.wait_for(
                "text_done", where=lambda e: e["response_id"].endswith("_safe")
            )
            assert safe["text"] == "Sorry, I can't share that."
            await client.drain(0.5)
            spoken = "".join(e["delta"] for e in client.of_type("text_delta"))
            assert "many more words" not in spoken
            heard = [entry for kind, entry in model.log if kind == "heard"]
            assert heard[-1].text == "Sorry, I can't share that."
            assert orjson.dumps(client.events)  # everything the client got was JSON-clean
