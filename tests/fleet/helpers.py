"""Instances of the app sharing one real redis-server, in this test process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.access.test_admission_over_socket import ADMIN, SECRET
from tests.conftest import make_services, running_app
from tests.infra import RedisServer
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.fleet import RedisRegistry
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.tts.scripted import ScriptedTTS

__all__ = ["ADMIN", "SECRET", "Instance", "instance"]


class Instance:
    def __init__(self, address: str, registry: RedisRegistry) -> None:
        self.address = address
        self.registry = registry

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient() as http:
            return await http.get(f"http://{self.address}{path}", headers=_admin())

    async def post(self, path: str, **body: Any) -> httpx.Response:
        async with httpx.AsyncClient() as http:
            return await http.post(f"http://{self.address}{path}", headers=_admin(), json=body)


def _admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


@asynccontextmanager
async def instance(redis: RedisServer | str, **settings: Any) -> AsyncIterator[Instance]:
    """One app instance on its own port, its registry in `redis`."""
    url = redis if isinstance(redis, str) else redis.url
    settings = {"redis_url": url, "admin_token": ADMIN, **settings}
    model = ScriptedModel(default=ScriptedReply("Hello there, how can I help?"))
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=Settings(**settings))
    async with running_app(services) as address:
        registry = services.registry
        assert isinstance(registry, RedisRegistry)
        yield Instance(address, registry)
