"""`RedisRegistry`: the `Registry` shared by instances through Redis.

Each room has a presence record `P:room:<id>` = {instance, token, sub} with a TTL
(`VOICEAGENT_PRESENCE_TTL_S`). The rules:

- claim (at the handshake, before accept): one atomic script writes this instance's
  record and returns the previous holder. If another instance held the room it gets a
  `replace` message and closes its session with 1012; the new session starts at once.
  A `replace` lost in transit is made up by that instance's next heartbeat, which
  finds its token gone and closes the room with 1012 then.
- heartbeat (every TTL / 3): one script per 500 rooms extends this instance's
  records, writes again those Redis lost (restart, outage longer than the TTL), and
  names those another instance took; then the slot holders are extended the same way.
  A dead instance's rooms and slots expire within the TTL.
- release (when a session ends): deletes the record if this claim still holds it;
  sent in the background; if Redis is down then, the record expires.
- `owner_of` reads the record, so the gate's ownership rule holds across instances.
- admin commands go to the owning instance over pub/sub (control.py).

Redis down (or slower than `VOICEAGENT_REDIS_TIMEOUT_S`): live rooms are not
affected (nothing on the per-frame path touches Redis). New rooms follow
`VOICEAGENT_REDIS_FAILURE`: `open` admits them with local-only checks (their records
and slots are written by the first heartbeat once Redis answers again), `closed`
refuses them with 503 `registry_unavailable`. The link reconnects with backoff; its
return triggers a heartbeat at once.

Nothing here runs per frame: a room costs Redis work at open, at close, and on the
heartbeat (docs/deploy.md counts it).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from voiceagent.access.tokens import AccessRefused, RoomGrant
from voiceagent.close_codes import CloseCode
from voiceagent.fleet import scripts
from voiceagent.fleet.control import Control
from voiceagent.fleet.link import RedisLink, RedisUnavailable
from voiceagent.fleet.slots import BATCH, UNAVAILABLE, RedisSlots
from voiceagent.logs import log_event
from voiceagent.session.registry import COMMANDS, Command, SessionRegistry, apply_command

if TYPE_CHECKING:
    from voiceagent.config import Settings
    from voiceagent.session.session import Session

log = logging.getLogger("voiceagent.fleet")

# How long an admin request waits for the owning instance(s) to answer.
ASK_WAIT_S = 2.0


class RedisRegistry:
    def __init__(
        self, local: SessionRegistry, settings: Settings, *, instance: str | None = None
    ) -> None:
        self.local = local
        self.instance = instance or new_instance_id()
        self._prefix = settings.redis_prefix
        self.ttl_s = settings.presence_ttl_s
        self._ttl_ms = int(settings.presence_ttl_s * 1000)
        self.fail_open = settings.redis_failure == "open"
        self.link = RedisLink(settings.redis_url, settings.redis_timeout_s)
        self.slots = RedisSlots(self.link, self._prefix, self._ttl_ms, fail_open=self.fail_open)
        self.control = Control(self.link, self._prefix, self.instance, self._on_message)
        self._tokens: dict[Session, str] = {}  # each session's claim
        self._beat = trio.Event()  # set: heartbeat now (Redis is back)
        self.link.on_up.append(self._beat_now)

    # -- this process's sessions (never waits) -----------------------------------------

    @property
    def with_model(self) -> int:
        return self.local.with_model

    def __len__(self) -> int:
        return len(self.local)

    def register(self, session: Session) -> None:
        self._tokens.setdefault(session, uuid.uuid4().hex)
        self.local.register(session)

    def unregister(self, session: Session) -> None:
        self.local.unregister(session)
        token = self._tokens.pop(session, None)
        if token is not None:
            key = self._room_key(session.session_id)
            self.link.post(
                "release", lambda client: scripts.run(client, scripts.RELEASE, [key], [token])
            )

    def get(self, session_id: str) -> Session | None:
        return self.local.get(session_id)

    def sessions(self) -> list[Session]:
        return self.local.sessions()

    def close_all(self, code: int, reason: str) -> int:
        return self.local.close_all(code, reason)

    def model_opened(self) -> None:
        self.local.model_opened()

    def model_closed(self) -> None:
        self.local.model_closed()

    # -- across instances --------------------------------------------------------------

    async def owner_of(self, session_id: str) -> RoomGrant | None:
        live = self.local.get(session_id)
        if live is not None:
            return live.grant
        key = self._room_key(session_id)
        try:
            instance, sub = await self.link.call(
                "owner", lambda client: client.hmget(key, ["instance", "sub"])
            )
        except RedisUnavailable:
            self._refuse_unless_open()
            return None  # local-only: this process has no such room
        if instance is None:
            return None
        return RoomGrant(sub=sub or "", room=session_id, expires_at=float("inf"))

    async def claim(self, session: Session) -> None:
        token = self._tokens[session] = uuid.uuid4().hex
        key = self._room_key(session.session_id)
        args: list[object] = [self.instance, token, session.grant.sub, self._ttl_ms]
        try:
            previous = await self.link.call(
                "claim", lambda client: scripts.run(client, scripts.CLAIM, [key], args)
            )
        except RedisUnavailable:
            if not self.fail_open:
                self.unregister(session)  # the claim may have landed before the timeout
                raise AccessRefused("registry_unavailable", UNAVAILABLE, status=503) from None
            return  # the heartbeat writes the record once Redis answers
        except BaseException:  # cancelled: the claim may have landed
            self.unregister(session)
            raise
        if previous and previous[0] != self.instance:
            message = {"op": "replace", "room": session.session_id, "token": previous[1]}
            try:
                await self.control.send(previous[0], message)
            except RedisUnavailable:
                pass  # that instance's heartbeat finds its claim gone

    async def describe_all(self) -> dict[str, Any]:
        try:
            asked, replies = await self.control.ask(
                self.control.all_channel, {"op": "list"}, ASK_WAIT_S
            )
        except RedisUnavailable:
            return {"sessions": self._describe_local(), "partial": True}
        sessions = [entry for reply in replies if isinstance(reply, list) for entry in reply]
        if len(replies) < asked:  # an instance did not answer in time
            return {"sessions": sessions, "partial": True}
        return {"sessions": sessions}

    async def command(self, session_id: str, command: Command, reason: str = "") -> bool:
        live = self.local.get(session_id)
        if live is not None:
            apply_command(live, command, reason)
            return True
        key = self._room_key(session_id)
        instance = await self.link.call("find", lambda client: client.hget(key, "instance"))
        if instance is None or instance == self.instance:
            return False
        message = {"op": command, "room": session_id, "reason": reason}
        channel = self.control.channel_of(instance)
        asked, replies = await self.control.ask(channel, message, ASK_WAIT_S)
        if asked and not replies:
            raise RedisUnavailable(f"instance {instance} did not answer")
        return any(reply is True for reply in replies)  # nobody listening: a dead instance

    def health(self) -> dict[str, Any]:
        return {
            "kind": "redis",
            "redis": "up" if self.link.up else "down",
            "since_s": round(time.monotonic() - self.link.since, 1),
            "subscribed": self.control.subscribed,
            "instance": self.instance,
            "failure_policy": "open" if self.fail_open else "closed",
        }

    @property
    def admitting(self) -> bool:
        return self.link.up or self.fail_open

    # -- background --------------------------------------------------------------------

    async def flush(self) -> None:
        """Send the releases still queued (a stop: at most one Redis timeout)."""
        await self.link.flush(self.link.timeout_s)

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The link, the subscriber and the heartbeat; started once the link tried once."""
        async with trio.open_nursery() as nursery:
            await nursery.start(self.link.serve)
            nursery.start_soon(self.control.serve)
            nursery.start_soon(self._heartbeat)
            task_status.started()

    async def _heartbeat(self) -> None:
        while True:
            with trio.move_on_after(self.ttl_s / 3):
                await self._beat.wait()
            self._beat = trio.Event()
            if self.link.up:
                try:
                    await self.refresh()
                except RedisUnavailable:
                    pass  # the link is down now; its return triggers a heartbeat
                except Exception:  # a bug must not stop the heartbeat for good
                    log.exception("heartbeat failed")

    async def refresh(self) -> None:
        """One heartbeat: extend (or write again) this instance's rooms and slots."""
        tokens = self._tokens
        # (a session closed as replaced has no token any more: nothing to refresh)
        live = [(s, tokens[s]) for s in self.local.sessions() if s in tokens]
        for start in range(0, len(live), BATCH):
            batch = live[start : start + BATCH]
            keys = [self._room_key(session.session_id) for session, _ in batch]
            args: list[object] = [self.instance, self._ttl_ms]
            for session, token in batch:
                args += [token, session.grant.sub]
            refresh = partial(_run_refresh, keys=keys, args=args)
            lost = await self.link.call("heartbeat", refresh)
            for position in lost:
                session, token = batch[int(position) - 1]
                self._close_replaced(session.session_id, token)
        await self.link.call("heartbeat", self.slots.refresh)

    async def _beat_now(self) -> None:
        self._beat.set()

    # -- messages from other instances ---------------------------------------------------

    def _on_message(self, message: dict[str, Any]) -> object:
        op, room = message["op"], message.get("room")
        if op == "list":
            return self._describe_local()
        if not isinstance(room, str):
            return None
        if op == "replace":
            self._close_replaced(room, message.get("token"))
            return None
        if op in COMMANDS:
            session = self.local.get(room)
            if session is None:
                return False
            reason = message.get("reason")
            apply_command(session, op, reason if isinstance(reason, str) else "")
            return True
        return None

    def _close_replaced(self, session_id: str, token: object) -> None:
        session = self.local.get(session_id)
        if session is not None and self._tokens.get(session) == token:
            log_event(log, "session_replaced_elsewhere", session_id=session_id)
            self._tokens.pop(session, None)  # its record is the new holder's now
            session.close(CloseCode.REPLACED, "replaced")

    def _describe_local(self) -> list[dict[str, object]]:
        return [{**s.describe(), "instance": self.instance} for s in self.local.sessions()]

    def _refuse_unless_open(self) -> None:
        if not self.fail_open:
            raise AccessRefused("registry_unavailable", UNAVAILABLE, status=503)

    def _room_key(self, session_id: str) -> str:
        return f"{self._prefix}:room:{session_id}"


def _run_refresh(client: Any, *, keys: list[str], args: list[object]) -> Any:
    return scripts.run(client, scripts.REFRESH, keys, args)


def new_instance_id() -> str:
    """host-pid-random: unique per process, readable in `redis-cli` and logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
