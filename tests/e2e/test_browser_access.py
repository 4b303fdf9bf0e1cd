"""Access control as a browser meets it: room tokens, the Origin check, the operator.

- With room tokens required (`VOICEAGENT_AUTH_SECRET`) and the demo's token endpoint on,
  the offline demo still hears the spoken question and answers it aloud: the page asks
  `/demo/token` and offers the token as a WebSocket subprotocol.
- Cross-site WebSocket hijacking: a page served from another site (`http://evil.test`,
  which Chromium resolves to 127.0.0.1 here) cannot open a room, and no session exists
  afterwards; once that origin is listed in `VOICEAGENT_ALLOWED_ORIGINS` it can.
- An operator's mute is shown while it lasts, and a kick ends the page's session with
  the operator's reason and close 4000.
"""

from __future__ import annotations

import functools
import re
import socket
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    Demo,
    browser_skip_reason,
    connected_demo,
)
from tests.e2e.conftest import voiceagent_server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]

FIRST_REPLY_TIMEOUT_MS = 90_000  # the first turn may wait for the offline engines to load
CONNECT_TIMEOUT_MS = 60_000
SOCKET_TIMEOUT_MS = 15_000
AUTH_SECRET = "browser-test-room-token-secret-0123456789"
ADMIN_TOKEN = "browser-test-admin-token-0123456789"
ATTACKER_HOST = "evil.test"  # not loopback by name: the default Origin rule does not allow it

# The attacker's page: opens a socket to the target it is given and records what happened.
ATTACKER_PAGE = """<!doctype html>
<meta charset="utf-8">
<title>not the demo</title>
<script>
  const target = new URLSearchParams(location.search).get("target");
  window.seen = [];
  window.ended = null; // not window.closed: that is the Window's own read-only flag
  window.ws = new WebSocket(target);
  ws.onopen = () => seen.push("open");
  ws.onerror = () => seen.push("error");
  ws.onmessage = (ev) => seen.push(JSON.parse(ev.data).type);
  ws.onclose = (ev) => {
    seen.push("close");
    window.ended = { code: ev.code };
  };
</script>
"""


# --- the demo with room tokens -----------------------------------------------------------


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with voiceagent_server(
        tmp_path_factory.mktemp("tokens"),
        VOICEAGENT_MODEL="offline",
        VOICEAGENT_TTS="offline",
        VOICEAGENT_AUTH_SECRET=AUTH_SECRET,
        VOICEAGENT_DEMO_TOKENS="1",
    ) as url:
        yield url


def test_offline_demo_talks_back_with_room_tokens_required(token_server: str, browser: Any) -> None:
    # Without a token the room stays shut: the page's token is what opens it.
    assert handshake_status(token_server, "/ws/no-token") == 401
    assert refused_count(token_server, "missing_token") == 1
    with connected_demo(browser, token_server) as demo:
        demo.wait("() => window.voiceagent.state === 'connected'", timeout_ms=CONNECT_TIMEOUT_MS)
        assert demo.page.evaluate("window.voiceagent.usedToken") is True
        text = demo.first_user_transcript(FIRST_REPLY_TIMEOUT_MS)
        assert "bag" in text.lower()
        demo.wait(
            "() => window.voiceagent.stats.playback.ended >= 1",
            timeout_ms=FIRST_REPLY_TIMEOUT_MS,
        )
        replies = demo.page.locator(".msg.assistant .text").all_inner_texts()
        assert any("bag" in reply.lower() for reply in replies)
        stats = demo.stats()
        assert stats["playback"]["playedSamples"] >= 12_000  # half a second, heard
        assert "error" not in stats["eventsByType"]
        assert demo.page.locator("#notice").is_hidden()
        assert demo.problems == []
    assert refused_count(token_server, "missing_token") == 1  # the page never went without


def test_a_refused_connection_says_why_it_may_have_been_refused(
    browser: Any, tmp_path: Path
) -> None:
    """Tokens required, none handed to the demo (the production shape: your backend
    mints them). The browser sees only 1006 before `open`; the page says what to check."""
    with voiceagent_server(
        tmp_path, VOICEAGENT_MODEL="offline", VOICEAGENT_TTS="offline",
        VOICEAGENT_AUTH_SECRET=AUTH_SECRET,
    ) as url:  # fmt: skip
        assert httpx.get(f"{url}/demo/token?room=r1", timeout=5.0).status_code == 204
        with connected_demo(browser, url) as demo:
            demo.page.wait_for_function(
                "() => window.voiceagent.state === 'closed'", timeout=CONNECT_TIMEOUT_MS
            )
            assert demo.page.evaluate("window.voiceagent.usedToken") is False
            assert demo.page.evaluate("window.voiceagent.lastClose.code") == 1006
            text = demo.page.locator("#notice").inner_text()
            assert text.startswith("The server refused the connection:")
            assert "room token" in text and "origin" in text and "server log" in text
            assert demo.page.get_by_role("button", name="Connect").is_enabled()
        assert refused_count(url, "missing_token") == 1


def handshake_status(server_url: str, path: str) -> int:
    """The HTTP status a WebSocket handshake with no token and no Origin gets."""
    host, port = server_url.removeprefix("http://").rsplit(":", 1)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=5.0) as sock:
        sock.sendall(request.encode())
        status_line = sock.makefile("rb").readline().decode()
    return int(status_line.split()[1])


# --- cross-site WebSocket hijacking ------------------------------------------------------


