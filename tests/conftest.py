"""Shared test helpers: the app on a real Hypercorn socket, and a protocol client."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from tests.infra import redis_server  # noqa: F401 - a fixture for every test
from voiceagent.app import create_app
from voiceagent.config import Settings
from voiceagent.graph import DEFAULT_AGENT_PATH, Agent, load_agent
from voiceagent.metrics import PriceTable
from voiceagent.models.base import RealtimeModel
from voiceagent.session.registry import SessionRegistry
from voiceagent.session.services import Services
from voiceagent.tts.base import TTS


def cyclic_garbage() -> list[object]:
    """Run the collector; return what it found unreachable (only cycles get that far)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


def make_services(
    model: RealtimeModel | None,
    tts: TTS | None,
    *,
    agent: Agent | None = None,
    settings: Settings | None = None,
) -> Services:
    return Services(
        settings=settings or Settings(),
        agent=agent or load_agent(DEFAULT_AGENT_PATH),
        registry=SessionRegistry(),
        model=model,
        tts=tts,
        tool_limiter=trio.CapacityLimiter(4),
        prices=PriceTable(),
    )


@asynccontextmanager
async def running_app(services: Services) -> AsyncIterator[str]:
    """Serve the app with Hypercorn's trio worker on 127.0.0.1; yields `host:port`."""
    app = create_app(services=services)
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.errorlog = None
    config.websocket_ping_interval = None
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                app, config, shutdown_trigger=shutdown.wait, task_status=task_status
            )
        )
        address = binds[0].removeprefix("http://")
        try:
            yield address
        finally:
            shutdown.set()
            nursery.cancel_scope.deadline = trio.current_time() + 5


@dataclass
class Client:
    """A protocol client: JSON events and binary audio, in arrival order."""

    ws: WebSocketConnection
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: list[tuple[str | None, bytes]] = field(default_factory=list)
    # (response_id of the last audio_start, frame) for every binary frame received
    order: list[tuple[str, Any]] = field(default_factory=list)
    _audio_owner: str | None = None

    async def send(self, **message: Any) -> None:
        await self.ws.send_message(orjson.dumps(message).decode())

    async def send_audio(self, pcm: bytes) -> None:
        await self.ws.send_message(pcm)

    async def receive(self) -> dict[str, Any] | bytes:
        message = await self.ws.get_message()
        if isinstance(message, bytes):
            self.audio.append((self._audio_owner, message))
            self.order.append(("audio", self._audio_owner))
            return message
        event = orjson.loads(message)
        if event["type"] == "audio_start":
            self._audio_owner = event["response_id"]
        self.events.append(event)
        self.order.append(("event", event["type"]))
        return event

    async def wait_for(
        self, kind: str, *, within: float = 10, where: Callable[[dict[str, Any]], bool] = bool
    ) -> dict[str, Any]:
        """Read until an event of `kind` (matching `where`) arrives, within `within` s."""
        with trio.fail_after(within):
            while True:
                message = await self.receive()
                if isinstance(message, dict) and message["type"] == kind and where(message):
                    return message

    async def drain(self, seconds: float) -> None:
        """Read everything that arrives within `seconds`."""
        with trio.move_on_after(seconds):
            while True:
                await self.receive()

    async def wait_closed(self, within: float = 10) -> int | None:
        with trio.fail_after(within):
            try:
                while True:
                    await self.receive()
            except ConnectionClosed as exc:
                return exc.reason.code

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]


@asynccontextmanager
async def connect(address: str, session_id: str = "test") -> AsyncIterator[Client]:
    async with open_websocket_url(f"ws://{address}/ws/{session_id}") as ws:
        yield Client(ws)


async def eventually(predicate: Callable[[], bool], *, within: float = 10) -> None:
    """Poll `predicate` until it holds; fail after `within` seconds.

    For state with no event to wait on (the task tree, registry counts).
    """
    deadline = trio.current_time() + within
    for _ in range(int(within * 100) + 1):
        if predicate():
            return
        if trio.current_time() > deadline:
            break
        await trio.sleep(0.01)
    raise AssertionError(f"condition still false after {within} s")


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@pytest.fixture(autouse=True)
def own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own empty folder: the conversation store's default SQLite
    file (`./data`) and anything else written relative to the working directory stay
    the test's own, and no test resumes another's room."""
    monkeypatch.chdir(tmp_path)
