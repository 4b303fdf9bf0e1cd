"""The browser demo with keys: Azure OpenAI Realtime and Cartesia, both emulated.

The deployment shape with provider keys, end to end: Chromium's fake microphone speaks
the question; the server relays it to the Realtime emulator (GA protocol, server VAD,
transcription with the local recogniser, replies from the offline brain as text) and
voices the reply through the Cartesia emulator (streamed contexts, the local voice).
Every byte crosses real sockets through the real client code. The tests run in file
order against one page, like test_browser_demo.py.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.browser import Demo, browser_skip_reason, connected_demo, free_port
from tests.e2e.conftest import background_process, voiceagent_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]

FIRST_REPLY_TIMEOUT_MS = 90_000  # generous: a loaded machine may still be warming engines


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


@pytest.fixture(scope="module")
def cloud_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server with keys, pointed at both emulators (each its own process)."""
    workdir = tmp_path_factory.mktemp("cloud")
    realtime, cartesia = free_port(), free_port()
    emulator = [sys.executable, "-m", "voiceagent.emulators"]
    with (
        background_process([*emulator, "realtime", "--port", str(realtime), "--stt"],
                           workdir / "realtime.log", cwd=workdir),
        background_process([*emulator, "cartesia", "--port", str(cartesia), "--voice", "local"],
                           workdir / "cartesia.log", cwd=workdir),
    ):  # fmt: skip
        wait_port(realtime)
        wait_port(cartesia)
        with voiceagent_server(
            workdir,
            AZURE_OPENAI_API_KEY="emulator-key",
            AZURE_OPENAI_REALTIME_URL=(
                f"ws://127.0.0.1:{realtime}/openai/v1/realtime?model=voice-demo"
            ),
            CARTESIA_API_KEY="emulator-key",
            CARTESIA_WEBSOCKET_URL=f"ws://127.0.0.1:{cartesia}/tts/websocket",
            VOICEAGENT_MODEL="azure",
            VOICEAGENT_TTS="cartesia",
        ) as url:
            yield url


@pytest.fixture(scope="module")
def demo(cloud_url: str, browser: Any) -> Iterator[Demo]:
    with connected_demo(browser, cloud_url) as demo:
        yield demo


def test_page_connects_to_the_cloud_providers(demo: Demo) -> None:
    demo.wait("() => window.voiceagent.state === 'connected'", timeout_ms=30_000)
    session = demo.page.evaluate("window.voiceagent.session")
    assert (session["model"], session["tts"], session["offline_brain"]) == (
        "azure",
        "cartesia",
        False,
    )
    assert not demo.page.locator("#offline-banner").is_visible()


def test_spoken_question_is_transcribed_and_answered_aloud(demo: Demo) -> None:
    heard = demo.first_user_transcript(FIRST_REPLY_TIMEOUT_MS)
    assert "bag" in heard.lower()
    demo.wait(
        "() => window.voiceagent.stats.playback.ended >= 1", timeout_ms=FIRST_REPLY_TIMEOUT_MS
    )
    answers = demo.page.locator(".msg.assistant .text").all_inner_texts()
    assert any("bag" in text.lower() for text in answers), answers
    # At least half a second of Cartesia's streamed audio went out of the speakers.
    assert demo.stats()["playback"]["playedSamples"] >= 12_000


def test_typed_question_gets_a_spoken_reply(demo: Demo) -> None:
    ended = demo.stats()["playback"]["ended"]
    demo.ask("Is there wifi on the plane?")
    demo.wait("(n) => window.voiceagent.stats.playback.ended > n", arg=ended)
    answers = demo.page.locator(".msg.assistant .text").all_inner_texts()
    assert "wifi" in answers[-1].lower(), answers


def test_no_console_or_protocol_errors(demo: Demo) -> None:
    errors = [e for e in demo.page.evaluate("window.voiceagent.recent") if e["type"] == "error"]
    assert errors == []
    assert demo.problems == []
