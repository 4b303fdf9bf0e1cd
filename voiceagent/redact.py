"""Redaction: what may be shown of a URL or an error, and to whom.

Rules:
- A client (the browser) gets an error `code` and a human message only: no URL, no
  host or port, no key. Provider errors therefore carry two texts: `str(error)` is the
  human message, `error.detail` the technical one, for the log.
- A log line may name the endpoint, but never a credential: `redact_url()` keeps the
  scheme, host, port and path, drops any `user:password@`, and replaces every query
  value and the fragment with `***`. Cartesia accepts its key as `?api_key=...`, so
  query values are secrets until proven otherwise.
- `redact_text()` applies the same to every URL inside a free text (an exception's
  message, a third-party library's log line: trio-websocket logs the full URL it
  connects to at debug level). The log formatters run it on every line.

Pure functions, no I/O; a string that does not parse as a URL is redacted whole.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# scheme://... up to whitespace or a quote, not ending in punctuation that closes the
# sentence around it (covers ws, wss, http, https, redis, ...)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>`]*[^\s'\"<>`).,;:!\]]")


def redact_url(url: str) -> str:
    """`url` without userinfo, with every query value and the fragment masked.

    >>> redact_url("wss://u:pw@api.cartesia.ai/tts/websocket?api_key=sk_1&v=2#x")
    'wss://***@api.cartesia.ai/tts/websocket?api_key=***&v=***#***'
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://{MASK}" if scheme else MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = "&".join(_mask_pair(pair) for pair in parts.query.split("&")) if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _mask_pair(pair: str) -> str:
    name, sep, _ = pair.partition("=")
    # A bare `?token` may itself be the secret: mask the whole piece.
    return f"{name}={MASK}" if sep else MASK


def redact_text(text: str) -> str:
    """`text` with every URL in it passed through `redact_url()`."""
    if "://" not in text:
        return text  # the common case: no regex work
    return _URL.sub(lambda match: redact_url(match.group(0)), text)


def redact_exception(exc: BaseException) -> str:
    """`repr(exc)` and of its causes, URLs redacted: the technical detail for a log line.

    Libraries often wrap the telling error (trio-websocket raises a bare
    `HandshakeError()` from the `OSError` that says what failed), so up to three links
    of the `__cause__` / `__context__` chain follow: `HandshakeError() <- OSError(...)`.
    """
    parts = [repr(exc)]
    link = exc.__cause__ or exc.__context__
    while link is not None and len(parts) < 4:
        parts.append(repr(link))
        link = link.__cause__ or link.__context__
    return redact_text(" <- ".join(parts))
