"""The demo page through HAProxy (deploy/haproxy.cfg) in front of two instances: when
its instance drains, the page reconnects with the same session id, lands on the other
instance and says the conversation starts fresh."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import browser_skip_reason, free_port, watch_console
from tests.e2e.conftest import background_process, voiceagent_server
from tests.infra import (
    ADMIN_TOKEN,
    HAPROXY,
    emulated_openai_env,
    haproxy_available,
    render_haproxy_config,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
    pytest.mark.skipif(not haproxy_available(), reason="haproxy is not installed"),
]

TIMEOUT_MS = 30_000
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _wait(predicate: Any, what: str, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {within} s")


@contextmanager
def two_instances_behind_haproxy(workdir: Path) -> Iterator[tuple[str, list[str]]]:
    """Yields the proxy's URL and the two instances' URLs."""
    with ExitStack() as stack:
        realtime_port = free_port()
        emulator = [sys.executable, "-m", "voiceagent.emulators", "realtime"]
        emulator += ["--port", str(realtime_port), "--canned", "Hello again."]
        stack.enter_context(background_process(emulator, workdir / "emulator.log"))
        settings = emulated_openai_env(realtime_port) | {"VOICEAGENT_ADMIN_TOKEN": ADMIN_TOKEN}
        instances = []
        for name in ("va1", "va2"):
            (workdir / name).mkdir()
            instances.append(stack.enter_context(voiceagent_server(workdir / name, **settings)))
        port, stats_port = free_port(), free_port()
        ports = [int(url.rsplit(":", 1)[1]) for url in instances]
        config = workdir / "haproxy.cfg"
        config.write_text(render_haproxy_config(port, stats_port, ports))
        stack.enter_context(
            background_process([HAPROXY, "-f", str(config), "-db"], workdir / "haproxy.log")
        )

        def both_up() -> bool:
            csv = httpx.get(f"http://127.0.0.1:{stats_port}/stats;csv", timeout=2).text
            return csv.count(",UP,") >= 2

        _wait(both_up, "HAProxy sees both instances up")
        yield f"http://127.0.0.1:{port}", instances


def holder(instances: list[str], session_id: str) -> str | None:
    for url in instances:
        sessions = httpx.get(f"{url}/admin/sessions", headers=AUTH, timeout=5).json()["sessions"]
        if any(session["session_id"] == session_id for session in sessions):
            return url
    return None


def test_the_page_reconnects_elsewhere_when_its_instance_drains(
    browser: Any, tmp_path: Path
) -> None:
    with two_instances_behind_haproxy(tmp_path) as (proxy_url, instances):
        context = browser.new_context()
        page = context.new_page()
        problems = watch_console(page)
        try:
            page.goto(f"{proxy_url}/")
            session_id = page.get_by_label("Session id").input_value()
            page.get_by_role("button", name="Connect").click()
            page.wait_for_function("window.voiceagent.state === 'connected'", timeout=TIMEOUT_MS)
            first: list[str | None] = [None]

            def placed() -> bool:
                first[0] = holder(instances, session_id)
                return first[0] is not None

            _wait(placed, "the room is listed by an instance")
            assert first[0] is not None
            drained = httpx.post(f"{first[0]}/admin/drain", headers=AUTH, timeout=5)
            assert drained.status_code == 202

            again = "(v) => v.stats.reconnects === 1 && v.state === 'connected'"
            page.wait_for_function(f"({again})(window.voiceagent)", timeout=TIMEOUT_MS)
            assert page.evaluate("window.voiceagent.session.session_id") == session_id
            assert page.evaluate("window.voiceagent.lastClose.code") == 1001
            # Each instance keeps its own store here: the room starts fresh over there.
            fresh = "document.querySelector('#notice').textContent.includes('starts fresh')"
            page.wait_for_function(fresh, timeout=TIMEOUT_MS)
            assert holder(instances, session_id) not in (None, first[0])
            assert problems == []
        finally:
            context.close()
