"""Fixtures for the browser end-to-end tests: a real server, a spoken question, Chromium.

- `server_url`: `hypercorn -k trio voiceagent:app` in a subprocess on a free loopback
  port, offline providers forced, run from an empty directory (a developer's `.env`
  with provider keys must not turn the test into a paid call). Set
  VOICEAGENT_E2E_BASE_URL to test a server you started yourself instead.
- `question_wav`: a spoken airline question synthesised with the local Piper voice.
- `browser`: Debian's Chromium (never a Playwright-downloaded one) with a fake
  microphone that plays the question once each time a page opens it.

Every browser test is skipped, with the reason, when Chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_FLAGS,
    SPOKEN_QUESTION,
    browser_skip_reason,
    free_port,
    synthesize_question,
)

SERVER_START_TIMEOUT_S = 90.0


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a running voiceagent server (see the module docstring)."""
    external = os.environ.get("VOICEAGENT_E2E_BASE_URL")
    if external:
        yield external.rstrip("/")
        return
    workdir = tmp_path_factory.mktemp("server")
    with voiceagent_server(workdir, VOICEAGENT_MODEL="offline", VOICEAGENT_TTS="offline") as url:
        yield url


@contextmanager
def voiceagent_server(workdir: Path, **settings: str) -> Iterator[str]:
    """`hypercorn -k trio voiceagent:app` on a free loopback port with `settings` as its
    environment (no inherited provider keys), run from `workdir`; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(settings, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "hypercorn", "-k", "trio", "voiceagent:app"]
    command += ["--bind", f"127.0.0.1:{port}"]
    url = f"http://127.0.0.1:{port}"
    with background_process(command, workdir / "server.log", cwd=workdir, env=env) as proc:
        _wait_healthy(url, proc, workdir / "server.log")
        yield url


@contextmanager
def background_process(
    command: list[str], log_path: Path, **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` with its output in `log_path`; terminate it (then kill) on exit."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, **popen)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"the server exited with {proc.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    tail = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"the server did not answer /healthz in {SERVER_START_TIMEOUT_S} s:\n{tail}")


@pytest.fixture(scope="session")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spoken question the fake microphone plays (once) after the page connects."""
    return synthesize_question(SPOKEN_QUESTION, tmp_path_factory.mktemp("audio") / "question.wav")


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Any]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance: Any, question_wav: Path) -> Iterator[Any]:
    """Chromium whose fake microphone plays the question once per capture it opens."""
    # "%noloop": the fake device plays the file once, then silence, instead of
    # repeating the question forever. Every getUserMedia starts the file again.
    args = [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={question_wav}%noloop"]
    browser = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=args)
    yield browser
    browser.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
