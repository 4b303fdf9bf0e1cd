"""A misbehaving speech model, over real sockets: the room reports it and stays usable.

The server talks to the Realtime emulator (its fault knobs: stalls, drops, refused
handshakes) or, where the emulator has no such fault, to a scripted model.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import orjson
import trio

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.conversation import AgentSetup, Heard
from voiceagent.emulators.realtime import EmulatorConfig, Faults, serve_realtime
from voiceagent.events import ModelEvent
from voiceagent.metrics import REGISTRY
from voiceagent.models.base import ModelConnection, OutputMode
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.providers import build_services
from voiceagent.session.services import Services
from voiceagent.tts.scripted import ScriptedTTS


@asynccontextmanager
async def realtime_stack(
    faults: Faults, env: Mapping[str, str] | None = None
) -> AsyncIterator[tuple[str, Services, list[str]]]:
    """The app on 127.0.0.1 with the Realtime emulator as its model; the model speaks.

    Yields the app's address, its services and the user texts the emulator received.
    """
    texts: list[str] = []

    def trace(direction: str, frame: str) -> None:
        event = orjson.loads(frame)
        if direction == "in" and event.get("type") == "conversation.item.create":
            texts.extend(c.get("text", "") for c in event["item"].get("content", []))

    config = EmulatorConfig(faults=faults, trace=trace)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_API_KEY": "test-key",
                "AZURE_OPENAI_REALTIME_URL": (
                    f"ws://127.0.0.1:{port}/openai/v1/realtime?model=voice-demo"
                ),
                "VOICEAGENT_TTS": "none",
                **(env or {}),
            }
        )
        services = build_services(settings)
        async with running_app(services) as address:
            yield address, services, texts
        nursery.cancel_scope.cancel()


def errors_counted(code: str) -> float:
    return REGISTRY.get_sample_value("voiceagent_errors_total", {"code": code}) or 0.0


# -- deadlines --------------------------------------------------------------------------


async def test_a_response_that_stalls_is_given_up_and_the_room_goes_on() -> None:
    faults = Faults(stall_on_response=1, after_deltas=1)
    env = {"VOICEAGENT_MODEL_STALL_TIMEOUT_S": "0.5"}
    before = errors_counted("model_timeout")
    async with realtime_stack(faults, env) as (address, _, _), connect(address) as client:
        await client.send(type="text", text="Hello there")
        started = await client.wait_for("response_start")
        error = await client.wait_for("error", within=5)
        assert error["code"] == "model_timeout"
        done = await client.wait_for("response_done")
        assert (done["response_id"], done["status"]) == (started["response_id"], "failed")
        # The next turn goes through the same connection.
        await client.send(type="text", text="What is the baggage allowance?")
        end = await client.wait_for("audio_end", within=10)
        assert end["audio_ms"] > 0
        await client.drain(0.3)
        assert [e["code"] for e in client.of_type("error")] == ["model_timeout"]
        dones = [e["response_id"] for e in client.of_type("response_done")]
        assert len(dones) == len(set(dones))  # the cancelled one is not reported twice
    assert errors_counted("model_timeout") - before == 1


class _IgnoresFirstText(ModelConnection):
    """A scripted connection that silently loses the first typed message."""

    def __init__(self, inner: ModelConnection) -> None:
        self._inner = inner
        self.lost = 0
        self.cancels: list[Heard] = []

    async def send_audio(self, pcm: bytes) -> None:
        await self._inner.send_audio(pcm)

    async def commit_audio(self) -> None:
        await self._inner.commit_audio()

    async def send_text(self, text: str) -> None:
        if self.lost == 0:
            self.lost = 1
            return
        await self._inner.send_text(text)

    async def send_tool_result(self, call_id: str, output: str, *, respond: bool = True) -> None:
        await self._inner.send_tool_result(call_id, output, respond=respond)

    async def update_agent(self, setup: AgentSetup) -> None:
        await self._inner.update_agent(setup)

    async def cancel_response(self, heard: Heard) -> None:
        self.cancels.append(heard)
        await self._inner.cancel_response(heard)

    def __aiter__(self) -> AsyncIterator[ModelEvent]:
        return self._inner.__aiter__()


class LosesFirstText(ScriptedModel):
    connection: _IgnoresFirstText | None = None

    @asynccontextmanager
    async def connect(
        self, setup: AgentSetup, *, output: OutputMode
    ) -> AsyncIterator[ModelConnection]:
        async with ScriptedModel.connect(self, setup, output=output) as inner:
            self.connection = _IgnoresFirstText(inner)
            yield self.connection


async def test_a_request_the_model_never_answers_times_out() -> None:
    model = LosesFirstText(default=ScriptedReply("Here I am."))
    settings = Settings(model_first_event_timeout_s=0.5)
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=settings)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="anyone there?")
        with trio.fail_after(5):
            error = await client.wait_for("error")
        assert error["code"] == "model_timeout"
        assert model.connection is not None and len(model.connection.cancels) == 1
        # The room is usable: no `busy` for the next text, and it is answered.
        await client.send(type="text", text="hello?")
        assert (await client.wait_for("text_done"))["text"] == "Here I am."
        assert [e["code"] for e in client.of_type("error")] == ["model_timeout"]


# -- reconnecting -----------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_provider_gives_one_error_per_message_and_no_retry_loop() -> None:
    settings = Settings.from_env(
        {
            "AZURE_OPENAI_API_KEY": "test-key",
            "AZURE_OPENAI_REALTIME_URL": (
                f"ws://127.0.0.1:{closed_port()}/openai/v1/realtime?model=voice-demo"
            ),
            "VOICEAGENT_TTS": "none",
            "VOICEAGENT_MODEL_RECONNECT_BACKOFF_S": "0.1",
            "VOICEAGENT_MODEL_RECONNECT_MAX_S": "0.2",
        }
    )
    services = build_services(settings)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="hello?")
        await client.drain(2.0)  # room for ten retries at this backoff
        assert [e["code"] for e in client.of_type("error")] == ["model_unavailable"]
        # New input is worth one new try (and one error), no more.
        await client.send(type="text", text="still there?")
        await client.drain(1.0)
        assert [e["code"] for e in client.of_type("error")] == ["model_unavailable"] * 2


async def test_a_message_refused_at_connect_is_dropped_and_only_the_next_is_answered() -> None:
    faults = Faults(reject_status=429, reject_first=1)
    async with realtime_stack(faults) as (address, _, texts), connect(address) as client:
        await client.send(type="text", text="Is my flight on time?")
        error = await client.wait_for("error")
        assert error["code"] == "rate_limited"
        await client.send(type="text", text="What is the baggage allowance?")
        await client.wait_for("audio_end", within=10)
        await client.drain(0.5)
        assert texts == ["What is the baggage allowance?"]
        assert [e["code"] for e in client.of_type("error")] == ["rate_limited"]


# -- drops ------------------------------------------------------------------------------


async def test_a_realtime_socket_dropped_mid_response_is_model_dropped() -> None:
    faults = Faults(drop_on_response=1, after_deltas=1)
    async with realtime_stack(faults) as (address, _, _), connect(address) as client:
        await client.send(type="text", text="Hello there")
        error = await client.wait_for("error", within=10)
        assert error["code"] == "model_dropped"
        done = await client.wait_for("response_done")
        assert done["status"] == "failed"
        # (Recovery on the next input: test_cloud_stack.py; this fault drops the first
        # response of every connection.)
