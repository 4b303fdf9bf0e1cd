"""The operator's surface: live sessions, kick, mute; and who may read /metrics.

Off unless `VOICEAGENT_ADMIN_TOKEN` is set: then `/admin/...` and `/metrics` require it
as a bearer token (`Authorization: Bearer <token>`; Prometheus sends one with
`authorization: {credentials: ...}` in its scrape config), and `/admin/...` answers 404
without it set, so an unconfigured server exposes nothing. `/healthz` stays public and
says nothing sensitive.

Routes:
- `GET /admin/sessions`: every live session (id, user, agent, age, model, cost so far);
- `POST /admin/sessions/<id>/kick` (`{"reason": "..."}` optional): the room gets an
  `error` event `kicked` with the reason, then closes with 4000;
- `POST /admin/sessions/<id>/mute` and `/unmute`: the server drops (or takes again) the
  room's microphone audio; the client is told with a `muted` event;
- `POST /admin/drain`: take this instance out of rotation for a deploy (drain.py):
  `/healthz` turns 503, new rooms are refused, talking rooms finish their response,
  then every room is told to reconnect and closed with 1001. Answers 202 at once with
  the drain's state (a repeat answers the same); poll `/healthz` (`sessions`) to see
  the rooms leave. The process keeps running, refusing rooms, until it is stopped.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from quart import Quart, Response, jsonify, request

from voiceagent.drain import Drain
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


def add_admin_routes(app: Quart, services: Services, token: str, drain: Drain) -> None:
    registry = services.registry
    admin = require_admin(token)

    @app.post("/admin/drain")
    @admin
    async def start_drain() -> Any:
        if not drain.draining:
            drain.begin()  # /healthz and the handshake say so from this instant
            app.nursery.start_soon(drain.run, registry)  # type: ignore[attr-defined]
        body = jsonify(draining=True, sessions=len(registry), grace_s=drain.grace_s)
        return body, 202

    def not_found(session_id: str) -> tuple[Response, int]:
        return jsonify(error="not_found", message=f"no live session {session_id!r}"), 404

    @app.get("/admin/sessions")
    @admin
    async def list_sessions() -> Response:
        return jsonify(sessions=[session.describe() for session in registry.sessions()])

    @app.post("/admin/sessions/<session_id>/kick")
    @admin
    async def kick(session_id: str) -> Any:
        session = registry.get(session_id)
        if session is None:
            return not_found(session_id)
        body = await request.get_json(silent=True)
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip():
            reason = "ended by the operator"
        session.kick(reason.strip()[:MAX_REASON_CHARS])
        return jsonify(kicked=session_id)

    @app.post("/admin/sessions/<session_id>/mute")
    @admin
    async def mute(session_id: str) -> Any:
        session = registry.get(session_id)
        if session is None:
            return not_found(session_id)
        session.set_muted(True)
        return jsonify(muted=True, session_id=session_id)

    @app.post("/admin/sessions/<session_id>/unmute")
    @admin
    async def unmute(session_id: str) -> Any:
        session = registry.get(session_id)
        if session is None:
            return not_found(session_id)
        session.set_muted(False)
        return jsonify(muted=False, session_id=session_id)
