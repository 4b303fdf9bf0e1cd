"""Commands between instances over Redis pub/sub: replace, kick, mute, unmute, list.

Each instance subscribes to its own channel `P:to:<instance>` and to `P:all`. A
message is a JSON object with an `op`; one that carries `req` and `from` is a request,
answered by a `reply` with the same `req` on the asker's channel.

`ask()` publishes and waits for as many replies as PUBLISH says subscribers received
it (0: nobody holds that channel, so the instance is gone), at most `wait_s`; what
came by then is the answer. Pub/sub delivers at most once: a message sent while an
instance's subscription is down is lost. The registry's heartbeat makes up for a lost
`replace` (the old instance sees within a third of the TTL that its claim was taken);
a lost admin command shows as an unanswered request (admin.py: 504).

The subscriber reconnects with backoff (0.1 s doubling to 5 s) on its own. Handlers
run in the subscriber's task and must not wait; replies are sent in the background.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import trio

from voiceagent.fleet.link import BACKOFF_FIRST_S, BACKOFF_MAX_S, RedisLink
from voiceagent.logs import log_event

log = logging.getLogger("voiceagent.fleet")

Handler = Callable[[dict[str, Any]], object]


@dataclass(slots=True)
class _Pending:
    results: list[object] = field(default_factory=list)
    expected: int | None = None
    done: trio.Event = field(default_factory=trio.Event)

    def check(self) -> None:
        if self.expected is not None and len(self.results) >= self.expected:
            self.done.set()


class Control:
    def __init__(self, link: RedisLink, prefix: str, instance: str, handler: Handler) -> None:
        self._link = link
        self._prefix = prefix
        self.instance = instance
        self._handler = handler
        self.all_channel = f"{prefix}:all"
        self.subscribed = False
        self._pending: dict[str, _Pending] = {}

    def channel_of(self, instance: str) -> str:
        return f"{self._prefix}:to:{instance}"

    async def send(self, instance: str, message: dict[str, Any]) -> int:
        """Publish `message` to one instance; how many subscribers got it."""
        data = orjson.dumps(message)
        channel = self.channel_of(instance)
        return int(await self._link.call("publish", lambda client: client.publish(channel, data)))

    async def ask(
        self, channel: str, message: dict[str, Any], wait_s: float
    ) -> tuple[int, list[object]]:
        """Publish a request on `channel`: (how many received it, the replies that came
        within `wait_s`). Raises `RedisUnavailable` when it could not be published."""
        req = uuid.uuid4().hex
        pending = self._pending[req] = _Pending()
        data = orjson.dumps({**message, "req": req, "from": self.instance})
        try:
            receivers = await self._link.call(
                "publish", lambda client: client.publish(channel, data)
            )
            pending.expected = int(receivers)
            pending.check()
            with trio.move_on_after(wait_s):
                await pending.done.wait()
            return pending.expected, pending.results
        finally:
            del self._pending[req]

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        from coredis.retry import NoRetryPolicy

        channels = [self.channel_of(self.instance), self.all_channel]
        backoff = BACKOFF_FIRST_S
        started = False
        while True:
            client = self._link.client
            try:
                if client is None:
                    raise RuntimeError("redis client not started")
                pubsub = client.pubsub(
                    channels=channels, ignore_subscribe_messages=True, retry_policy=NoRetryPolicy()
                )
                async with pubsub:
                    self.subscribed = True
                    backoff = BACKOFF_FIRST_S
                    log_event(log, "redis_subscribed", channels=len(channels))
                    if not started:
                        started = True
                        task_status.started()
                    async for message in pubsub:
                        self._dispatch(message.get("data"))
            except Exception as exc:  # an ExceptionGroup from coredis' task group, too
                log.debug("subscription lost: %r", exc)
            self.subscribed = False
            if not started:
                started = True
                task_status.started()
            await trio.sleep(backoff)
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    def _dispatch(self, data: object) -> None:
        try:
            message = orjson.loads(data) if isinstance(data, str | bytes) else None
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("op"), str):
            log_event(log, "control_message_ignored", logging.WARNING)
            return
        if message["op"] == "reply":
            pending = self._pending.get(str(message.get("req")))
            if pending is not None:
                pending.results.append(message.get("result"))
                pending.check()
            return
        try:
            result = self._handler(message)
        except Exception:
            log.exception("control message %s failed", message["op"])
            result = None
        asker, req = message.get("from"), message.get("req")
        if isinstance(asker, str) and isinstance(req, str):
            reply = orjson.dumps({"op": "reply", "req": req, "result": result})
            channel = self.channel_of(asker)
            self._link.post("reply", lambda client: client.publish(channel, reply))
