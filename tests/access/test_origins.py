"""The Origin allowlist and the client address behind trusted proxies."""

from __future__ import annotations

import pytest

from voiceagent.access.origins import OriginPolicy, client_address, parse_networks


@pytest.mark.parametrize(
    ("origin", "host", "allowed"),
    [
        (None, "voice.example.com", True),  # not a browser
        ("https://voice.example.com", "voice.example.com", True),  # same origin
        ("http://localhost:5173", "voice.example.com", True),
        ("http://127.0.0.1:9", "voice.example.com", True),
        ("http://[::1]:8080", "voice.example.com", True),
        ("https://evil.example.net", "voice.example.com", False),
        ("https://voice.example.com.evil.net", "voice.example.com", False),
        ("null", "voice.example.com", False),
        ("https://voice.example.com:444", "voice.example.com", False),  # other port
    ],
)
def test_default_policy(origin: str | None, host: str, allowed: bool) -> None:
    assert OriginPolicy().allows(origin, host) is allowed


def test_configured_origins_and_wildcards() -> None:
    policy = OriginPolicy(["https://app.example.com", "https://*.customer.io"])
    assert policy.allows("https://app.example.com", "voice.internal")
    assert policy.allows("https://APP.example.com/", "voice.internal")
    assert policy.allows("https://a.b.customer.io", "voice.internal")
    assert not policy.allows("https://customer.io", "voice.internal")
    assert not policy.allows("http://a.customer.io", "voice.internal")  # scheme counts
    assert not policy.allows("https://evil.net", "voice.internal")
    assert OriginPolicy(["*"]).allows("https://anything.net", "voice.internal")


def test_a_malformed_wildcard_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        OriginPolicy(["https://app*.example.com"])


def test_forwarded_for_is_believed_only_from_trusted_proxies() -> None:
    proxies = parse_networks(["10.0.0.0/8", "192.168.1.7"])
    # A direct client cannot claim another address.
    assert client_address("203.0.113.9", "1.2.3.4", proxies) == "203.0.113.9"
    # Through one trusted proxy: the address it saw.
    assert client_address("10.1.2.3", "198.51.100.4", proxies) == "198.51.100.4"
    # A client-supplied entry on the left is skipped past the trusted chain.
    chain = "6.6.6.6, 198.51.100.4, 192.168.1.7"
    assert client_address("10.1.2.3", chain, proxies) == "198.51.100.4"
    assert client_address("10.1.2.3", None, proxies) == "10.1.2.3"
    assert client_address(None, None, proxies) == "unknown"
