"""The demo page over the offline server: a "yeah" over the agent pauses it, then it
plays on from where it paused (docs/turn-taking.md).

The page runs with `?bargein=server` (its own VAD does not cut the agent), in a
Chromium whose fake microphone says "Yeah." each time the page opens or restarts it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    Demo,
    browser_skip_reason,
    connected_demo,
    synthesize_question,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]

FIRST_REPLY_TIMEOUT_MS = 90_000  # the first turn may wait for the offline engines to load


@pytest.fixture(scope="module")
def yeah_browser(
    playwright_instance: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    wav: Path = synthesize_question("Yeah.", tmp_path_factory.mktemp("audio") / "yeah.wav")
    args = [*CHROMIUM_FLAGS, f"--use-file-for-fake-audio-capture={wav}%noloop"]
    browser = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=args)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def demo(server_url: str, yeah_browser: Any) -> Iterator[Demo]:
    with connected_demo(yeah_browser, server_url, query="?bargein=server") as demo:
        yield demo


def test_a_yeah_over_the_agent_pauses_and_resumes_playback(demo: Demo) -> None:
    demo.wait("() => window.voiceagent.state === 'connected'", timeout_ms=30_000)
    # The "Yeah." said at connect is an ordinary turn (nothing was playing): its reply
    # is spoken in full first.
    demo.wait("() => window.voiceagent.stats.playback.ended > 0", timeout_ms=FIRST_REPLY_TIMEOUT_MS)
    demo.wait("() => !window.voiceagent.stats.playback.playing")
    seen = demo.page.evaluate(
        "window.voiceagent.recent.filter((e) => e.type === 'text_done').map((e) => e.response_id)"
    )
    demo.ask("How many seats does the plane have?")
    rid = demo.wait(
        """(seen) => {
            const done = window.voiceagent.recent.filter((e) => e.type === 'text_done'
                && e.text.includes('seats') && !seen.includes(e.response_id));
            return done.length ? done[done.length - 1].response_id : null;
        }""",
        arg=seen,
        timeout_ms=FIRST_REPLY_TIMEOUT_MS,
    )
    demo.wait(
        """(rid) => {
            const p = window.voiceagent.stats.playback;
            return p.rid === rid && p.playing && p.playedMs >= 300;
        }""",
        arg=rid,
    )
    before = demo.stats()["playback"]
    demo.page.evaluate("window.voiceagent.restartMic()")  # "Yeah." over the agent
    # The page shows the pause, and holds playback where it is...
    demo.wait(
        """() => document.getElementById('vad-state').dataset.state === 'paused'
              || window.voiceagent.stats.playback.resumes > 0""",
        timeout_ms=10_000,
    )
    demo.wait("(n) => window.voiceagent.stats.playback.pauses > n", arg=before["pauses"] or 0)
    # ... then plays on from there: the reply ends, never cut.
    demo.wait(
        """(rid) => window.voiceagent.recent.some(
            (e) => e.type === 'playback_resume' && e.response_id === rid)""",
        arg=rid,
        timeout_ms=20_000,
    )
    demo.wait("(n) => window.voiceagent.stats.playback.ended > n", arg=before["ended"])
    recent = demo.page.evaluate("window.voiceagent.recent")
    assert not [e for e in recent if e["type"] == "audio_interrupted" and e["response_id"] == rid]
    stats = demo.stats()
    assert stats["playback"]["resumes"] >= 1
    assert stats["lateAudioBytes"] == 0
    assert stats["playback"]["flushes"] == before["flushes"]
    assert demo.problems == []
