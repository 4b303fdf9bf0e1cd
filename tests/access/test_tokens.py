"""Room tokens: what a token opens, and every way one is refused."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from voiceagent.access.tokens import (
    APP_SUBPROTOCOL,
    AccessRefused,
    TokenVerifier,
    mint_token,
    token_from_handshake,
)

SECRET = "test-secret-that-is-long-enough-for-hs256"
# Parameters are built when tests are collected: tokens that must not expire on their own
# during a long run live a day.
LATER = int(time.time()) + 86_400


def refused(verifier: TokenVerifier, token: str | None, room: str) -> AccessRefused:
    with pytest.raises(AccessRefused) as caught:
        verifier.verify(token, room)
    return caught.value


def test_a_token_opens_its_exact_room_only() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(SECRET, sub="alice", room="room-1", ttl_s=60)
    grant = verifier.verify(token, "room-1")
    assert (grant.sub, grant.room, grant.text, grant.audio, grant.admin) == (
        "alice",
        "room-1",
        True,
        True,
        False,
    )
    error = refused(verifier, token, "room-10")
    assert (error.reason, error.status) == ("wrong_room", 403)


def test_a_prefix_pattern_opens_every_room_it_starts() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(SECRET, sub="alice", room="demo-*", ttl_s=60)
    assert verifier.verify(token, "demo-a").sub == "alice"
    assert verifier.verify(token, "demo-").sub == "alice"
    assert refused(verifier, token, "other").reason == "wrong_room"


def test_grants_travel_in_the_token() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(
        SECRET, sub="bob", room="r", ttl_s=60, audio=False, max_duration_s=90, admin=True
    )
    grant = verifier.verify(token, "r")
    assert (grant.text, grant.audio, grant.max_duration_s, grant.admin) == (True, False, 90, True)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (None, "missing_token"),
        ("", "missing_token"),
        ("not-a-jwt", "malformed"),
        (mint_token(SECRET, sub="a", room="r", ttl_s=-60), "expired"),
        (
            mint_token("another-secret-of-sufficient-length!!", sub="a", room="r", ttl_s=86_400),
            "bad_signature",
        ),
        (jwt.encode({"sub": "a", "room": "r"}, SECRET, algorithm="HS256"), "malformed"),  # no exp
        (
            jwt.encode({"room": "r", "exp": LATER}, SECRET, algorithm="HS256"),
            "malformed",
        ),
        (jwt.encode({"sub": "a", "room": "a*b*", "exp": LATER}, SECRET), "malformed"),
        (
            jwt.encode(
                {"sub": "a", "room": "r", "exp": LATER, "grants": {"audio": "yes"}},
                SECRET,
            ),
            "malformed",
        ),
        (
            jwt.encode({"sub": "a", "room": "r", "exp": LATER}, None, algorithm="none"),
            "bad_signature",
        ),
    ],
)
def test_bad_tokens_are_refused_with_401_and_a_reason(token: str | None, reason: str) -> None:
    error = refused(TokenVerifier(secret=SECRET), token, "r")
    assert (error.reason, error.status) == (reason, 401)


def _pem_pair(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    private = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.mark.parametrize(
    ("private_key", "algorithm"),
    [
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"),
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
    ],
)
def test_public_key_tokens(private_key: rsa.RSAPrivateKey, algorithm: str) -> None:
    private, public = _pem_pair(private_key)
    verifier = TokenVerifier(public_key=public)
    token = mint_token(private, sub="carol", room="r", ttl_s=60, algorithm=algorithm)
    assert verifier.verify(token, "r").sub == "carol"
    # A token signed with the public key as an HMAC secret must not pass (key confusion).
    forged = jwt.encode(
        {"sub": "x", "room": "r", "exp": time.time() + 60},
        "forged-with-a-long-enough-hmac-secret!",
        algorithm="HS256",
    )
    assert refused(verifier, forged, "r").reason == "bad_signature"


def test_a_public_key_must_be_pem() -> None:
    with pytest.raises(ValueError, match="PEM"):
        TokenVerifier(public_key="not a key")


def test_the_token_is_read_from_the_subprotocol_first_then_the_query() -> None:
    offered = [APP_SUBPROTOCOL, "access_token.abc.def.ghi"]
    assert token_from_handshake(offered, "query-token") == "abc.def.ghi"
    assert token_from_handshake([APP_SUBPROTOCOL], "query-token") == "query-token"
    assert token_from_handshake([], None) is None
