"""The transport rules of transport.py, checked on a real Hypercorn socket."""

from __future__ import annotations

import base64
import os

import trio

from tests.conftest import make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.models.scripted import ScriptedModel
from voiceagent.tts.scripted import ScriptedTTS


async def handshake(address: str, extensions: str | None) -> bytes:
    host, port = address.rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /ws/deflate-check HTTP/1.1",
        f"Host: {address}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in response:
            response += await stream.receive_some(4096)
    await stream.aclose()
    return response.split(b"\r\n\r\n")[0].lower()


async def test_permessage_deflate_offered_by_browsers_is_not_negotiated() -> None:
    services = make_services(ScriptedModel(), ScriptedTTS(), agent=front_desk)
    async with running_app(services) as address:
        offer = "permessage-deflate; client_max_window_bits"
        headers = await handshake(address, offer)
        assert headers.startswith(b"http/1.1 101")
        assert b"sec-websocket-extensions" not in headers
        assert b"permessage-deflate" not in headers
