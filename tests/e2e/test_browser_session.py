"""The demo page's session handling: its id, reconnecting, being replaced by another tab."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.browser import browser_skip_reason, watch_console

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]

TIMEOUT_MS = 30_000


def open_page(browser: Any, url: str) -> tuple[Any, Any, list[str]]:
    context = browser.new_context()
    page = context.new_page()
    problems = watch_console(page)
    page.goto(url)
    return context, page, problems


def state_is(page: Any, state: str) -> None:
    page.wait_for_function("(s) => window.voiceagent.state === s", arg=state, timeout=TIMEOUT_MS)


def test_each_tab_gets_its_own_session_id_and_keeps_it_across_reconnects(
    server_url: str, browser: Any
) -> None:
    ctx_a, page_a, problems = open_page(browser, f"{server_url}/")
    ctx_b, page_b, _ = open_page(browser, f"{server_url}/")
    try:
        id_a = page_a.get_by_label("Session id").input_value()
        id_b = page_b.get_by_label("Session id").input_value()
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", id_a)
        assert id_a != id_b

        page_a.get_by_role("button", name="Connect").click()
        state_is(page_a, "connected")
        assert page_a.evaluate("window.voiceagent.session.session_id") == id_a
        page_a.get_by_role("button", name="Disconnect").click()
        state_is(page_a, "idle")
        page_a.get_by_role("button", name="Connect").click()
        state_is(page_a, "connected")
        assert page_a.evaluate("window.voiceagent.session.session_id") == id_a
        assert problems == []
    finally:
        ctx_a.close()
        ctx_b.close()


def test_an_edited_session_id_is_used_and_a_second_tab_replaces_the_first(
    server_url: str, browser: Any
) -> None:
    ctx_a, page_a, problems = open_page(browser, f"{server_url}/")
    ctx_b, page_b, _ = open_page(browser, f"{server_url}/")
    try:
        for page in (page_a, page_b):
            page.get_by_label("Session id").fill("shared-room_1")
        page_a.get_by_role("button", name="Connect").click()
        state_is(page_a, "connected")
        page_b.get_by_role("button", name="Connect").click()
        state_is(page_b, "connected")
        assert page_b.evaluate("window.voiceagent.session.session_id") == "shared-room_1"
        state_is(page_a, "closed")
        assert page_a.get_by_role("button", name="Connect").is_enabled()
        assert problems == []
        close = page_a.evaluate("window.voiceagent.lastClose")
        assert close["code"] == 1012
        assert "another tab" in page_a.locator("#notice").inner_text()
    finally:
        ctx_a.close()
        ctx_b.close()
