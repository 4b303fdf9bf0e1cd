"""The transport rules of transport.py and quart_websocket.py, on a real Hypercorn socket.

These are the contract tests of the patches on Hypercorn and Quart internals
(pyproject.toml pins both ranges): each fails if an upgrade turns a patch into a no-op.
"""

from __future__ import annotations

import orjson
import trio

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from tests.transport_client import (
    FrameReader,
    masked_frame,
    raw_handshake,
    read_until_closed,
    unread_bytes,
)
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.quart_websocket import reads_directly
from voiceagent.tts.scripted import ScriptedTTS

LONG_REPLY = " ".join(f"word{i}" for i in range(200))
TEXT = 0x1


async def test_permessage_deflate_offered_by_browsers_is_not_negotiated() -> None:
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address:
        offer = "permessage-deflate; client_max_window_bits"
        stream, head, _ = await raw_handshake(address, "/ws/deflate-check", offer)
        await stream.aclose()
        headers = head.lower()
        assert headers.startswith(b"http/1.1 101")
        assert b"sec-websocket-extensions" not in headers
        assert b"permessage-deflate" not in headers


async def test_sessions_read_through_the_direct_quart_hook() -> None:
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address, connect(address, "hooked") as client:
        await client.wait_for("session_started")
        session = services.registry.get("hooked")
        assert session is not None
        assert reads_directly(session._socket)


async def test_a_peer_that_never_reads_is_dropped_within_the_write_timeout() -> None:
    """The write deadline, and nothing else, ends it: the session's own 1013 rule
    (WS_SEND_TIMEOUT_S) is set out of reach. No Close frame can reach a peer that does
    not read, so once it reads again it finds the stream ended without one: 1006."""
    timeout = 1.5
    settings = Settings(ws_write_timeout_s=timeout, ws_send_timeout_s=120.0)
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY))
    tts = ScriptedTTS(ms_per_char=2000)  # ~50 MB of audio, unpaced: far more than buffers
    services = make_services(model, tts, agent=front_desk, settings=settings)
    async with running_app(services) as address:
        stream, head, rest = await raw_handshake(address, "/ws/deaf", rcvbuf=4096)
        assert head.startswith(b"HTTP/1.1 101")
        message = orjson.dumps({"type": "text", "text": "flood me"})
        await stream.send_all(masked_frame(TEXT, message))
        # Never read. The server's write blocks (at the latest) once our receive buffer
        # stops growing, and (at the earliest) once data has reached us.
        first_data_at = last_growth_at = None
        seen = -1
        with trio.fail_after(30):
            while services.registry.get("deaf") is not None or first_data_at is None:
                unread = unread_bytes(stream)
                if unread != seen:
                    last_growth_at, seen = trio.current_time(), unread
                    first_data_at = first_data_at or last_growth_at
                await trio.sleep(0.01)
        gone_at = trio.current_time()
        assert first_data_at is not None and last_growth_at is not None
        assert gone_at - first_data_at >= timeout - 0.05
        assert gone_at - last_growth_at <= timeout + 1.0, gone_at - last_growth_at
        assert await read_until_closed(stream, FrameReader(rest), within=30) == 1006
