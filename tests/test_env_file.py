"""Which `.env` is read: the working directory's, or the one named; never a parent's.

Each case runs a fresh Python process from its own directory, with no voiceagent
variable inherited, so the file lookup is exactly what a user starting the server there
would get.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from tests.infra import RedisServer
from tests.test_package import _output_file, _stop, free_port

PROBE = "from voiceagent.config import Settings; print(Settings.from_env().ws_outgoing_max)"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOICEAGENT_", "WS_", "CARTESIA_")) and not k.endswith("_API_KEY")
    }
    env.update(extra)
    return env


def _probe(cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=cwd,
        env=_clean_env(**extra),
        capture_output=True,
        text=True,
        timeout=60,
    )


def _serve(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voiceagent", "serve", "--port", "1", *args],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_working_directorys_env_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WS_OUTGOING_MAX=777\n")
    assert _probe(tmp_path).stdout.strip() == "777"


def test_a_parent_folders_env_is_not_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WS_OUTGOING_MAX=888\n")
    child = tmp_path / "child"
    child.mkdir()
    assert _probe(child).stdout.strip() == "512"  # the default


def test_real_environment_variables_win_over_the_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WS_OUTGOING_MAX=777\n")
    assert _probe(tmp_path, WS_OUTGOING_MAX="999").stdout.strip() == "999"


def test_voiceagent_env_file_replaces_the_working_directorys(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("WS_OUTGOING_MAX=777\n")
    named = tmp_path / "elsewhere" / "prod.env"
    named.parent.mkdir()
    named.write_text("WS_OUTGOING_MAX=555\n")
    assert _probe(tmp_path, VOICEAGENT_ENV_FILE=str(named)).stdout.strip() == "555"


def test_serve_reads_the_env_file_it_is_given(tmp_path: Path) -> None:
    named = tmp_path / "conf" / "bad.env"
    named.parent.mkdir()
    named.write_text("WS_OUTGOING_MAX=many\n")
    out = _serve(tmp_path, "--env-file", "conf/bad.env")  # relative to the working dir
    assert out.returncode == 2, out.stderr
    assert "WS_OUTGOING_MAX='many'" in out.stderr


def test_serve_with_a_missing_env_file_exits_2_naming_it(tmp_path: Path) -> None:
    out = _serve(tmp_path, "--env-file", "nowhere/missing.env")
    assert out.returncode == 2
    assert "env file not found" in out.stderr and "nowhere/missing.env" in out.stderr
    assert "Traceback" not in out.stderr


async def test_every_worker_serves_with_the_env_file(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    named = tmp_path / "offline.env"
    # (several workers need the shared registry: docs/deploy.md)
    named.write_text(
        f"VOICEAGENT_TTS=none\nVOICEAGENT_MODEL=offline\nVOICEAGENT_REDIS_URL={redis_server.url}\n"
    )
    port = free_port()
    command = [sys.executable, "-m", "voiceagent", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "2", "--env-file", str(named)]
    with _output_file(tmp_path / "server.log") as out:
        process = await trio.lowlevel.open_process(
            command, cwd=tmp_path, env=_clean_env(), stdout=out, stderr=out
        )
    try:
        seen = []
        async with httpx.AsyncClient() as client:
            with trio.fail_after(60):
                while len(seen) < 6:  # a new connection each time, spread over the workers
                    try:
                        response = await client.get(
                            f"http://127.0.0.1:{port}/healthz", headers={"connection": "close"}
                        )
                        seen.append(response.json())
                    except httpx.TransportError:
                        await trio.sleep(0.2)
    finally:
        await _stop(process, within=15)
    assert all(health["tts"] is None for health in seen), seen
