"""The Quart-Trio app: the demo page, the session WebSocket, health and metrics.

Serve it with `hypercorn -k trio voiceagent:app`. The `-k trio` worker is required:
Quart-Trio runs on Trio, and every session is a Trio nursery; Hypercorn's default
asyncio worker cannot run it.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from pathlib import Path
from typing import Any

import trio
from quart import Response, jsonify, request, send_from_directory, websocket
from quart.routing import QuartMap
from quart.sessions import NullSession, SessionInterface
from quart_trio import QuartTrio

from voiceagent import cycle_breakers, metrics
from voiceagent.access.gate import Handshake, gate_from_settings
from voiceagent.access.tokens import AccessRefused, mint_token
from voiceagent.admin import add_admin_routes, bearer_ok
from voiceagent.capacity import Capacity, watch_accept_errors
from voiceagent.config import Settings
from voiceagent.drain import RETRY_AFTER_S, Drain
from voiceagent.gc_policy import GcSettings, run_gc_policy
from voiceagent.logs import setup_logging
from voiceagent.protocol import valid_session_id
from voiceagent.quart_websocket import DirectWebsocketConnection
from voiceagent.session.registry import Registry, SessionRegistry
from voiceagent.session.services import Services
from voiceagent.session.session import Session
from voiceagent.transport import TransportSettings, attach

log = logging.getLogger("voiceagent.app")

# How long a stopping server waits for the store to write what is queued.
STORE_CLOSE_TIMEOUT_S = 10.0

STATIC_DIR = Path(os.environ.get("VOICEAGENT_STATIC_DIR", Path(__file__).parent.parent / "static"))


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> QuartTrio:
    """Build the app. Providers come from `settings` unless `services` is given.

    Building is cheap: no model is loaded and nothing connects until the app serves
    (engines warm up in the background at startup) and a session needs them.
    """
    if services is None:
        from voiceagent.providers import build_services

        services = build_services(settings or Settings.from_env())
    settings = services.settings
    registry = use_shared_registry(services)
    cycle_breakers.install()  # closed rooms leave no cycles (docs/memory.md)
    app = _App(__name__, static_folder=str(STATIC_DIR), static_url_path="/static")
    transport = attach(
        app,
        TransportSettings(
            write_timeout_s=settings.ws_write_timeout_s,
            max_message_bytes=settings.transport_max_message_bytes(),
        ),
    )
    capacity = Capacity.from_setting(settings.ws_max_connections)
    gate = gate_from_settings(settings, slots=getattr(registry, "slots", None))
    app.config["GATE"] = gate
    drain = Drain(settings.drain_grace_s, on_begin=transport.stop_writes)
    app.config["DRAIN"] = drain  # cli.py drains on SIGTERM; admin.py on POST /admin/drain
    watch_accept_errors()
    app.asgi_websocket_class = DirectWebsocketConnection  # one hand-off less per frame
    app.config["SERVICES"] = services
    started = time.monotonic()
    background = trio.CancelScope()
    warmed = trio.Event()  # local engines loaded: the first reply will not wait for them
    gc_settings = GcSettings(
        settings.gc_freeze_interval_s,
        settings.gc_sweep_interval_s,
        settings.gc_sweep_max_rooms,
        settings.gc_young_threshold,
    )

    def open_rooms() -> int:
        return len(services.registry)

    @app.before_serving
    async def start_background() -> None:
        freeze_startup_heap()
        metrics.watch_gc_pauses()

        async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with background:
                async with trio.open_nursery() as nursery:
                    # The shared registry tries Redis once before the first handshake.
                    await nursery.start(registry.serve)
                    task_status.started()
                    nursery.start_soon(metrics.monitor_loop_lag)
                    nursery.start_soon(run_gc_policy, gc_settings, open_rooms)
                    nursery.start_soon(_warm_up, services, warmed)
                    if services.store is not None:
                        nursery.start_soon(services.store.run)  # the one writer
                    if services.recordings is not None:
                        nursery.start_soon(services.recordings.run)

        await app.nursery.start(run)

    @app.after_serving
    async def stop_background() -> None:
        if services.store is not None:
            # Every room has closed: write what they left queued (docs/store.md).
            await services.store.aclose(STORE_CLOSE_TIMEOUT_S)
        if services.recordings is not None:
            await services.recordings.aclose(STORE_CLOSE_TIMEOUT_S)
        await registry.flush()  # the last rooms' releases reach the shared registry
        background.cancel()

    @app.route("/")
    async def index() -> Response:
        return await send_from_directory(STATIC_DIR, "index.html")

    @app.route("/healthz")
    async def healthz() -> Response:
        """200 while serving (`ready` once warm); 503 while draining (drain.py)."""
        response = jsonify(
            status="ok",
            # not ready while draining, nor while new rooms would be refused for want
            # of Redis
            ready=warmed.is_set() and registry.admitting and not drain.draining,
            draining=drain.draining,
            sessions=len(registry),
            sessions_with_model=registry.with_model,
            uptime_s=round(time.monotonic() - started, 1),
            model=services.model.name if services.model else None,
            tts=services.tts.name if services.tts else None,
            connections=capacity.connections,
            max_connections=capacity.max_connections,
            full=capacity.connections >= capacity.max_connections,
            fd_limit=capacity.fd_limit,
            registry=registry.health(),
        )
        if drain.draining:
            response.status_code = 503
        return response

    @app.route("/metrics")
    async def metrics_route() -> Response:
        if settings.admin_token and not bearer_ok(
            request.headers.get("Authorization"), settings.admin_token
        ):
            return Response("admin bearer token required\n", 401, content_type="text/plain")
        body, content_type = metrics.render()
        return Response(body, content_type=content_type)

    add_admin_routes(app, services, settings.admin_token, drain)

    @app.route("/demo/token")
    async def demo_token() -> Response:
        # Off: 204, "connect without one". The demo page asks on every Connect, and a
        # 404 would print an error in the browser's console on every default run.
        if not settings.demo_tokens:
            return Response("", 204)
        # Development only (docs/security.md): anyone may fetch a token for any room.
        room = request.args.get("room", "")
        if not valid_session_id(room):
            return Response("room must be a valid session id\n", 400)
        token = mint_token(settings.auth_secret, sub=f"demo:{room}", room=room, ttl_s=600)
        return jsonify(token=token, expires_in=600)

    @app.websocket("/ws/<session_id>")
    async def session_socket(session_id: str) -> Response | None:
        if not valid_session_id(session_id):
            # Refused at the handshake: no WebSocket, no session.
            return Response("invalid session id\n", 400, content_type="text/plain")
        if drain.draining:  # another instance takes the room (drain.py)
            headers = {"Retry-After": str(RETRY_AFTER_S)}
            return Response("server draining\n", 503, headers, content_type="text/plain")
        try:
            admission = await gate.admit(_handshake(session_id), registry.owner_of)
        except AccessRefused as refusal:
            return _refusal(refusal)
        if not capacity.admit():  # at the cap: refused before a session exists
            admission.release()
            return Response(
                "server at capacity\n", 503, {"Retry-After": "5"}, content_type="text/plain"
            )
        session = Session(
            session_id,
            websocket._get_current_object(),
            services,
            grant=admission.grant,
            on_closing=admission.release,  # idempotent: the finally below releases again
        )
        try:
            # Take the room over wherever it lives (another instance closes it, 1012).
            await registry.claim(session)
            await websocket.accept(subprotocol=admission.subprotocol)
            await session.run()
        except AccessRefused as refusal:
            return _refusal(refusal)
        finally:
            registry.unregister(session)  # a no-op after run(); frees a claim never run
            admission.release()
            capacity.release()
        return None

    return app


def use_shared_registry(services: Services) -> Registry:
    """With `VOICEAGENT_REDIS_URL`, the in-process registry joins the shared one."""
    registry = services.registry
    if services.settings.redis_url and isinstance(registry, SessionRegistry):
        from voiceagent.fleet import RedisRegistry

        registry = services.registry = RedisRegistry(registry, services.settings)
    return registry


def _refusal(refusal: AccessRefused) -> Response:
    headers = {"Retry-After": "5"} if refusal.status == 503 else {}
    return Response(f"{refusal.message}\n", refusal.status, headers, content_type="text/plain")


def _handshake(session_id: str) -> Handshake:
    headers = websocket.headers
    return Handshake(
        session_id=session_id,
        origin=headers.get("Origin"),
        host=headers.get("Host"),
        peer=websocket.remote_addr,
        forwarded_for=headers.get("X-Forwarded-For"),
        subprotocols=websocket.requested_subprotocols,
        query_token=websocket.args.get("token"),
    )


class _ExactPaths(QuartMap):
    """URL rules that never redirect to a merged path: Werkzeug answers `/static//x`
    with a 308 whose `Location` it builds from the client's own `Host` header. Here
    such a path is simply not found."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["merge_slashes"] = False
        super().__init__(*args, **kwargs)


