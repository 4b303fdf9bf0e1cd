"""`voiceagent serve`: run the server with Hypercorn's trio worker, programmatically.

`--workers N` runs N processes (one per core) and needs `VOICEAGENT_REDIS_URL`: the
workers then share the Redis registry. Without it, `--workers` above 1 exits 2: the
kernel spreads connections by TCP 4-tuple, so a reconnect with the same `session_id`
could land on another worker and two rooms with one id would live side by side (use
one process, or Redis, or one instance per port behind a proxy that hashes the room:
docs/deploy.md). Each worker binds its *own* listening socket
with SO_REUSEPORT, so the kernel spreads new connections evenly over them. Hypercorn's
own `--workers` shares one socket instead: Trio workers then take connections in the
order their event loops happen to wake, and measured here 200 connections arriving
10 ms apart landed 183 / 27 on two workers (`voiceagent serve --workers 2`: even).

SIGTERM or Ctrl-C stops it gracefully: every live room gets an `error` event
`server_shutting_down` and a close with 1001, then the process exits 0. A client that
has stopped reading gets no more than a second to take its last frames.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from voiceagent.access.token_command import add_token_command, run_token_command
from voiceagent.config import ENV_FILE_VARIABLE, ConfigError, Settings
from voiceagent.logs import log_event
from voiceagent.store.export_command import add_sessions_command, run_sessions_command

if TYPE_CHECKING:
    from voiceagent.session.registry import Registry

log = logging.getLogger("voiceagent.serve")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voiceagent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the app (trio worker)", description=__doc__)
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    serve.add_argument("--workers", type=int, default=1, help="processes, one per core (default 1)")
    serve.add_argument(
        "--env-file",
        metavar="PATH",
        help="read settings from this file instead of ./.env (same as VOICEAGENT_ENV_FILE); "
        "real environment variables still win",
    )
    add_token_command(commands)
    add_sessions_command(commands)
    args = parser.parse_args(argv)
    if args.command == "sessions":
        return run_sessions_command(args)
    if args.command == "token":
        try:
            settings = Settings.from_env()
        except ConfigError as exc:
            print(f"voiceagent: configuration error: {exc}", file=sys.stderr)
            return 2
        return run_token_command(args, settings.auth_secret)
    if args.workers < 1:
        parser.error("--workers must be at least 1")

    if args.env_file is not None:
        # Through the environment, so every worker process loads the same file.
        os.environ[ENV_FILE_VARIABLE] = os.path.abspath(args.env_file)
    try:
        settings = Settings.from_env()  # fail fast, naming the bad variable, before workers
    except ConfigError as exc:
        print(f"voiceagent: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1 and not settings.redis_url:
        print(
            f"voiceagent: --workers {args.workers} needs VOICEAGENT_REDIS_URL: without a"
            " shared registry a reconnect could land on another worker and open a second"
            " room with the same id. Set VOICEAGENT_REDIS_URL (docs/deploy.md) or run one"
            " worker.",
            file=sys.stderr,
        )
        return 2
    warning = exposure_warning(args.host, settings)
    if warning:
        print(f"voiceagent: WARNING: {warning}", file=sys.stderr)

    print(
        f"voiceagent: serving on http://{args.host}:{args.port} ({args.workers} worker(s))",
        file=sys.stderr,
    )
    if args.workers == 1:
        _serve(args.host, args.port, 1)
        return 0
    spawn = multiprocessing.get_context("spawn")
    workers = [
        spawn.Process(target=_serve, args=(args.host, args.port, args.workers), daemon=True)
        for _ in range(args.workers)
    ]
    # SIGTERM (a process manager's stop) ends the parent through `finally`, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    for worker in workers:
        worker.start()
    try:
        for worker in workers:
            worker.join()
    except KeyboardInterrupt:
        pass
    finally:
        for worker in workers:  # each worker shuts down gracefully on SIGTERM
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
    return 0


def exposure_warning(host: str, settings: Settings) -> str | None:
    """One warning when anyone who reaches a public address could spend provider keys."""
    has_keys = bool(settings.azure_api_key or settings.openai_api_key or settings.cartesia_api_key)
    loopback = host in ("localhost", "::1") or host.startswith("127.")
    if loopback or not has_keys or settings.auth_enabled:
        return None
    return (
        f"serving on {host} with provider keys and no room tokens: anyone who reaches this"
        " port can spend them. Set VOICEAGENT_AUTH_SECRET (docs/security.md)."
    )


def _serve(host: str, port: int, workers: int) -> None:
    """One worker process: the app on its own socket (SO_REUSEPORT when workers > 1)."""
    try:
        from hypercorn.trio import serve as hypercorn_serve

        from voiceagent.app import create_app
        from voiceagent.logs import setup_logging
        from voiceagent.transport import hypercorn_config

        settings = Settings.from_env()
        setup_logging(settings.log_level, settings.log_format)
        config = hypercorn_config(
            host, port, max_message_bytes=settings.transport_max_message_bytes()
        )
        config.workers = workers  # > 1 makes Hypercorn set SO_REUSEPORT on this socket
        # ... and `serve` warns that it starts no workers itself: we start them.
        warnings.filterwarnings("ignore", "The config `workers` has no affect")
        app = create_app(settings)
        registry = app.config["SERVICES"].registry
        trio.run(_serve_until_signalled, hypercorn_serve, app, config, registry)
    except KeyboardInterrupt:  # a Ctrl-C before the signal receiver was in place
        pass


async def _serve_until_signalled(
    serve: Callable[..., Awaitable[None]], app: Any, config: Any, registry: Registry
) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully.

    Every live session is told first (an `error` event, then close 1001) so clients
    can reconnect elsewhere, rather than losing the TCP connection mid-sentence when
    Hypercorn's grace period (`graceful_timeout`, 3 s) ends. The receiver is in place
    before start-up, so a signal that arrives while the app is still warming up waits
    its turn instead of breaking the lifespan start-up.
    """
    from voiceagent.close_codes import CloseCode
    from voiceagent.transport import transport_of

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

        async def first_signal() -> None:
            async for _ in signals:
                closed = registry.close_all(CloseCode.GOING_AWAY, "server shutting down")
                log_event(log, "shutting_down", sessions_closed=closed)
                # A client that stopped reading cannot hold the stop up for long.
                transport = transport_of(app)
                if transport is not None:
                    transport.stop_writes()
                return

        await serve(app, config, shutdown_trigger=first_signal)


if __name__ == "__main__":
    raise SystemExit(main())