@pytest.fixture(scope="module")
def attacker_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A plain static server on 127.0.0.1 holding the attacker's page; yields its
    origin as the browser sees it (`http://evil.test:<port>`)."""
    root = tmp_path_factory.mktemp("attacker")
    (root / "attack.html").write_text(ATTACKER_PAGE)
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://{ATTACKER_HOST}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def attacker_browser(playwright_instance: Any) -> Iterator[Any]:
    """Chromium resolving evil.test to 127.0.0.1 (no DNS, no hosts file needed)."""
    args = [*CHROMIUM_FLAGS, f"--host-resolver-rules=MAP {ATTACKER_HOST} 127.0.0.1"]
    browser = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=args)
    yield browser
    browser.close()


def open_attacker_page(browser: Any, site: str, server_url: str) -> tuple[Any, Any]:
    context = browser.new_context()
    page = context.new_page()
    target = server_url.replace("http://", "ws://") + "/ws/victim"
    page.goto(f"{site}/attack.html?target={target}")
    return context, page


def refused_count(server_url: str, reason: str) -> float:
    body = httpx.get(f"{server_url}/metrics", timeout=5.0).text
    pattern = rf'^voiceagent_handshakes_refused_total\{{reason="{reason}"\}} (\S+)$'
    match = re.search(pattern, body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def live_sessions(server_url: str) -> int:
    return int(httpx.get(f"{server_url}/healthz", timeout=5.0).json()["sessions"])


def test_a_page_from_another_site_cannot_open_a_room(
    attacker_site: str, attacker_browser: Any, tmp_path: Path
) -> None:
    with voiceagent_server(
        tmp_path, VOICEAGENT_MODEL="offline", VOICEAGENT_TTS="offline",
        VOICEAGENT_ALLOWED_ORIGINS="",
    ) as url:  # fmt: skip
        before = refused_count(url, "origin_not_allowed")
        context, page = open_attacker_page(attacker_browser, attacker_site, url)
        try:
            assert page.evaluate("location.origin") == attacker_site
            page.wait_for_function("() => window.ended !== null", timeout=SOCKET_TIMEOUT_MS)
            assert page.evaluate("window.ended.code") == 1006
            assert "open" not in page.evaluate("window.seen")
        finally:
            context.close()
        assert refused_count(url, "origin_not_allowed") == before + 1
        assert live_sessions(url) == 0


def test_the_same_page_opens_a_room_once_its_origin_is_allowed(
    attacker_site: str, attacker_browser: Any, tmp_path: Path
) -> None:
    """The control: the refusal above was the Origin rule, not something else."""
    with voiceagent_server(
        tmp_path, VOICEAGENT_MODEL="offline", VOICEAGENT_TTS="offline",
        VOICEAGENT_ALLOWED_ORIGINS=attacker_site,
    ) as url:  # fmt: skip
        context, page = open_attacker_page(attacker_browser, attacker_site, url)
        try:
            page.wait_for_function(
                "() => window.seen.includes('session_started')", timeout=CONNECT_TIMEOUT_MS
            )
            assert page.evaluate("window.seen")[0] == "open"
            assert live_sessions(url) == 1
            page.evaluate("window.ws.close(1000)")
            page.wait_for_function("() => window.ended !== null", timeout=SOCKET_TIMEOUT_MS)
        finally:
            context.close()
        assert refused_count(url, "origin_not_allowed") == 0


# --- the operator's mute and kick --------------------------------------------------------


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with voiceagent_server(
        tmp_path_factory.mktemp("admin"),
        VOICEAGENT_MODEL="offline",
        VOICEAGENT_TTS="offline",
        VOICEAGENT_ADMIN_TOKEN=ADMIN_TOKEN,
    ) as url:
        yield url


def operator(server_url: str, session_id: str, action: str, **body: str) -> None:
    response = httpx.post(
        f"{server_url}/admin/sessions/{session_id}/{action}",
        json=body or None,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=5.0,
    )
    assert response.status_code == 200, response.text


def operator_mute_shown(demo: Demo) -> bool:
    return bool(demo.page.locator("#operator-mute").is_visible())


def test_the_page_shows_the_operators_mute_and_kick(admin_server: str, browser: Any) -> None:
    with connected_demo(browser, admin_server) as demo:
        demo.wait("() => window.voiceagent.state === 'connected'", timeout_ms=CONNECT_TIMEOUT_MS)
        room = demo.page.evaluate("window.voiceagent.sessionId")
        assert not operator_mute_shown(demo)

        operator(admin_server, room, "mute")
        demo.wait("() => window.voiceagent.operatorMuted", timeout_ms=SOCKET_TIMEOUT_MS)
        assert operator_mute_shown(demo)
        assert "muted by the operator" in demo.page.locator("#operator-mute").inner_text()

        operator(admin_server, room, "unmute")
        demo.wait("() => !window.voiceagent.operatorMuted", timeout_ms=SOCKET_TIMEOUT_MS)
        assert not operator_mute_shown(demo)

        operator(admin_server, room, "mute")
        demo.wait("() => window.voiceagent.operatorMuted", timeout_ms=SOCKET_TIMEOUT_MS)
        operator(admin_server, room, "kick", reason="abusive language")
        demo.page.wait_for_function(
            "() => window.voiceagent.state === 'closed'", timeout=SOCKET_TIMEOUT_MS
        )
        assert demo.page.evaluate("window.voiceagent.lastClose.code") == 4000
        text = demo.page.locator("#notice").inner_text()
        assert "Ended by the operator: abusive language" in text
        assert "4000" in text
        assert not operator_mute_shown(demo)  # a closed room has no mute to show
        assert demo.page.get_by_role("button", name="Connect").is_enabled()
        assert demo.problems == []