class _NoCookieSessions(SessionInterface):
    """Quart's sessions, off: nothing here stores state in a signed cookie.

    Quart's default makes a fresh (unusable, as no secret key is set) null session for
    every request and every WebSocket, which an open room then holds (~0.5 KB). The
    null session refuses every write, so one shared instance serves them all.
    """

    _shared = NullSession()

    async def open_session(self, app: Any, request: Any) -> None:
        return None

    async def make_null_session(self, app: Any) -> NullSession:
        return self._shared

    async def save_session(self, app: Any, session: Any, response: Any) -> None:
        return None


class _App(QuartTrio):
    url_map_class = _ExactPaths
    session_interface = _NoCookieSessions()


async def _warm_up(services: Services, warmed: trio.Event) -> None:
    """Load local engines before the first user needs them (a slow first reply is a bug)."""
    for provider in (services.model, services.tts):
        warm_up = getattr(provider, "warm_up", None)
        if warm_up is None:
            continue
        try:
            await warm_up()
        except Exception:
            log.exception("warm-up of %s failed", type(provider).__name__)
    if not len(services.registry):  # session objects must stay collectable
        freeze_startup_heap()
    warmed.set()  # also after a failed warm-up: sessions then load (or report) on first use


def freeze_startup_heap() -> None:
    """Keep the cyclic garbage collector off what start-up built.

    A full (generation 2) collection walks every tracked object while the event loop
    waits. Measured with 40 active rooms, such passes took 40-45 ms, almost all of it
    on modules, functions and tables loaded once at start-up: every session's audio
    stalled for it. Frozen objects are never scanned again; reference counting still
    frees them. Only called while no session exists, so sessions' cycles stay
    collectable.
    """
    gc.collect()
    gc.freeze()


def app_from_env() -> QuartTrio:
    """The app as `hypercorn -k trio voiceagent:app` serves it: settings from the env."""
    settings = Settings.from_env()
    setup_logging(settings.log_level, settings.log_format)
    return create_app(settings)
