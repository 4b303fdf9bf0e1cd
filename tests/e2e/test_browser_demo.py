"""The browser demo, end to end: real Chromium, fake microphone, real offline server.

One page holds one conversation, in the order a person would have it: the tests below
run in file order against the same page (module-scoped), each asserting one thing the
user sees or hears. The page's own counters (`window.voiceagent.stats`) stand in for
the speaker: the playback worklet counts the samples it actually sent to the output.
The last test opens a page of its own, for the JSON audio fallback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser import Demo, browser_skip_reason, connected_demo, watch_console

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]

FIRST_REPLY_TIMEOUT_MS = 90_000  # the first turn may wait for the offline engines to load


@pytest.fixture(scope="module")
def demo(server_url: str, browser: Any) -> Iterator[Demo]:
    """The demo page, connected, with its fake microphone speaking the question."""
    with connected_demo(browser, server_url) as demo:
        yield demo


def assistant_texts(demo: Demo) -> list[str]:
    return demo.page.locator(".msg.assistant .text").all_inner_texts()


def test_page_connects_and_says_the_offline_brain_is_in_use(demo: Demo) -> None:
    demo.wait("() => window.voiceagent.state === 'connected'", timeout_ms=30_000)
    session = demo.page.evaluate("window.voiceagent.session")
    assert session["session_id"] == demo.page.evaluate("window.voiceagent.sessionId")
    assert session["offline_brain"] is True
    banner = demo.page.locator("#offline-banner")
    assert banner.is_visible()
    assert "not from a language model" in banner.inner_text()


def test_microphone_streams_binary_frames_of_the_announced_duration(demo: Demo) -> None:
    """With no `?frame_ms=`, the page sends the server's preferred frame duration."""
    sent = demo.wait("() => window.voiceagent.stats.framesSent >= 50 && window.voiceagent.stats")
    sent = sent["framesSent"]
    assert sent >= 50
    assert demo.stats()["framesDropped"] == 0
    limits = demo.page.evaluate("window.voiceagent.session.limits")
    assert limits["preferred_audio_frame_ms"] == 100
    assert demo.page.evaluate("window.voiceagent.frameMs") == 100
    assert demo.stats()["lastFrameBytes"] == 100 * 48


def test_spoken_question_appears_as_the_user_transcript(demo: Demo) -> None:
    text = demo.first_user_transcript(FIRST_REPLY_TIMEOUT_MS)
    assert "bag" in text.lower()


def test_agent_reply_text_appears(demo: Demo) -> None:
    demo.wait(
        """() => [...document.querySelectorAll('.msg.assistant')].some(
            (m) => m.dataset.status === 'completed' && m.textContent.trim().length > 10)""",
        timeout_ms=FIRST_REPLY_TIMEOUT_MS,
    )
    assert any("bag" in t.lower() for t in assistant_texts(demo))


def test_reply_audio_is_played_and_acknowledged(demo: Demo) -> None:
    demo.wait(
        "() => window.voiceagent.stats.playback.ended >= 1", timeout_ms=FIRST_REPLY_TIMEOUT_MS
    )
    stats = demo.stats()
    # At least half a second of reply audio went out of the playback worklet.
    assert stats["playback"]["playedSamples"] >= 12_000
    assert stats["acksSent"] >= 1
    assert stats["audioBytesIn"] > 0


def test_client_vad_measured_the_spoken_turn(demo: Demo) -> None:
    stats = demo.stats()
    assert stats["vadStarts"] >= 1
    assert stats["vadEnds"] >= 1
    spoken = [e for e in stats["e2e"] if e["spoken"]]
    assert spoken, "no end-of-speech -> first-audio figure was measured"
    assert demo.page.locator('#metrics-latest dd[data-k="e2e_ms"]').inner_text() != "\N{EN DASH}"


def test_typed_question_gets_a_reply(demo: Demo) -> None:
    before = len(assistant_texts(demo))
    ended = demo.stats()["playback"]["ended"]
    demo.ask("Is there wifi on the plane?")
    demo.wait(
        """(n) => {
            const done = [...document.querySelectorAll('.msg.assistant[data-status="completed"]')];
            return done.length > n;
        }""",
        arg=before,
    )
    users = demo.page.locator(".msg.user .text").all_inner_texts()
    assert users.count("Is there wifi on the plane?") == 1
    assert users[-1] == "Is there wifi on the plane?"
    assert "wifi" in assistant_texts(demo)[-1].lower()
    assert demo.page.locator(".msg.user.pending").count() == 0
    # ... and it is spoken too.
    demo.wait("(n) => window.voiceagent.stats.playback.ended > n", arg=ended)


