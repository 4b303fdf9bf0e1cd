"""`voiceagent serve`: run the server with Hypercorn's trio worker, programmatically."""

from __future__ import annotations

import argparse
import sys

import trio

from voiceagent.config import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="voiceagent", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the app (trio worker)")
    serve.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=8001, help="port (default 8001)")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"voiceagent: configuration error: {exc}", file=sys.stderr)
        return 2

    from hypercorn.trio import serve as hypercorn_serve

    from voiceagent.app import create_app
    from voiceagent.logs import setup_logging
    from voiceagent.transport import hypercorn_config

    setup_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    config = hypercorn_config(args.host, args.port, max_message_bytes=settings.ws_max_message_bytes)
    print(f"voiceagent: serving on http://{args.host}:{args.port}", file=sys.stderr)
    trio.run(hypercorn_serve, app, config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
