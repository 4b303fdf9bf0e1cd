"""The package as users meet it: a cheap import, `voiceagent:app`, `voiceagent serve`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import httpx
import trio

HEAVY = ("quart", "hypercorn", "numpy", "piper", "pocketsphinx", "onnxruntime", "voiceagent.app")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_importing_voiceagent_loads_no_framework_and_no_model() -> None:
    code = (
        "import sys, voiceagent\n"
        f"heavy = {HEAVY!r}\n"
        "print(','.join(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


async def _serve_and_probe(command: list[str], port: int, env: dict[str, str]) -> dict:
    process = await trio.lowlevel.open_process(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        async with httpx.AsyncClient() as client:
            with trio.fail_after(60):
                while True:
                    try:
                        response = await client.get(f"http://127.0.0.1:{port}/healthz")
                        return response.json()
                    except httpx.TransportError:
                        await trio.sleep(0.2)
    finally:
        process.terminate()
        with trio.move_on_after(10):
            await process.wait()
        process.kill()


async def test_voiceagent_serve_runs_the_trio_worker() -> None:
    port = free_port()
    env = {**os.environ, "VOICEAGENT_TTS": "none"}
    health = await _serve_and_probe(
        [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1", "--port", str(port)],
        port,
        env,
    )
    assert health["status"] == "ok" and health["sessions"] == 0


async def test_hypercorn_serves_voiceagent_app_with_the_trio_worker() -> None:
    port = free_port()
    env = {**os.environ, "VOICEAGENT_TTS": "none"}
    command = [
        sys.executable,
        "-m",
        "hypercorn",
        "-k",
        "trio",
        "voiceagent:app",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    health = await _serve_and_probe(command, port, env)
    assert health["status"] == "ok" and health["model"] == "offline"


def test_a_bad_setting_stops_voiceagent_serve_naming_the_variable() -> None:
    env = {**os.environ, "WS_OUTGOING_MAX": "many"}
    out = subprocess.run(
        [sys.executable, "-m", "voiceagent", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "WS_OUTGOING_MAX" in out.stderr
