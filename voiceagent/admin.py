"""The operator's surface: live sessions, kick, mute; and who may read /metrics.

Off unless `VOICEAGENT_ADMIN_TOKEN` is set: then `/admin/...` and `/metrics` require it
as a bearer token (`Authorization: Bearer <token>`; Prometheus sends one with
`authorization: {credentials: ...}` in its scrape config), and `/admin/...` answers 404
without it set, so an unconfigured server exposes nothing. `/healthz` stays public and
says nothing sensitive.

Routes (with `VOICEAGENT_REDIS_URL`, each works from any instance: the command goes to
the instance that holds the room; 503 `registry_unavailable` when it cannot be reached):
- `GET /admin/sessions`: every live session (id, user, agent, age, model, cost so far;
  with Redis also its `instance`, and `"partial": true` when an instance did not answer);
- `POST /admin/sessions/<id>/kick` (`{"reason": "..."}` optional): the room gets an
  `error` event `kicked` with the reason, then closes with 4000;
- `POST /admin/sessions/<id>/mute` and `/unmute`: the server drops (or takes again) the
  room's microphone audio; the client is told with a `muted` event.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from quart import Quart, Response, jsonify, request

from voiceagent.session.registry import Command, RegistryUnavailable
from voiceagent.session.services import Services

MAX_REASON_CHARS = 200

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


def add_admin_routes(app: Quart, services: Services, token: str) -> None:
    admin = require_admin(token)

    def error(status: int, code: str, message: str) -> Response:
        response = jsonify(error=code, message=message)
        response.status_code = status
        return response

    @app.get("/admin/sessions")
    @admin
    async def list_sessions() -> Response:
        return jsonify(await services.registry.describe_all())

    async def command(session_id: str, name: Command, reason: str = "") -> Response | None:
        """Run `name` wherever the room lives; an error response, or None when done."""
        try:
            found = await services.registry.command(session_id, name, reason)
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
