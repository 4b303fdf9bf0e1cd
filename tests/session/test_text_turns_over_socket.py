"""Typed turns are bounded: one unanswered text at a time, the rest are `busy`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.conversation import AgentSetup
from voiceagent.metrics import REGISTRY
from voiceagent.models.base import ModelConnection, OutputMode
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.tts.scripted import ScriptedTTS


class SlowToConnect(ScriptedModel):
    """A provider whose handshake takes half a second (a cold cloud connect)."""

    @asynccontextmanager
    async def connect(
        self, setup: AgentSetup, *, output: OutputMode
    ) -> AsyncIterator[ModelConnection]:
        await trio.sleep(0.5)
        async with ScriptedModel.connect(self, setup, output=output) as conn:
            yield conn


def busy_errors() -> float:
    return REGISTRY.get_sample_value("voiceagent_errors_total", {"code": "busy"}) or 0.0


async def test_texts_sent_while_one_is_unanswered_are_busy() -> None:
    model = SlowToConnect(default=ScriptedReply("One answer."))
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    before = busy_errors()
    async with running_app(services) as address, connect(address) as client:
        await client.wait_for("session_started")
        for index in range(10):
            await client.send(type="text", text=f"message {index}")
        await client.wait_for("response_done")
        await client.drain(0.5)
        busy = [e for e in client.of_type("error") if e["code"] == "busy"]
        assert len(busy) == 9
        assert len(client.of_type("response_start")) == 1
        assert [text for kind, text in model.log if kind == "user"] == ["message 0"]
        # Once the model has taken it up, the next text is welcome again.
        await client.send(type="text", text="and now?")
        assert (await client.wait_for("text_done"))["text"] == "One answer."
    assert busy_errors() - before == 9
