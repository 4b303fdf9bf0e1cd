"""Bare echo servers for the substrate floor: `python benchmarks/_echo_servers.py raw|quart`.

- raw:   trio-websocket `serve_websocket`, one handler task per connection that echoes
         each message back;
- quart: a Quart-Trio app with one WebSocket route that echoes, served by Hypercorn's
         trio worker (the stack voiceagent runs on), permessage-deflate refused.

Both listen on 127.0.0.1 only and run until terminated.
"""

from __future__ import annotations

import argparse
import sys

import trio

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from _common import raise_nofile


async def serve_raw(port: int) -> None:
    from trio_websocket import ConnectionClosed, WebSocketRequest, serve_websocket

    async def handler(request: WebSocketRequest) -> None:
        ws = await request.accept()
        try:
            while True:
                await ws.send_message(await ws.get_message())
        except ConnectionClosed:
            pass

    await serve_websocket(handler, "127.0.0.1", port, ssl_context=None)


async def serve_quart(port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from quart import websocket
    from quart_trio import QuartTrio

    from voiceagent.transport import refuse_permessage_deflate

    refuse_permessage_deflate()
    app = QuartTrio("echo")

    @app.websocket("/ws/<session_id>")
    async def echo(session_id: str) -> None:
        await websocket.accept()
        while True:
            await websocket.send(await websocket.receive())

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.backlog = 4096
    config.accesslog = None
    config.errorlog = None
    await serve(app, config)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["raw", "quart"])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_nofile()
    trio.run(serve_raw if args.kind == "raw" else serve_quart, args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
