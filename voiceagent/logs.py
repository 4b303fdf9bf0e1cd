"""Structured logs: one line per event, with the session id on every line.

The session id travels in a `contextvars.ContextVar`. A session wraps its nursery in
`with bind_session(session_id):`; Trio copies the context into every task spawned
inside, so the reader, writer, model and TTS tasks all log with the id, and code that
knows nothing about sessions (providers, tools) gets it for free.

Two line formats, chosen by config (proposed env var `VOICEAGENT_LOG_FORMAT`):
- `kv`:   `ts=2026-11-22T04:10:00.123Z level=info logger=voiceagent.session
           session=room1 msg=turn_done turn_ms=412.5`
- `json`: the same fields as one JSON object per line (orjson).

Extra fields come from the standard `extra=` argument or the `log_event()` helper.

Both formats pass every text field (the message, string extras, the traceback) through
`redact.redact_text()`: a URL logged by us or by a library (trio-websocket logs the URL
it dials at debug level) shows no userinfo and no query values. A line without `://`
costs one substring test per field.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

import orjson

from voiceagent.redact import redact_text

SESSION_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "voiceagent_session_id", default=None
)

FORMATS = ("kv", "json")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "session_id",
}


def bind_session(session_id: str) -> _SessionBinding:
    """Tag every log line emitted inside the block (and tasks spawned in it) with the id."""
    return _SessionBinding(session_id)


class _SessionBinding:
    # A plain context manager, not a generator: every open room holds one (~0.3 KB less).
    __slots__ = ("_session_id", "_token")

    def __init__(self, session_id: str) -> None:
        self._session_id = session_id
        self._token: contextvars.Token[str | None] | None = None

    def __enter__(self) -> None:
        self._token = SESSION_ID.set(self._session_id)

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            SESSION_ID.reset(self._token)
            self._token = None


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event line: `msg=<event>` plus `fields` as key=value pairs."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra=fields)


class SessionFilter(logging.Filter):
    """Copies the bound session id onto each record as `session_id` (None when unbound)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.session_id = SESSION_ID.get()
        return True


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ts": _timestamp(record),
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    session_id = getattr(record, "session_id", None)
    if session_id is None:
        session_id = SESSION_ID.get()
    if session_id is not None:
        out["session"] = session_id
    out["msg"] = redact_text(record.getMessage())
    for key, value in record.__dict__.items():
        if key not in _STANDARD_ATTRS and not key.startswith("_"):
            out[key] = _redacted(value)
    if record.exc_info:
        out["exc"] = redact_text(logging.Formatter().formatException(record.exc_info))
    return out


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, BaseException):  # an `error=exc` extra: its text may hold a URL
        return redact_text(str(value))
    return value


def _kv_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value) if value is None else str(value)
    if text and not any(c in text for c in ' ="\n\t\\'):
        return text
    # Quote with JSON escaping so one event stays one line.
    return orjson.dumps(text).decode()


class KeyValueFormatter(logging.Formatter):
    """`key=value` pairs on one line; values with spaces, quotes or newlines are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_kv_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line; values orjson cannot encode are written with str()."""

    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(_fields(record), default=str).decode()


class _SkipPrintedByHypercorn(logging.Filter):
    """Drops Hypercorn records its own handler has already printed.

    Hypercorn's command line (`hypercorn -k trio voiceagent:app`) gives its loggers a
    handler of their own after the app is imported, and lets records propagate to the
    root as well: without this every Hypercorn line would appear twice. `voiceagent
    serve` hands Hypercorn plain loggers, so there its lines come through here.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("hypercorn."):
            return True  # the common case: no logger lookup
        return not logging.getLogger(record.name).handlers


class RateLimitFilter(logging.Filter):
    """Lets one record through per `interval_s`; the next one passed carries
    `suppressed=N`, the number held back since. Tracebacks are dropped: a failure that
    repeats (Trio retries a failed `accept()` every 0.1 s, each logged with its stack)
    needs one line now and then, not a stack per retry. `count(record)`, if given, sees
    every record, passed or not (e.g. to feed a Prometheus counter)."""

    def __init__(
        self, interval_s: float = 5.0, *, count: Callable[[logging.LogRecord], None] | None = None
    ) -> None:
        super().__init__()
        self._interval = interval_s
        self._count = count
        self._next = 0.0
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self._count is not None:
            self._count(record)
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return False
        self._next = now + self._interval
        record.suppressed = self._suppressed
        self._suppressed = 0
        record.exc_info = None
        record.exc_text = None
        return True


class _VoiceagentHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler `setup_logging` owns, so calling it again replaces, not adds."""


def setup_logging(
    level: str | None = None, fmt: str | None = None, *, stream: TextIO | None = None
) -> logging.Handler:
    """Install one structured handler on the root logger and return it.

    `level` (debug, info, warning, error, critical; default env `VOICEAGENT_LOG_LEVEL`,
    else info) and `fmt` (`kv` or `json`; default env `VOICEAGENT_LOG_FORMAT`, else kv).
    Raises `ValueError` naming the bad value. Calling it again replaces the handler it
    installed before and leaves other handlers alone.
    """
    level_name = (level or os.environ.get("VOICEAGENT_LOG_LEVEL") or "info").strip().upper()
    numeric = logging.getLevelNamesMapping().get(level_name)
    if numeric is None or level_name in ("NOTSET", "WARN", "FATAL"):
        raise ValueError(
            f"log level must be one of debug, info, warning, error, critical; got {level!r}"
        )
    fmt_name = (fmt or os.environ.get("VOICEAGENT_LOG_FORMAT") or "kv").strip().lower()
    if fmt_name not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}; got {fmt!r}")
    handler = _VoiceagentHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt_name == "json" else KeyValueFormatter())
    handler.addFilter(SessionFilter())
    handler.addFilter(_SkipPrintedByHypercorn())
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _VoiceagentHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler
