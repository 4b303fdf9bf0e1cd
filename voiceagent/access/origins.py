"""Which web pages may open a room: the `Origin` allowlist, and who the client is.

A browser sends `Origin` with every WebSocket handshake and, unlike with `fetch`, does
not ask the server first: any page a user visits could open a socket to a server on
their network (cross-site WebSocket hijacking). So the handshake checks `Origin`:

- allowed by default: the server's own origin (same host and port as the `Host` header)
  and pages served from `localhost`, `127.0.0.1` or `[::1]` on any port;
- `VOICEAGENT_ALLOWED_ORIGINS` adds origins (`https://app.example.com`), wildcard
  subdomains (`https://*.example.com`) or `*` (any page: only behind your own checks);
- no `Origin` at all is not a browser (a server, a test, a phone bridge) and is allowed:
  the origin check protects browsers' users, tokens protect the server.

`client_address` picks the address used for per-client limits: the peer's, or the
`X-Forwarded-For` entry added by the nearest trusted proxy when the peer is one.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class OriginPolicy:
    def __init__(self, allowed: Sequence[str] = ()) -> None:
        self._any = "*" in allowed
        self._exact = {entry.rstrip("/").lower() for entry in allowed if "*" not in entry}
        self._suffixes = [_wildcard(entry) for entry in allowed if "*" in entry and entry != "*"]

    def allows(self, origin: str | None, host: str | None) -> bool:
        """True when a page from `origin` may open a socket on this server (`Host`)."""
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if self._any or origin in self._exact:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file://) and anything odd
        if host is not None and parts.netloc == host.lower():
            return True
        if parts.hostname in LOOPBACK_HOSTS or f"[{parts.hostname}]" in LOOPBACK_HOSTS:
            return True
        return any(
            parts.scheme == scheme and parts.netloc.endswith(suffix)
            for scheme, suffix in self._suffixes
        )


def _wildcard(entry: str) -> tuple[str, str]:
    """`https://*.example.com` → ("https", ".example.com")."""
    scheme, _, rest = entry.rstrip("/").lower().partition("://")
    if not rest.startswith("*."):
        raise ValueError(f"a wildcard origin looks like https://*.example.com, not {entry!r}")
    return scheme, rest[1:]


def parse_networks(entries: Sequence[str]) -> tuple[Network, ...]:
    """`10.0.0.0/8,192.168.1.7` → networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The client's address, believing `X-Forwarded-For` only from trusted proxies.

    Walks the header from the right (the entry the nearest proxy added) past every
    trusted proxy; the first untrusted address is the client.
    """
    address = peer or "unknown"
    if not forwarded_for or not _trusted(address, trusted):
        return address
    for entry in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not entry:
            continue
        address = entry
        if not _trusted(entry, trusted):
            break
    return address


def _trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
