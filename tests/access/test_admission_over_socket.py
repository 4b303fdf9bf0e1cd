"""Access control over real sockets: tokens, ownership, origins, limits, admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.conftest import Client, eventually, make_services, running_app
from tests.session.helpers import front_desk
from tests.transport_client import FrameReader, raw_handshake
from voiceagent.access.tokens import APP_SUBPROTOCOL, mint_token
from voiceagent.config import Settings
from voiceagent.metrics import REGISTRY
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.pcm import BYTES_PER_MS
from voiceagent.tts.scripted import ScriptedTTS

SECRET = "a-test-secret-of-at-least-thirty-two-chars"
ADMIN = "admin-token-for-tests"


def token(sub: str = "alice", room: str = "room-*", **grants: Any) -> str:
    return mint_token(SECRET, sub=sub, room=room, ttl_s=60, **grants)


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("voiceagent_handshakes_refused_total", {"reason": reason}) or 0


@asynccontextmanager
async def server(**settings: Any) -> AsyncIterator[tuple[str, Any, ScriptedModel]]:
    model = ScriptedModel(default=ScriptedReply("Hello there, how can I help?"))
    services = make_services(model, ScriptedTTS(), agent=front_desk, settings=Settings(**settings))
    async with running_app(services) as address:
        yield address, services, model


@asynccontextmanager
async def room(
    address: str,
    session_id: str,
    *,
    with_token: str | None = None,
    query: str = "",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[Client]:
    protocols = [APP_SUBPROTOCOL] + ([f"access_token.{with_token}"] if with_token else [])
    url = f"ws://{address}/ws/{session_id}{query}"
    async with open_websocket_url(url, subprotocols=protocols, extra_headers=headers) as ws:
        client = Client(ws)
        await client.wait_for("session_started")
        yield client


async def rejection(address: str, session_id: str, **kwargs: Any) -> int:
    with pytest.raises(ConnectionRejected) as caught:
        async with room(address, session_id, **kwargs):
            pass
    return caught.value.status_code


# -- tokens ---------------------------------------------------------------------------


async def test_without_a_secret_anyone_may_open_a_room() -> None:
    async with server() as (address, services, _), room(address, "room-1") as client:
        assert client.ws.subprotocol == APP_SUBPROTOCOL
        assert len(services.registry) == 1


async def test_a_valid_token_opens_its_room_by_subprotocol_or_query() -> None:
    async with server(auth_secret=SECRET) as (address, services, _):
        async with room(address, "room-1", with_token=token()) as client:
            assert client.ws.subprotocol == APP_SUBPROTOCOL
            assert services.registry.get("room-1").grant.sub == "alice"
        async with room(address, "room-2", query=f"?token={token(sub='bob')}"):
            assert services.registry.get("room-2").grant.sub == "bob"


@pytest.mark.parametrize(
    ("make_token", "status", "reason"),
    [
        (lambda: None, 401, "missing_token"),
        (lambda: mint_token(SECRET, sub="a", room="room-1", ttl_s=-30), 401, "expired"),
        (lambda: mint_token("x" * 40, sub="a", room="room-1", ttl_s=60), 401, "bad_signature"),
        (lambda: "garbage.token.value", 401, "malformed"),
        (lambda: token(room="other-*"), 403, "wrong_room"),
    ],
)
async def test_bad_tokens_are_refused_at_the_handshake(
    make_token: Any, status: int, reason: str
) -> None:
    async with server(auth_secret=SECRET) as (address, services, model):
        before = refused(reason)
        assert await rejection(address, "room-1", with_token=make_token()) == status
        assert refused(reason) == before + 1
        assert len(services.registry) == 0 and model.connects == 0  # nothing was started


# -- ownership ------------------------------------------------------------------------


async def test_only_the_owner_or_an_admin_may_replace_a_live_room() -> None:
    async with server(auth_secret=SECRET) as (address, services, _):
        async with room(address, "room-1", with_token=token("alice")) as first:
            # Another user: refused, and the live room is untouched.
            assert await rejection(address, "room-1", with_token=token("mallory")) == 403
            await first.send(type="text", text="still here?")
            await first.wait_for("response_done")
            # The same user replaces it (the old connection gets `replaced`, 1012).
            async with room(address, "room-1", with_token=token("alice")):
                assert (await first.wait_for("error"))["code"] == "replaced"
                assert await first.wait_closed() == 1012
                # An admin grant may replace anyone's room.
                async with room(address, "room-1", with_token=token("ops", admin=True)):
                    assert services.registry.get("room-1").grant.sub == "ops"


# -- origins --------------------------------------------------------------------------


async def test_pages_from_other_origins_are_refused() -> None:
    async with server(allowed_origins="https://app.example.com") as (address, services, _):
        before = refused("origin_not_allowed")
        evil = [(b"Origin", b"https://evil.example.net")]
        assert await rejection(address, "room-1", headers=evil) == 403
        assert refused("origin_not_allowed") == before + 1
        for allowed in (b"https://app.example.com", f"http://{address}".encode()):
            async with room(address, "room-1", headers=[(b"Origin", allowed)]):
                pass
        assert len(services.registry) == 0


# -- admission limits ------------------------------------------------------------------


async def test_rooms_per_client_address_behind_a_trusted_proxy() -> None:
    settings = {"max_sessions_per_ip": 2, "trusted_proxies": "127.0.0.1"}
    async with server(**settings) as (address, _, _):
        client_a = [(b"X-Forwarded-For", b"203.0.113.7")]
        client_b = [(b"X-Forwarded-For", b"198.51.100.9")]
        async with room(address, "r1", headers=client_a), room(address, "r2", headers=client_a):
            assert await rejection(address, "r3", headers=client_a) == 429
            async with room(address, "r4", headers=client_b):
                pass
        async with room(address, "r5", headers=client_a):  # slots came back
            pass


async def test_rooms_per_user() -> None:
    async with server(auth_secret=SECRET, max_sessions_per_user=1) as (address, _, _):
        async with room(address, "room-1", with_token=token("alice")):
            assert await rejection(address, "room-2", with_token=token("alice")) == 429
            async with room(address, "room-3", with_token=token("bob")):
                pass


async def test_a_user_at_the_limit_may_still_replace_their_own_room() -> None:
    """A reconnect is the same room, not a second one: at the limit it replaces the old
    connection, and afterwards the user still holds exactly one slot."""
    limits = {"auth_secret": SECRET, "max_sessions_per_user": 1, "max_rooms": 1}
    async with server(**limits) as (address, services, _):
        async with room(address, "room-1", with_token=token("alice")) as first:
            async with room(address, "room-1", with_token=token("alice")):
                assert await first.wait_closed() == 1012
                assert await rejection(address, "room-2", with_token=token("alice")) == 429
                assert await rejection(address, "room-3", with_token=token("bob")) == 503
        await eventually(lambda: len(services.registry) == 0, within=5)
        async with room(address, "room-2", with_token=token("alice")):
            pass


async def test_a_full_process_refuses_at_the_handshake_and_says_so() -> None:
    async with server(ws_max_connections=1) as (address, _, _):
        async with room(address, "room-1"), httpx.AsyncClient() as http:
            assert await rejection(address, "room-2") == 503
            health = (await http.get(f"http://{address}/healthz")).json()
            assert health["full"] is True
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://{address}/healthz")).json()["full"] is False


# -- per-room limits -------------------------------------------------------------------


async def test_audio_ten_times_faster_than_real_time_is_throttled_then_closed() -> None:
    async with server(max_audio_rate=2.0) as (address, _, _model):
        async with room(address, "room-1") as client, trio.open_nursery() as nursery:
            closed: list[int | None] = []

            async def read() -> None:  # a browser reads all the time
                closed.append(await client.wait_closed())
                nursery.cancel_scope.cancel()

            nursery.start_soon(read)
            frame = b"\x00\x00" * 480  # 20 ms
            with trio.move_on_after(5):
                try:
                    for _ in range(2500):  # 50 s of audio, sent at about 10x real time
                        await client.send_audio(frame)
                        await trio.sleep(0.002)
                except ConnectionClosed:
                    pass
                await trio.sleep_forever()
        assert closed == [1008]
        codes = [e["code"] for e in client.of_type("error")]
        assert "rate_limited" in codes


async def test_real_time_audio_is_never_throttled() -> None:
    async with server(max_audio_rate=2.0) as (address, _, _):
        async with room(address, "room-1") as client:
            frame = b"\x00\x00" * (40 * BYTES_PER_MS // 2)  # 40 ms
            for _ in range(50):  # 2 s, sent 4x faster than real time: within the burst
                await client.send_audio(frame)
                await trio.sleep(0.01)
            await client.drain(0.3)
            assert client.of_type("error") == []


async def test_a_message_flood_is_answered_rate_limited() -> None:
    async with server(max_messages_per_s=5) as (address, _, _):
        async with room(address, "room-1") as client:
            for _ in range(30):
                await client.send(type="playback", response_id="r", played_ms=0)
            await client.drain(0.5)
            limited = [e for e in client.of_type("error") if e["code"] == "rate_limited"]
            assert 15 <= len(limited) <= 20  # a burst of 10 passes, the rest is refused


async def test_a_token_without_the_text_grant_may_not_type() -> None:
    async with server(auth_secret=SECRET) as (address, _, model):
        async with room(address, "room-1", with_token=token(text=False)) as client:
            await client.send(type="text", text="hello")
            assert (await client.wait_for("error"))["code"] == "not_allowed"
            assert model.connects == 0


async def test_the_session_ends_at_its_duration_limit() -> None:
    async with server(max_session_s=1.0) as (address, _, _):
        async with room(address, "room-1") as client:
            assert await client.wait_closed(within=5) == 4001
            assert client.of_type("error")[-1]["code"] == "session_time_limit"


async def test_a_token_may_shorten_the_session() -> None:
    async with server(auth_secret=SECRET) as (address, _, _):
        async with room(address, "room-1", with_token=token(max_duration_s=1)) as client:
            assert await client.wait_closed(within=5) == 4001


async def test_at_the_token_cap_the_agent_says_goodbye_and_nothing_more_is_spent() -> None:
    async with server(max_session_tokens=20) as (address, _services, model):
        async with room(address, "room-1") as client:
            await client.send(type="text", text="first")  # 10 in + 6 words out: 16
            await client.wait_for("audio_end")
            await client.send(type="text", text="second")  # 32: over the cap
            assert (await client.wait_for("error"))["code"] == "session_budget"
            goodbye = await client.wait_for("text_done", where=lambda e: "Goodbye" in e["text"])
            assert goodbye
            assert await client.wait_closed() == 4002
        assert [text for kind, text in model.log if kind == "user"] == ["first", "second"]


async def test_an_interrupt_over_the_goodbye_closes_at_once() -> None:
    model = ScriptedModel(default=ScriptedReply("Hello there, how can I help?"))
    tts = ScriptedTTS(realtime_factor=1.0)  # the goodbye takes seconds to speak
    settings = Settings(max_session_tokens=20)
    services = make_services(model, tts, agent=front_desk, settings=settings)
    async with running_app(services) as address, room(address, "room-1") as client:
        await client.send(type="text", text="first")
        await client.wait_for("audio_end", within=20)
        await client.send(type="text", text="second")  # over the cap: goodbye
        goodbye = await client.wait_for("text_done", where=lambda e: "Goodbye" in e["text"])
        goodbye_id = goodbye["response_id"]
        await client.wait_for("audio_start", where=lambda e: e["response_id"] == goodbye_id)
        await client.send(type="interrupt")
        started = trio.current_time()
        assert await client.wait_closed(within=5) == 4002
        assert trio.current_time() - started < 2.0  # not after the goodbye's seconds of audio
        ended = [e["response_id"] for e in client.of_type("audio_end")]
        assert goodbye_id not in ended  # cut, not played to its end


# -- admin ----------------------------------------------------------------------------


async def test_admin_surface_is_off_without_a_token() -> None:
    async with server() as (address, _, _), httpx.AsyncClient() as http:
        assert (await http.get(f"http://{address}/admin/sessions")).status_code == 404
        assert (await http.get(f"http://{address}/metrics")).status_code == 200


async def test_admin_lists_kicks_and_mutes_sessions() -> None:
    async with server(auth_secret=SECRET, admin_token=ADMIN) as (address, _, model):
        base = f"http://{address}"
        bearer = {"Authorization": f"Bearer {ADMIN}"}
        async with (
            httpx.AsyncClient() as http,
            room(address, "room-1", with_token=token("alice")) as client,
        ):
            assert (await http.get(f"{base}/metrics")).status_code == 401
            assert (await http.get(f"{base}/admin/sessions")).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert (await http.get(f"{base}/admin/sessions", headers=wrong)).status_code == 401
            assert (await http.get(f"{base}/metrics", headers=bearer)).status_code == 200
            listed = (await http.get(f"{base}/admin/sessions", headers=bearer)).json()
            (entry,) = listed["sessions"]
            assert (entry["session_id"], entry["sub"], entry["agent"]) == (
                "room-1",
                "alice",
                "Front Desk",
            )
            assert {"age_s", "model", "cost_usd", "tokens", "muted"} <= entry.keys()

            response = await http.post(f"{base}/admin/sessions/room-1/mute", headers=bearer)
            assert response.json() == {"muted": True, "session_id": "room-1"}
            assert (await client.wait_for("muted"))["muted"] is True
            await client.send_audio(b"\x10\x27" * 4800)  # loud audio: dropped while muted
            await client.drain(0.3)
            assert model.connects == 0
            await http.post(f"{base}/admin/sessions/room-1/unmute", headers=bearer)
            assert (await client.wait_for("muted"))["muted"] is False

            missing = await http.post(f"{base}/admin/sessions/nobody/kick", headers=bearer)
            assert missing.status_code == 404
            kicked = await http.post(
                f"{base}/admin/sessions/room-1/kick", headers=bearer, json={"reason": "abuse"}
            )
            assert kicked.json() == {"kicked": "room-1"}
            error = await client.wait_for("error")
            assert (error["code"], error["message"]) == ("kicked", "abuse")
            assert await client.wait_closed() == 4000


async def test_a_closed_room_gives_its_user_slot_back_before_its_close_frame() -> None:
    """A room the server ends (a drain, a kick) frees its user's slot before the Close
    frame goes out: a client told to reconnect at once must not meet its own old room
    at the limit while that room waits for the Close reply."""
    async with server(auth_secret=SECRET, max_sessions_per_user=1) as (address, services, _):
        stream, head, rest = await raw_handshake(address, f"/ws/room-1?token={token('alice')}")
        assert head.startswith(b"HTTP/1.1 101")
        await eventually(lambda: services.registry.get("room-1") is not None, within=5)
        services.registry.get("room-1").kick("moved elsewhere")
        frames = FrameReader(rest)
        with trio.fail_after(5):
            while frames.close_code is None:  # read the Close frame, never answer it
                frames.feed(await stream.receive_some(1 << 16))
        async with room(address, "room-2", with_token=token("alice")):
            pass
        await stream.aclose()
