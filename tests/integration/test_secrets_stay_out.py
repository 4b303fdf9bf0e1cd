"""Keys and internals never reach the browser, and never a log line in clear.

`voiceagent serve` runs as a real process, with recognisable fake keys and a Cartesia
URL that carries its key as `?api_key=` (Cartesia accepts that form), a room-token
secret, an admin token and a room token offered in the URL, pointed at closed ports or
at the emulators (as real servers) refusing the credentials (401), rate limiting the
handshake (429) or dropping the socket mid-response. A client drives a
session until the failure is reported; then every event it received, `/healthz`,
`/metrics` and the server's whole output (at debug level, so library lines such as
trio-websocket's "Connecting to <url>" are included) are searched for the secrets.
Clients must also see no `127.0.0.1:<port>`; logs may name the endpoint, redacted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import orjson
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.test_package import _output_file, _stop, free_port
from voiceagent.access.tokens import mint_token
from voiceagent.emulators.cartesia import CartesiaEmulatorConfig, serve_cartesia
from voiceagent.emulators.realtime import EmulatorConfig, serve_realtime
from voiceagent.emulators.realtime_config import Faults
from voiceagent.emulators.realtime_parts import CannedTranscriber

AZURE_KEY = "AZKEY-SECRET-4242"
CARTESIA_KEY = "CAKEY-SECRET-5353"
URL_KEY = "SECRETVALUE123"
AUTH_SECRET = "AUTHSECRET-" + "7" * 32  # signs room tokens
ADMIN_TOKEN = "ADMINTOKEN-SECRET-9191"
ROOM_TOKEN = mint_token(AUTH_SECRET, sub="alice", room="secrets", ttl_s=86_400)
SECRETS = (AZURE_KEY, CARTESIA_KEY, URL_KEY, AUTH_SECRET, ADMIN_TOKEN, ROOM_TOKEN)


def _closed_port() -> int:
    return free_port()  # bound, then closed: nothing listens there


@asynccontextmanager
async def _server(tmp_path: Path, env: dict[str, str]) -> AsyncIterator[tuple[str, Path]]:
    """`voiceagent serve` on a free port, run from an empty directory; yields its address
    and the file holding its stdout and stderr."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.update(env, VOICEAGENT_LOG_LEVEL="debug", VOICEAGENT_TTS_FALLBACK="false")
    command = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port)]
    log_path = tmp_path / "server.log"
    with _output_file(log_path) as out:
        process = await trio.lowlevel.open_process(
            command, env=full, cwd=tmp_path, stdout=out, stderr=out
        )
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(60):
                while True:
                    try:
                        await client.get(f"http://127.0.0.1:{port}/healthz")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.2)
        yield f"127.0.0.1:{port}", log_path
    finally:
        await _stop(process)


async def _session_until_error(address: str) -> list[str]:
    """Ask a question; return every text frame received until the first `error` (+1 s)."""
    received: list[str] = []
    # The room token travels in the URL, the form proxies log: it must not reach a log here.
    url = f"ws://{address}/ws/secrets?token={ROOM_TOKEN}"
    async with open_websocket_url(url) as ws:
        await ws.send_message(orjson.dumps({"type": "text", "text": "Is there wifi?"}).decode())
        with trio.fail_after(30):
            while True:
                message = await ws.get_message()
                if isinstance(message, str):
                    received.append(message)
                    if orjson.loads(message)["type"] == "error":
                        break
        with trio.move_on_after(1.0):
            while True:
                message = await ws.get_message()
                if isinstance(message, str):
                    received.append(message)
    return received


def _assert_clean(seen: str, where: str, ports: list[int], *, endpoint_allowed: bool) -> None:
    for secret in SECRETS:
        assert secret not in seen, f"{secret} in {where}"
    assert not re.search(r"api_key=(?!\*\*\*)", seen), f"an unmasked api_key= in {where}"
    if not endpoint_allowed:
        for port in ports:
            assert f"127.0.0.1:{port}" not in seen, f"127.0.0.1:{port} in {where}"
        assert "api_key=" not in seen, f"a query string in {where}"


