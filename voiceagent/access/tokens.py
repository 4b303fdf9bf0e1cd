"""Room tokens: short-lived signed JWTs that let one user into matching rooms.

Rules:
- A token names its user (`sub`), the rooms it opens (`room`: an exact session id, or a
  prefix pattern ending in `*`), when it expires (`exp`, required) and optional grants
  (`grants`: `text`, `audio`, `max_duration_s`, `admin`).
- HS256 with a shared secret, or RS256/ES256 with a public key (the application's
  backend keeps the private key). Only the algorithm that fits the configured key is
  accepted, so a token cannot choose its own verification (no `none`, no HS256 signed
  with a public key).
- Every refusal is an `AccessRefused` with a stable `reason` (counted in /metrics) and
  the HTTP status the handshake answers with: 401 when the token is missing or not
  valid, 403 when a valid token does not open this room.

Browsers cannot set headers on a WebSocket, so the token travels either as one entry of
`Sec-WebSocket-Protocol` (`access_token.<jwt>`, preferred: proxies do not log it) next
to the application protocol `voiceagent.v1`, or as a `token` query parameter.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jwt

APP_SUBPROTOCOL = "voiceagent.v1"
TOKEN_SUBPROTOCOL_PREFIX = "access_token."
ASYMMETRIC_ALGORITHMS = ("RS256", "ES256")
LEEWAY_S = 5.0  # clock skew tolerated between the minting backend and this server


class AccessRefused(Exception):
    """The handshake is refused: `status` is the HTTP answer, `reason` the metric label."""

    def __init__(self, reason: str, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class RoomGrant:
    """What a verified token allows its holder."""

    sub: str
    room: str  # an exact session id, or a prefix pattern ending in "*"
    expires_at: float
    text: bool = True
    audio: bool = True
    max_duration_s: float | None = None
    admin: bool = False

    def opens(self, session_id: str) -> bool:
        if self.room.endswith("*"):
            return session_id.startswith(self.room[:-1])
        return session_id == self.room


# The grant a room gets when authentication is off: anyone, everything.
OPEN_GRANT = RoomGrant(sub="", room="*", expires_at=float("inf"))


class TokenVerifier:
    """Checks room tokens against one key; see the module docstring."""

    def __init__(self, *, secret: str | None = None, public_key: str | None = None) -> None:
        if (secret is None) == (public_key is None):
            raise ValueError("give exactly one of a shared secret or a public key")
        if secret is not None:
            self._key: Any = secret
            self._algorithms = ["HS256"]
        else:
            assert public_key is not None
            self._key = _load_public_key(public_key)
            self._algorithms = list(ASYMMETRIC_ALGORITHMS)

    def verify(self, token: str | None, session_id: str) -> RoomGrant:
        """The grant of a valid token that opens `session_id`, else `AccessRefused`."""
        if not token:
            raise AccessRefused("missing_token", "a room token is required")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=self._algorithms,
                leeway=LEEWAY_S,
                options={"require": ["exp", "sub", "room"]},
            )
        except jwt.ExpiredSignatureError:
            raise AccessRefused("expired", "the room token has expired") from None
        except jwt.InvalidSignatureError:
            raise AccessRefused("bad_signature", "the room token is not signed by us") from None
        except jwt.InvalidAlgorithmError:
            raise AccessRefused(
                "bad_signature", "the room token's algorithm is not accepted"
            ) from None
        except jwt.ImmatureSignatureError:
            raise AccessRefused("not_yet_valid", "the room token is not valid yet") from None
        except jwt.InvalidTokenError as exc:
            raise AccessRefused("malformed", f"the room token is not valid: {exc}") from None
        grant = _grant_from_claims(claims)
        if not grant.opens(session_id):
            raise AccessRefused("wrong_room", "the room token does not open this room", status=403)
        return grant


def _grant_from_claims(claims: dict[str, Any]) -> RoomGrant:
    sub, room, grants = claims.get("sub"), claims.get("room"), claims.get("grants") or {}
    if not isinstance(sub, str) or not sub:
        raise AccessRefused("malformed", "the room token's sub must be a non-empty string")
    if not isinstance(room, str) or not room or "*" in room[:-1]:
        raise AccessRefused("malformed", "the room token's room must be an id or a prefix*")
    if not isinstance(grants, dict):
        raise AccessRefused("malformed", "the room token's grants must be an object")
    flags = {}
    for name in ("text", "audio", "admin"):
        value = grants.get(name, name != "admin")
        if not isinstance(value, bool):
            raise AccessRefused("malformed", f"the grant {name!r} must be true or false")
        flags[name] = value
    duration = grants.get("max_duration_s")
    if duration is not None and (
        isinstance(duration, bool) or not isinstance(duration, int | float) or duration <= 0
    ):
        raise AccessRefused("malformed", "the grant 'max_duration_s' must be a positive number")
    return RoomGrant(
        sub=sub,
        room=room,
        expires_at=float(claims["exp"]),
        max_duration_s=float(duration) if duration is not None else None,
        **flags,
    )


def _load_public_key(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError(f"not a PEM public key: {exc}") from None


def mint_token(
    key: str,
    *,
    sub: str,
    room: str,
    ttl_s: float,
    algorithm: str = "HS256",
    text: bool = True,
    audio: bool = True,
    max_duration_s: float | None = None,
    admin: bool = False,
    now: float | None = None,
) -> str:
    """A room token signed with `key` (a shared secret, or a PEM private key)."""
    issued = time.time() if now is None else now
    grants: dict[str, Any] = {"text": text, "audio": audio}
    if max_duration_s is not None:
        grants["max_duration_s"] = max_duration_s
    if admin:
        grants["admin"] = True
    claims = {
        "sub": sub,
        "room": room,
        "iat": int(issued),
        "exp": int(issued + ttl_s),
        "grants": grants,
    }
    return jwt.encode(claims, key, algorithm=algorithm)


def token_from_handshake(subprotocols: Iterable[str], query_token: str | None) -> str | None:
    """The token a client offered: a `Sec-WebSocket-Protocol` entry, else `?token=`."""
    for entry in subprotocols:
        if entry.startswith(TOKEN_SUBPROTOCOL_PREFIX):
            return entry[len(TOKEN_SUBPROTOCOL_PREFIX) :]
    return query_token or None
