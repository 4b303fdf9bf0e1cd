"""Resume in the page: a reload reconnects to the same room and shows the conversation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.browser import Demo, browser_skip_reason, watch_console

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]

TIMEOUT_MS = 90_000  # the first turn may wait for the offline engines to load


def bubbles(demo: Demo) -> list[tuple[str, str]]:
    messages = demo.page.locator(".msg")
    return [
        (messages.nth(i).get_attribute("class") or "", messages.nth(i).inner_text())
        for i in range(messages.count())
    ]


FIRST_REPLY = """() => {
    const el = document.querySelector(
        '.msg.assistant:is([data-status="completed"], [data-status="interrupted"]) .text');
    return el && el.textContent.trim() ? el.textContent : null;
}"""


def test_a_reload_shows_the_earlier_conversation(server_url: str, browser: Any) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    demo = Demo(page, watch_console(page))
    try:
        page.goto(f"{server_url}/")
        page.get_by_role("button", name="Connect").click()  # the microphone asks once
        room = page.evaluate("window.voiceagent.sessionId")
        question = demo.first_user_transcript(TIMEOUT_MS)
        reply = demo.wait(FIRST_REPLY, timeout_ms=TIMEOUT_MS)

        page.reload()  # a fresh page: nothing of the conversation is left in it
        assert page.locator(".msg").count() == 0
        assert page.evaluate("window.voiceagent.sessionId") == room
        page.get_by_role("button", name="Connect").click()
        # The earlier turn comes back first, before anything the microphone says now.
        assert demo.wait(FIRST_REPLY) == reply
        assert page.locator(".msg.user .text").first.inner_text() == question
        assert demo.problems == []
    finally:
        context.close()
