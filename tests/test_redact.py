"""`voiceagent.redact`: URLs keep their endpoint and lose their credentials."""

from __future__ import annotations

import io
import logging

import pytest

from voiceagent.logs import setup_logging
from voiceagent.redact import redact_exception, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "wss://api.cartesia.ai/tts/websocket?api_key=sk_car_1&cartesia_version=2025-04-16",
            "wss://api.cartesia.ai/tts/websocket?api_key=***&cartesia_version=***",
        ),
        ("wss://user:pw@host.example:8443/v1/realtime", "wss://***@host.example:8443/v1/realtime"),
        ("ws://127.0.0.1:9/realtime?token#frag", "ws://127.0.0.1:9/realtime?***#***"),
        ("wss://api.openai.com/v1/realtime", "wss://api.openai.com/v1/realtime"),
        ("ws://[::1/broken?api_key=k", "ws://***"),
        ("ws://host:notaport/x?api_key=k", "ws://***"),
        ("not a url?api_key=k", "not a url?api_key=***"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_text_finds_every_url_and_leaves_the_rest() -> None:
    text = (
        "Connecting to ws://127.0.0.1:5/tts/websocket?api_key=K1 (then "
        "'https://a:b@x.example/p?q=K2'), done."
    )
    assert redact_text(text) == (
        "Connecting to ws://127.0.0.1:5/tts/websocket?api_key=*** (then "
        "'https://***@x.example/p?q=***'), done."
    )
    assert redact_text("no address here: 127.0.0.1:5") == "no address here: 127.0.0.1:5"
    # Redacting twice changes nothing (log lines may carry already redacted details).
    once = redact_text("ws://h/x?api_key=K: HandshakeError()")
    assert once == "ws://h/x?api_key=***: HandshakeError()" == redact_text(once)


def test_redact_exception_follows_the_cause() -> None:
    exc = OSError("cannot open wss://h.example/x?api_key=K3")
    assert redact_exception(exc) == "OSError('cannot open wss://h.example/x?api_key=***')"
    try:
        try:
            raise exc
        except OSError as inner:
            raise ConnectionError() from inner
    except ConnectionError as outer:
        shown = redact_exception(outer)
    assert shown == "ConnectionError() <- OSError('cannot open wss://h.example/x?api_key=***')"


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_log_lines_are_redacted_whatever_logged_them(fmt: str) -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = setup_logging("debug", fmt, stream=stream)
    try:
        logging.getLogger("trio-websocket").debug(
            "Connecting to %s", "ws://127.0.0.1:5/tts/websocket?api_key=K4"
        )
        logging.getLogger("voiceagent.x").warning(
            "failed", extra={"detail": "wss://u:p@h/x?k=K5", "error": OSError("ws://h/?k=K6")}
        )
        try:
            raise RuntimeError("ws://h/?api_key=K7")
        except RuntimeError:
            logging.getLogger("voiceagent.x").exception("crash")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    out = stream.getvalue()
    for secret in ("K4", "K5", "K6", "K7", "u:p@"):
        assert secret not in out, out
    assert "ws://127.0.0.1:5/tts/websocket?api_key=***" in out
