"""The handshake gate: who may open which room, decided before a session exists.

Order of checks (each refusal is an `AccessRefused` with an HTTP status and a reason,
counted in `voiceagent_handshakes_refused_total{reason}`):

1. the page's `Origin` (403 `origin_not_allowed`; see origins.py);
2. the room token when authentication is on (401/403; see tokens.py); with it off
   every client gets `OPEN_GRANT`;
3. room ownership: a live room may be replaced only by the same `sub` or an admin
   grant (403 `room_owned`);
4. concurrent rooms per client address and per user (429), and in all
   (`VOICEAGENT_MAX_ROOMS`, 503 `too_many_rooms`): slots are taken here and given back
   by `Admission.release()` when the session ends, whatever way it ends. A reconnect
   that replaces its owner's live room is the same room, not another: it may take one
   slot past the limit (the old connection gives its slot back as it closes).

`admit` awaits only the ownership lookup and the slot counter: with the in-process
registry and counter neither waits; with the shared ones (Redis) each is one round
trip, and either may refuse with 503 `registry_unavailable` when Redis is down and
`VOICEAGENT_REDIS_FAILURE=closed`. A refused or cancelled `admit` holds no slot (a
counter cancelled mid-acquire gives back its own slot).

Loopback peers are not limited per address: they are this machine (the operator's own
tools, a local proxy whose forwarded addresses are believed once listed in
`VOICEAGENT_TRUSTED_PROXIES`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import Counter

from voiceagent import metrics
from voiceagent.access.limits import LocalSlots, SlotCounter
from voiceagent.access.origins import Network, OriginPolicy, client_address, parse_networks
from voiceagent.access.tokens import (
    APP_SUBPROTOCOL,
    OPEN_GRANT,
    AccessRefused,
    RoomGrant,
    TokenVerifier,
    token_from_handshake,
)

if TYPE_CHECKING:
    from voiceagent.config import Settings

REFUSED = Counter(
    "voiceagent_handshakes_refused",
    "WebSocket handshakes refused by access control, by reason",
    ["reason"],
    registry=metrics.REGISTRY,
)


OwnerOf = Callable[[str], Awaitable[RoomGrant | None]]


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the gate reads of a WebSocket handshake."""

    session_id: str
    origin: str | None
    host: str | None
    peer: str | None
    forwarded_for: str | None
    subprotocols: Sequence[str]
    query_token: str | None


@dataclass(slots=True)
class Admission:
    """A handshake that may proceed: the grant, and the slots it holds."""

    grant: RoomGrant
    address: str
    subprotocol: str | None  # what to answer in Sec-WebSocket-Protocol
    _release: list[Callable[[], None]] = field(default_factory=list)

    def release(self) -> None:
        """Give back the slots (idempotent)."""
        while self._release:
            self._release.pop()()


class Gate:
    def __init__(
        self,
        *,
        verifier: TokenVerifier | None = None,
        origins: OriginPolicy | None = None,
        trusted_proxies: Sequence[Network] = (),
        max_sessions_per_ip: int = 0,
        max_sessions_per_user: int = 0,
        max_rooms: int = 0,
        slots: SlotCounter | None = None,
    ) -> None:
        self.verifier = verifier
        self._origins = origins or OriginPolicy()
        self._trusted = tuple(trusted_proxies)
        self._per_ip = max_sessions_per_ip
        self._per_user = max_sessions_per_user
        self._max_rooms = max_rooms
        self._slots = slots or LocalSlots()

    @property
    def auth_enabled(self) -> bool:
        return self.verifier is not None

    async def admit(self, handshake: Handshake, owner_of: OwnerOf) -> Admission:
        """Admit `handshake` or raise `AccessRefused`; `owner_of(id)` is a live room's grant."""
        try:
            return await self._admit(handshake, owner_of)
        except AccessRefused as refusal:
            REFUSED.labels(refusal.reason).inc()
            raise

    async def _admit(self, handshake: Handshake, owner_of: OwnerOf) -> Admission:
        if not self._origins.allows(handshake.origin, handshake.host):
            raise AccessRefused(
                "origin_not_allowed", "this page may not open rooms here", status=403
            )
        grant = OPEN_GRANT
        owner: RoomGrant | None = None
        if self.verifier is not None:
            token = token_from_handshake(handshake.subprotocols, handshake.query_token)
            grant = self.verifier.verify(token, handshake.session_id)
            owner = await owner_of(handshake.session_id)
            if owner is not None and owner.sub != grant.sub and not grant.admin:
                raise AccessRefused("room_owned", "this room belongs to another user", status=403)
        # Replacing a live room (a reconnect) keeps the count of rooms: the old
        # connection gives its slot back as it closes, so the new one may hold one more
        # for that moment (its owner's, and the total's).
        spare_user = int(owner is not None and owner.sub == grant.sub)
        spare_room = int(owner is not None)
        address = client_address(handshake.peer, handshake.forwarded_for, self._trusted)
        answer = APP_SUBPROTOCOL if APP_SUBPROTOCOL in handshake.subprotocols else None
        admission = Admission(grant, address, answer)
        wanted: list[tuple[str, int, AccessRefused]] = []
        if self._per_ip and not _is_loopback(address):
            refusal = AccessRefused(
                "too_many_sessions_ip", "too many rooms from this address", status=429
            )
            wanted.append((f"ip:{address}", self._per_ip, refusal))
        if self._per_user and grant.sub:
            refusal = AccessRefused(
                "too_many_sessions_user", "too many rooms for this user", status=429
            )
            wanted.append((f"sub:{grant.sub}", self._per_user + spare_user, refusal))
        if self._max_rooms:
            refusal = AccessRefused("too_many_rooms", "the service is full", status=503)
            wanted.append(("rooms", self._max_rooms + spare_room, refusal))
        try:
            for key, limit, refusal in wanted:
                if not await self._slots.acquire(key, limit):
                    raise refusal
                admission._release.append(partial(self._slots.release, key))
        except BaseException:  # refused, unavailable or cancelled: give back what was taken
            admission.release()
            raise
        return admission


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def read_public_key(value: str) -> str:
    """`VOICEAGENT_AUTH_PUBLIC_KEY` holds the PEM text itself, or the path of a PEM file."""
    if "-----BEGIN" in value:
        return value.replace("\\n", "\n")  # a one-line .env value with escaped newlines
    try:
        return Path(value).expanduser().read_text()
    except OSError as exc:
        raise ValueError(f"cannot read the public key file {value!r}: {exc.strerror}") from None


def gate_from_settings(settings: Settings, *, slots: SlotCounter | None = None) -> Gate:
    """The gate `settings` describe (raises ValueError on a bad key or list)."""
    verifier = None
    if settings.auth_secret and settings.auth_public_key:
        raise ValueError("set VOICEAGENT_AUTH_SECRET or VOICEAGENT_AUTH_PUBLIC_KEY, not both")
    if settings.auth_secret:
        verifier = TokenVerifier(secret=settings.auth_secret)
    elif settings.auth_public_key:
        verifier = TokenVerifier(public_key=read_public_key(settings.auth_public_key))
    return Gate(
        verifier=verifier,
        origins=OriginPolicy(split_list(settings.allowed_origins)),
        trusted_proxies=parse_networks(split_list(settings.trusted_proxies)),
        max_sessions_per_ip=settings.max_sessions_per_ip,
        max_sessions_per_user=settings.max_sessions_per_user,
        max_rooms=settings.max_rooms,
        slots=slots,
    )


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
