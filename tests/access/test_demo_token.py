"""`/demo/token`, as the browser demo asks it on every Connect (over a real socket).

Off (the default): 204 with no body, so the page connects without a token and the
browser's console stays clean. On: a token for exactly the room asked, valid for 600 s.
"""

from __future__ import annotations

import httpx

from tests.conftest import make_services, running_app
from voiceagent.access.tokens import TokenVerifier
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel
from voiceagent.tts.scripted import ScriptedTTS

SECRET = "demo-token-test-secret-0123456789abcdef"


async def test_without_demo_tokens_the_endpoint_says_no_token() -> None:
    services = make_services(ScriptedModel(), ScriptedTTS())
    async with running_app(services) as address, httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/demo/token", params={"room": "r1"})
    assert response.status_code == 204
    assert response.content == b""


async def test_with_demo_tokens_it_hands_out_a_token_for_that_room_only() -> None:
    settings = Settings(auth_secret=SECRET, demo_tokens=True)
    services = make_services(ScriptedModel(), ScriptedTTS(), settings=settings)
    async with running_app(services) as address, httpx.AsyncClient() as client:
        response = await client.get(f"http://{address}/demo/token", params={"room": "r1"})
        bad = await client.get(f"http://{address}/demo/token", params={"room": "no/pe"})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 600
    grant = TokenVerifier(secret=SECRET).verify(body["token"], "r1")
    assert grant.sub == "demo:r1"
    assert not grant.opens("r2")
    assert bad.status_code == 400
