"""The airline demo graph driven by the offline model, typed turns over a real socket.

This is what `hypercorn -k trio voiceagent:app` does with no keys, minus the voice
(a scripted voice keeps these tests fast; the local voice has its own tests).
"""

from __future__ import annotations

import pytest

from tests.conftest import Client, connect, make_services, running_app
from voiceagent.brain import OfflineBrain
from voiceagent.models.offline import OfflineModel
from voiceagent.tts.scripted import ScriptedTTS


@pytest.fixture
def services():  # type: ignore[no-untyped-def]
    return make_services(OfflineModel(brain_factory=OfflineBrain), ScriptedTTS())


async def ask(client: Client, text: str) -> str:
    """Send a typed question; return the text of the answer that is spoken."""
    before = len(client.of_type("audio_end"))
    await client.send(type="text", text=text)
    while True:
        await client.wait_for("audio_end")
        if len(client.of_type("audio_end")) > before:
            spoken = client.of_type("text_done")[-1]
            return spoken["text"]


async def test_baggage_question_is_handed_to_faq_and_answered_by_the_tool(services) -> None:
    async with running_app(services) as address, connect(address) as client:
        session = await client.wait_for("session_started")
        assert session["offline_brain"] is True and session["model"] == "offline"
        answer = await ask(client, "What is the baggage allowance?")
        handoff = client.of_type("handoff")[0]
        assert (handoff["from"], handoff["to"]) == ("Triage Agent", "FAQ Agent")
        tool = client.of_type("tool_end")[0]
        assert tool["name"] == "faq_lookup_tool" and tool["error"] is None
        assert answer == tool["output"] and "kilo" in answer


async def test_wifi_question(services) -> None:
    async with running_app(services) as address, connect(address) as client:
        answer = await ask(client, "Is there wifi on the plane?")
        assert "wifi" in answer.lower()
        assert client.of_type("tool_end")[0]["name"] == "faq_lookup_tool"


async def test_seat_change_across_turns(services) -> None:
    async with running_app(services) as address, connect(address) as client:
        question = await ask(client, "I want to change my seat")
        assert client.of_type("handoff")[-1]["to"] == "Seat Booking Agent"
        assert "confirmation" in question.lower()
        assert "seat" in (await ask(client, "A B C one two three")).lower()
        done = await ask(client, "fourteen C")
        update = [e for e in client.of_type("tool_end") if e["name"] == "update_seat"][-1]
        assert update["error"] is None
        assert "14C" in done and "ABC123" in done


async def test_weather_with_the_service_unreachable_is_honest(services, monkeypatch) -> None:
    monkeypatch.setenv("VOICEAGENT_WEATHER_URL", "http://127.0.0.1:9")
    async with running_app(services) as address, connect(address) as client:
        answer = await ask(client, "What's the weather in Paris?")
        tool = [e for e in client.of_type("tool_end") if e["name"] == "get_weather"][-1]
        assert "unreachable" in tool["output"].lower()
        assert "unreachable" in answer.lower() or "can't" in answer.lower()
        assert "°" not in answer and "degrees" not in answer.lower()


async def test_unknown_request_gets_what_the_graph_can_do(services) -> None:
    async with running_app(services) as address, connect(address) as client:
        answer = await ask(client, "Can you sing me a lullaby?")
        assert client.of_type("tool_start") == []
        assert "seat" in answer.lower() or "baggage" in answer.lower()


async def test_handoff_back_to_triage(services) -> None:
    async with running_app(services) as address, connect(address) as client:
        await ask(client, "What is the baggage allowance?")
        await ask(client, "I want to change my seat")
        route = [(e["from"], e["to"]) for e in client.of_type("handoff")]
        assert ("FAQ Agent", "Triage Agent") in route or (
            "FAQ Agent",
            "Seat Booking Agent",
        ) in route
        assert client.of_type("agent_start")[-1]["agent"] == "Seat Booking Agent"


async def test_offline_model_without_a_voice_runs_text_only() -> None:
    async with running_app(
        make_services(OfflineModel(brain_factory=OfflineBrain), None)
    ) as address:
        async with connect(address) as client:
            started = await client.wait_for("session_started")
            assert started["tts"] == "none"
            await client.send(type="text", text="Is there wifi on the plane?")
            done = await client.wait_for("text_done", where=lambda e: "wifi" in e["text"].lower())
            assert done["text"]
            await client.wait_for("response_done")
            assert client.audio == [] and client.of_type("error") == []
