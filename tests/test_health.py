"""/healthz as a load balancer reads it: alive at once, ready once engines are warm."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import trio

from tests.conftest import make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.models.scripted import ScriptedModel
from voiceagent.tts.scripted import ScriptedTTS


async def until_ready(client: httpx.AsyncClient, address: str, within: float = 5) -> None:
    with trio.fail_after(within):
        while True:
            if (await client.get(f"http://{address}/healthz")).json()["ready"]:
                return
            await trio.sleep(0.05)


@dataclass
class SlowToLoadModel(ScriptedModel):
    """A model whose local engines take until `loaded` is set to warm up."""

    loaded: trio.Event = field(default_factory=trio.Event)

    async def warm_up(self) -> None:
        await self.loaded.wait()


async def test_healthz_reports_ready_only_after_warm_up() -> None:
    model = SlowToLoadModel()
    services = make_services(model, ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, httpx.AsyncClient() as client:

        async def health() -> dict:
            return (await client.get(f"http://{address}/healthz")).json()

        first = await health()
        assert first["status"] == "ok" and first["ready"] is False
        assert first["sessions"] == 0 and first["model"] == "scripted"
        model.loaded.set()
        await until_ready(client, address)


async def test_healthz_is_ready_when_a_warm_up_fails() -> None:
    """A broken engine is reported by the session that needs it, not by a stuck probe."""

    @dataclass
    class BrokenModel(ScriptedModel):
        async def warm_up(self) -> None:
            raise RuntimeError("engine files missing")

    services = make_services(BrokenModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, httpx.AsyncClient() as client:
        await until_ready(client, address)
