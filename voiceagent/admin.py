"""The operator's surface: live and stored sessions, kick, mute; who may read /metrics.

With `VOICEAGENT_ADMIN_TOKEN` set, `/admin/...` and `/metrics` require it as a bearer
token (`Authorization: Bearer <token>`; Prometheus sends one with
`authorization: {credentials: ...}` in its scrape config). Without it, kick and mute
do not exist, and the read routes exist only when the conversation store is on, and
then answer only clients on a loopback address (the peer address of the connection;
anyone else gets 404): an unconfigured server exposes nothing to the network. Behind
a reverse proxy on the same host every client looks local: set the token there.
`/healthz` stays public and says nothing sensitive.

Routes (with `VOICEAGENT_REDIS_URL`, the live ones work from any instance: a command
goes to the instance that holds the room; 503 `registry_unavailable` when it cannot be
reached):
- `GET /admin/sessions`: every live session (id, user, agent, age, model, cost so
  far; with Redis also its `instance`, and `"partial": true` when an instance did not
  answer), and with a store `stored`: rooms from the store, newest first, filtered by
  `?since=` (Unix seconds or ISO 8601), `?sub=` and `?limit=` (default 100);
- `GET /admin/sessions/<id>`: the room's report (docs/session-report.schema.json);
- `POST /admin/sessions/<id>/kick` (`{"reason": "..."}` optional): the room gets an
  `error` event `kicked` with the reason, then closes with 4000;
- `POST /admin/sessions/<id>/mute` and `/unmute`: the server drops (or takes again) the
  room's microphone audio; the client is told with a `muted` event.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from quart import Quart, Response, jsonify, request

from voiceagent.session.registry import Command, RegistryUnavailable
from voiceagent.session.services import Services
from voiceagent.store.report import list_sessions, session_report

MAX_REASON_CHARS = 200
REPORT_FLUSH_WAIT_S = 0.5

Handler = Callable[..., Awaitable[Any]]


def bearer_ok(header: str | None, token: str) -> bool:
    """Constant-time check of `Authorization: Bearer <token>`."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer ") :].encode(), token.encode())


def _denied() -> Response:
    response = jsonify(error="unauthorized", message="a valid admin bearer token is required")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer realm="voiceagent"'
    return response


def require_admin(token: str) -> Callable[[Handler], Handler]:
    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            if not bearer_ok(request.headers.get("Authorization"), token):
                return _denied()
            return await handler(*args, **kwargs)

        return guarded

    return decorate


def loopback_only(handler: Handler) -> Handler:
    """Answer clients on a loopback address only; 404 for anyone else."""

    @wraps(handler)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            local = ipaddress.ip_address(request.remote_addr or "").is_loopback
        except ValueError:
            local = False
        if not local:
            return jsonify(error="not_found", message="not found"), 404
        return await handler(*args, **kwargs)

    return guarded


def parse_since(value: str | None) -> float | None:
    """`?since=`: Unix seconds or an ISO 8601 time (UTC unless it says otherwise)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def add_admin_routes(app: Quart, services: Services, token: str) -> None:
    registry = services.registry
    store = services.store
    if not token and store is None:
        return  # nothing to read, nobody to let in
    read = require_admin(token) if token else loopback_only

    @app.get("/admin/sessions")
    @read
    async def list_all() -> Any:
        live = await registry.describe_all()
        if store is None:
            return jsonify(live)
        try:
            since = parse_since(request.args.get("since"))
            limit = int(request.args.get("limit", "100"))
        except ValueError:
            message = "since must be Unix seconds or ISO 8601; limit a whole number"
            return jsonify(error="bad_request", message=message), 400
        sub = request.args.get("sub") or None
        stored = await store.read(
            lambda: list_sessions(store.backend, since=since, sub=sub, limit=limit)
        )
        return jsonify(**live, stored=stored)

    if store is not None:

        @app.get("/admin/sessions/<session_id>")
        @read
        async def report(session_id: str) -> Any:
            await store.flush(REPORT_FLUSH_WAIT_S)  # what the room said a moment ago
            found = await store.read(session_report, store.backend, session_id)
            if found is None:
                return jsonify(error="not_found", message=f"no session {session_id!r}"), 404
            return jsonify(found)

    if not token:
        return
    admin = require_admin(token)

    def error(status: int, code: str, message: str) -> Response:
        response = jsonify(error=code, message=message)
        response.status_code = status
        return response

    async def command(session_id: str, name: Command, reason: str = "") -> Response | None:
        """Run `name` wherever the room lives; an error response, or None when done."""
        try:
            found = await registry.command(session_id, name, reason)
        except RegistryUnavailable as exc:
            return error(503, "registry_unavailable", str(exc))
        if not found:
            return error(404, "not_found", f"no live session {session_id!r}")
        return None

    @app.post("/admin/sessions/<session_id>/kick")
    @admin
    async def kick(session_id: str) -> Any:
        body = await request.get_json(silent=True)
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            reason = "ended by the operator"
        failed = await command(session_id, "kick", reason.strip()[:MAX_REASON_CHARS])
        return failed or jsonify(kicked=session_id)

    @app.post("/admin/sessions/<session_id>/mute")
    @admin
    async def mute(session_id: str) -> Any:
        return await command(session_id, "mute") or jsonify(muted=True, session_id=session_id)

    @app.post("/admin/sessions/<session_id>/unmute")
    @admin
    async def unmute(session_id: str) -> Any:
        failed = await command(session_id, "unmute")
        return failed or jsonify(muted=False, session_id=session_id)
