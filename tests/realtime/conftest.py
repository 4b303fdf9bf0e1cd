"""Fixtures: the Realtime emulator on a free 127.0.0.1 port, with every frame checked.

`start_emulator(**config)` serves an emulator in the test's nursery and returns an
`Emulator` handle. At teardown every frame the client sent and the emulator emitted is
validated against the official `openai` types (GA or beta, per connection) with no
unknown fields, unless the test opted out (`emu.strict = False`) because it sends
invalid events on purpose.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import trio

from tests.realtime.conformance import check_event
from voiceagent.conversation import AgentSetup, BrainReply, ConversationItem
from voiceagent.emulators.realtime import EmulatorConfig, serve_realtime
from voiceagent.models.realtime import RealtimeAPIModel, RealtimeConfig

KEY = "test-key"


@dataclass
class Emulator:
    port: int
    config: EmulatorConfig
    frames: list[tuple[str, str]] = field(default_factory=list)
    strict: bool = True

    def url(self, flavor: str = "ga", model: str = "my-deployment") -> str:
        base = f"ws://127.0.0.1:{self.port}"
        if flavor == "beta":
            return f"{base}/openai/realtime?api-version=2025-04-01-preview&deployment={model}"
        if flavor == "openai":
            return f"{base}/v1/realtime?model={model}"
        return f"{base}/openai/v1/realtime?model={model}"

    def model(self, flavor: str = "ga", **options: Any) -> RealtimeAPIModel:
        options.setdefault("api_key", KEY)
        options.setdefault("connect_timeout", 5.0)
        options.setdefault("close_timeout", 1.0)
        return RealtimeAPIModel(RealtimeConfig(url=self.url(flavor), **options))

    def sent(self, kind: str) -> list[dict[str, Any]]:
        """Client events of type `kind` the emulator received, in order."""
        return [e for d, e in self.decoded() if d == "in" and e.get("type") == kind]

    def emitted(self, kind: str) -> list[dict[str, Any]]:
        return [e for d, e in self.decoded() if d == "out" and e.get("type") == kind]

    def decoded(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for direction, text in self.frames:
            try:
                out.append((direction, orjson.loads(text)))
            except orjson.JSONDecodeError:
                continue
        return out


def _flavors(frames: list[tuple[str, str]]) -> list[str]:
    """The flavour of each frame, from the session.created that opened its connection."""
    flavor = "ga"
    result = []
    for direction, text in frames:
        if direction == "out" and '"type":"session.created"' in text:
            flavor = "ga" if '"type":"realtime"' in text.split('"session":', 1)[1][:40] else "beta"
        result.append(flavor)
    return result


@pytest.fixture
async def start_emulator(
    nursery: trio.Nursery,
) -> AsyncIterator[Callable[..., Awaitable[Emulator]]]:
    started: list[Emulator] = []

    async def start(**options: Any) -> Emulator:
        frames: list[tuple[str, str]] = []
        options.setdefault("api_keys", (KEY,))
        config = EmulatorConfig(trace=lambda d, t: frames.append((d, t)), **options)
        port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)
        emu = Emulator(port, config, frames)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        if not emu.strict:
            continue
        for (direction, text), flavor in zip(emu.frames, _flavors(emu.frames), strict=True):
            check_event(flavor, "client" if direction == "in" else "server", text)


class ScriptedBrain:
    """A test brain: calls the first tool once per user turn, then reads its output.

    Records every history it was given, so tests can assert what the model "saw".
    """

    def __init__(self, text: str = "Sure thing, all done here.", call_tools: bool = True) -> None:
        self.text = text
        self.call_tools = call_tools
        self.histories: list[list[ConversationItem]] = []
        self.setups: list[AgentSetup] = []

    def respond(self, setup: AgentSetup, history: Sequence[ConversationItem]) -> BrainReply:
        self.histories.append(list(history))
        self.setups.append(setup)
        last = history[-1] if history else None
        if last is not None and last.type == "function_call_output":
            return BrainReply(text=f"The tool said {last.output}")
        if self.call_tools and setup.tools and last is not None and last.role == "user":
            return BrainReply(calls=((setup.tools[0].name, '{"city": "Paris"}'),))
        return BrainReply(text=f"{self.text} ({setup.instructions})")


@pytest.fixture
def brain() -> ScriptedBrain:
    return ScriptedBrain(call_tools=False)