SCENARIOS = {
    # what fails: (realtime emulator api_keys or None for a closed port,
    #              Cartesia emulator api_key or None for a closed port, expected code,
    #              realtime emulator faults)
    "model_closed_port": (None, "unused", "model_unavailable", Faults()),
    "cartesia_closed_port": ((), None, "tts_unavailable", Faults()),
    "model_wrong_key": (("the-right-key",), "unused", "model_auth", Faults()),
    "cartesia_wrong_key": ((), "the-right-key", "tts_unauthorized", Faults()),
    "model_rate_limited": ((), "unused", "rate_limited", Faults(reject_status=429)),
    "model_dropped": ((), "unused", "model_dropped", Faults(drop_on_response=1)),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_no_secret_or_endpoint_reaches_the_client_or_the_log(
    scenario: str, tmp_path: Path
) -> None:
    realtime_keys, cartesia_key, expected_code, faults = SCENARIOS[scenario]
    async with trio.open_nursery() as nursery:
        if realtime_keys is None:
            rt_port = _closed_port()
        else:
            config = EmulatorConfig(
                api_keys=realtime_keys,
                transcriber=CannedTranscriber("Is there wifi?"),
                faults=faults,
            )
            rt_port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)
        if cartesia_key is None:
            ca_port = _closed_port()
        else:
            cartesia = CartesiaEmulatorConfig(api_key=cartesia_key, first_chunk_latency_ms=0)
            ca_port = await nursery.start(serve_cartesia, "127.0.0.1", 0, cartesia)
        env = {
            "AZURE_OPENAI_API_KEY": AZURE_KEY,
            "AZURE_OPENAI_REALTIME_URL": (
                f"ws://127.0.0.1:{rt_port}/openai/v1/realtime?model=voice-demo"
            ),
            "CARTESIA_API_KEY": CARTESIA_KEY,
            "CARTESIA_WEBSOCKET_URL": (f"ws://127.0.0.1:{ca_port}/tts/websocket?api_key={URL_KEY}"),
            "VOICEAGENT_AUTH_SECRET": AUTH_SECRET,
            "VOICEAGENT_ADMIN_TOKEN": ADMIN_TOKEN,
        }
        async with _server(tmp_path, env) as (address, log_path):
            received = await _session_until_error(address)
            async with httpx.AsyncClient() as client:
                health = (await client.get(f"http://{address}/healthz")).text
                bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
                metrics = (await client.get(f"http://{address}/metrics", headers=bearer)).text
                assert "voiceagent_sessions_open" in metrics  # the real exposition
        nursery.cancel_scope.cancel()
    errors = [e for e in map(orjson.loads, received) if e["type"] == "error"]
    assert errors[0]["code"] == expected_code, errors
    assert errors[0]["message"]  # a human message, not an empty one
    ports = [rt_port, ca_port]
    _assert_clean("\n".join(received), "the client's events", ports, endpoint_allowed=False)
    _assert_clean(health, "/healthz", ports, endpoint_allowed=False)
    _assert_clean(metrics, "/metrics", ports, endpoint_allowed=False)
    log = log_path.read_text()
    assert expected_code in log, log[-3000:]  # the failure was logged...
    _assert_clean(log, "the server log", ports, endpoint_allowed=True)  # ...without a key
    if scenario.startswith("cartesia"):
        # The refusal's detail names the endpoint: the line is there, its query masked.
        assert f"127.0.0.1:{ca_port}/tts/websocket?api_key=***" in log, log[-3000:]


def test_a_bad_url_setting_is_reported_without_its_query() -> None:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["CARTESIA_WEBSOCKET_URL"] = f"https://api.cartesia.ai/tts/websocket?api_key={URL_KEY}"
    out = subprocess.run(
        [sys.executable, "-m", "voiceagent", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "CARTESIA_WEBSOCKET_URL" in out.stderr and "api_key=***" in out.stderr
    assert URL_KEY not in out.stderr + out.stdout