def test_interrupt_flushes_playback(demo: Demo) -> None:
    demo.ask("How many seats does the plane have?")
    rid = demo.wait(
        """() => {
            const done = window.voiceagent.recent.filter(
                (e) => e.type === 'text_done' && e.text.includes('seats'));
            return done.length ? done[done.length - 1].response_id : null;
        }"""
    )
    demo.wait(
        """(rid) => {
            const p = window.voiceagent.stats.playback;
            return p.rid === rid && p.playing && p.playedMs >= 300;
        }""",
        arg=rid,
    )
    flushes = demo.stats()["playback"]["flushes"]
    demo.page.get_by_role("button", name="Interrupt").click()
    demo.wait(
        """(n) => {
            const p = window.voiceagent.stats.playback;
            return p.flushes > n && !p.playing && p.bufferedMs === 0;
        }""",
        arg=flushes,
        timeout_ms=1_000,
    )
    played = demo.stats()["playback"]["playedSamples"]
    # The server confirms the cut of that very response, and sends none of its audio after.
    demo.wait(
        """(rid) => window.voiceagent.recent.some(
            (e) => e.type === 'audio_interrupted' && e.response_id === rid)""",
        arg=rid,
        timeout_ms=5_000,
    )
    demo.page.wait_for_timeout(500)
    stats = demo.stats()
    assert stats["playback"]["playedSamples"] == played, "audio kept playing after the flush"
    assert stats["lateAudioBytes"] == 0, "audio of an interrupted response arrived"
    # The conversation keeps what was heard; the rest of the reply is shown as unheard.
    demo.wait(
        """() => {
            const last = [...document.querySelectorAll('.msg.assistant')].pop();
            return last.dataset.status === 'interrupted' && last.querySelector('.unheard');
        }""",
        timeout_ms=5_000,
    )


def test_speaking_over_the_agent_barges_in(demo: Demo) -> None:
    demo.wait("() => !window.voiceagent.stats.playback.playing")
    demo.ask("How many seats does the plane have?")
    rid = demo.wait(
        """(seen) => {
            const done = window.voiceagent.recent.filter(
                (e) => e.type === 'text_done' && e.text.includes('seats'));
            const last = done[done.length - 1];
            return last && last.response_id !== seen ? last.response_id : null;
        }""",
        arg=demo.page.evaluate("window.voiceagent.stats.playback.rid"),
    )
    demo.wait(
        """(rid) => {
            const p = window.voiceagent.stats.playback;
            return p.rid === rid && p.playing && p.playedMs >= 300;
        }""",
        arg=rid,
    )
    before = demo.stats()
    # The fake microphone starts its file again: the question, over the agent's voice.
    demo.page.evaluate("window.voiceagent.restartMic()")
    # The client VAD cuts the agent off at once, before the server says so.
    demo.wait(
        """(b) => {
            const s = window.voiceagent.stats;
            return s.bargeIns > b.bargeIns && s.playback.flushes > b.playback.flushes;
        }""",
        arg=before,
        timeout_ms=5_000,
    )
    demo.wait(
        """(rid) => window.voiceagent.recent.some(
            (e) => e.type === 'audio_interrupted' && e.response_id === rid)""",
        arg=rid,
        timeout_ms=5_000,
    )
    # ... and the agent answers what was said instead.
    demo.wait(
        """(rid) => {
            const done = window.voiceagent.recent.filter((e) => e.type === 'text_done');
            const last = done[done.length - 1];
            return last.response_id !== rid && last.text.toLowerCase().includes('bag');
        }""",
        arg=rid,
        timeout_ms=FIRST_REPLY_TIMEOUT_MS,
    )
    assert demo.stats()["lateAudioBytes"] == 0


def test_each_turn_is_one_bubble(demo: Demo) -> None:
    # Spoken, typed, typed, typed, spoken questions; transcripts, history events and
    # snapshots of the same item never draw a second bubble.
    assert demo.page.locator(".msg.user").count() == 5
    ids = demo.page.eval_on_selector_all(
        ".msg[data-item-id]", "els => els.map(e => e.dataset.itemId)"
    )
    assert len(ids) == len(set(ids))


def test_no_console_or_protocol_errors_and_screenshot(demo: Demo, artifacts_dir: Path) -> None:
    demo.page.wait_for_timeout(300)
    demo.page.locator("#events-details summary").click()
    demo.page.screenshot(path=str(artifacts_dir / "browser-demo.png"), full_page=True)
    assert demo.problems == []
    # Everything the page sent (frames, acks, metrics, text, interrupt) was valid.
    assert "error" not in demo.stats()["eventsByType"]


def test_json_audio_fallback_carries_speech(server_url: str, browser: Any) -> None:
    context = browser.new_context()
    page = context.new_page()
    problems = watch_console(page)
    try:
        page.goto(f"{server_url}/?audio=json")
        page.get_by_role("button", name="Connect").click()
        demo = Demo(page, problems)
        text = demo.first_user_transcript(FIRST_REPLY_TIMEOUT_MS)
        assert "bag" in text.lower()
        stats = demo.stats()
        assert stats["framesSent"] > 0
        assert page.evaluate("window.voiceagent.audioTransport") == "json"
        assert "error" not in stats["eventsByType"]
        assert problems == []
    finally:
        context.close()


def test_microphone_streams_20ms_binary_frames(server_url: str, browser: Any) -> None:
    """`?frame_ms=20`: the version-1 framing (telephony's), still carrying speech."""
    with connected_demo(browser, server_url, "?frame_ms=20") as demo:
        sent = demo.wait(
            "() => window.voiceagent.stats.framesSent >= 50 && window.voiceagent.stats"
        )
        sent = sent["framesSent"]
        assert sent >= 50
        assert demo.stats()["framesDropped"] == 0
        assert demo.page.evaluate("window.voiceagent.frameMs") == 20
        assert demo.stats()["lastFrameBytes"] == 960
        text = demo.first_user_transcript(FIRST_REPLY_TIMEOUT_MS)
        assert "bag" in text.lower()
        assert "error" not in demo.stats()["eventsByType"]
        assert demo.problems == []
