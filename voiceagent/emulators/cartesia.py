"""A local Cartesia TTS WebSocket server (`python -m voiceagent.emulators cartesia`).

It speaks the protocol of `wss://api.cartesia.ai/tts/websocket` (docs/architecture.md,
"Cartesia TTS WebSocket"): the documented auth forms (`api_key` / `access_token` query,
`X-API-Key`, Bearer) and version forms (`cartesia_version` query, `Cartesia-Version`
header); requests validated by the same sans-I/O code the client uses
(`voiceagent.tts.cartesia.protocol`), with errors in Cartesia's shape; many contexts per
socket; `chunk`, `timestamps`, `phoneme_timestamps`, `flush_done` and `done`; `cancel`
stops a context for good.

Modules, from the wire inwards:

- `cartesia` (this one): the handshake (route, credentials, version, refusal faults),
  `serve_cartesia` and the CLI;
- `cartesia_connection`: the thin Trio shell of one socket (reader, context workers
  with pacing, the single writer, the idle watch);
- `cartesia_server`: the sans-I/O protocol state of one socket (which context a request
  belongs to, what is refused, when text is voiced, the messages of a rendering);
- `cartesia_config` (what can be configured, the bounded log) and `cartesia_audio`
  (the voices and the wire encodings).

Faults: refused handshakes (429), slow handshakes (answered after a delay: to cancel a
client mid-handshake), an error after N chunks, closing idle sockets, and silent
sockets (accepted, never answered). Everything is bounded: contexts per socket,
queued inputs per context, queued outbound messages, the request log. A handshake that
fails is answered with an HTTP error and a JSON body; a socket's failure ends that
socket only. Cancelling `serve_cartesia` closes the listener and every socket.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import orjson
import trio

from voiceagent.emulators.cartesia_audio import LocalSpeechVoice, ToneVoice, VoiceSource
from voiceagent.emulators.cartesia_config import CartesiaEmulatorConfig, EmulatorLog
from voiceagent.emulators.cartesia_connection import CartesiaEmulatorConnection
from voiceagent.provider_socket import HandshakeFailed, SocketClosed, Upgrade, read_upgrade

__all__ = [
    "PATH",
    "CartesiaEmulatorConfig",
    "CartesiaEmulatorConnection",
    "EmulatorLog",
    "main",
    "serve_cartesia",
]

log = logging.getLogger(__name__)

PATH = "/tts/websocket"
MAX_MESSAGE_BYTES = 1 << 20  # a generation request is a few KB of JSON
HANDSHAKE_TIMEOUT_S = 10.0  # for the upgrade request only, never the socket's life


@dataclass
class _Counters:
    handshakes: int = 0
    sockets: int = 0


async def serve_cartesia(
    host: str,
    port: int,
    config: CartesiaEmulatorConfig,
    *,
    log_to: EmulatorLog | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; `await nursery.start(serve_cartesia, ...)` gives the port."""
    voice: VoiceSource = LocalSpeechVoice() if config.voice == "local" else ToneVoice()
    counters = _Counters()
    record = log_to if log_to is not None else EmulatorLog(limit=1000)

    async def handler(stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as handshake:
                request = await read_upgrade(stream, max_message_bytes=MAX_MESSAGE_BYTES)
            if handshake.cancelled_caught:
                await stream.aclose()  # no upgrade request in time
                return
            await _handle(request, config, voice, counters, record)
        except (HandshakeFailed, SocketClosed, trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.aclose_forcefully(stream)  # a client that went away

    listeners = await trio.open_tcp_listeners(port, host=host)
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])


def _first(values: dict[str, list[str]], key: str) -> str | None:
    found = values.get(key)
    return found[0] if found else None


async def _handle(
    request: Upgrade,
    config: CartesiaEmulatorConfig,
    voice: VoiceSource,
    counters: _Counters,
    record: EmulatorLog,
) -> None:
    url = urlsplit(request.path)
    query = parse_qs(url.query)
    headers = {k.decode().lower(): v.decode() for k, v in request.headers}
    record.add(record.handshakes, {"path": request.path, "headers": headers})
    counters.handshakes += 1
    delayed = config.delayed_handshakes < 0 or counters.handshakes <= config.delayed_handshakes
    if config.handshake_delay_ms and delayed:
        await trio.sleep(config.handshake_delay_ms / 1000)
    if url.path.rstrip("/") != PATH:
        await _refuse(request, record, 404, "Not found", f"no route {url.path}")
        return
    if config.reject_handshakes < 0 or counters.handshakes <= config.reject_handshakes:
        await _refuse(
            request, record, config.reject_status, "Too many requests", "concurrency limit reached"
        )
        return
    bearer = headers.get("authorization", "")
    keys = [
        _first(query, "api_key"),
        headers.get("x-api-key"),
        bearer[7:] if bearer.lower().startswith("bearer ") else None,
    ]
    # Access tokens are short-lived and minted by Cartesia; the emulator cannot verify
    # one, so any non-empty token is accepted.
    token = _first(query, "access_token")
    ok = any(k and (config.api_key is None or k == config.api_key) for k in keys) or bool(token)
    if not ok:
        await _refuse(request, record, 401, "Unauthorized", "missing or invalid credentials")
        return
    # The query wins over the header when both are present.
    version = _first(query, "cartesia_version") or headers.get("cartesia-version")
    if not version:
        await _refuse(request, record, 400, "Bad request", "missing Cartesia-Version")
        return
    ws = await request.accept()
    counters.sockets += 1
    record.accepted += 1
    silent = config.silent_connections < 0 or counters.sockets <= config.silent_connections
    connection = CartesiaEmulatorConnection(
        ws, config, voice, record, counters.sockets, silent=silent
    )
    try:
        await connection.run()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await ws.aclose()


async def _refuse(
    request: Upgrade, record: EmulatorLog, status: int, title: str, message: str
) -> None:
    record.refused += 1
    body = orjson.dumps({"title": title, "message": message, "status_code": status})
    await request.reject(status, headers=[(b"content-type", b"application/json")], body=body)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m voiceagent.emulators cartesia",
        description="Local Cartesia TTS WebSocket server (ws://HOST:PORT/tts/websocket).",
    )
    d = CartesiaEmulatorConfig()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    p.add_argument("--api-key", default=None, help="accepted key (default: any)")
    p.add_argument("--realtime-factor", type=float, default=d.realtime_factor)
    p.add_argument("--first-chunk-ms", type=float, default=d.first_chunk_latency_ms)
    p.add_argument("--chunk-ms", type=int, default=d.chunk_ms)
    p.add_argument("--voice", choices=("tone", "local"), default=d.voice)
    p.add_argument("--reject-handshakes", type=int, default=0, help="refuse the first N (-1 all)")
    p.add_argument("--reject-status", type=int, default=d.reject_status)
    p.add_argument("--error-after-chunks", type=int, default=None)
    p.add_argument("--idle-close-s", type=float, default=d.idle_close_s)
    p.add_argument("--silent-connections", type=int, default=0, help="first N never answer")
    p.add_argument("--handshake-delay-ms", type=float, default=0.0,
                   help="answer handshakes this late (a slow provider)")  # fmt: skip
    p.add_argument("--delayed-handshakes", type=int, default=-1,
                   help="delay only the first N handshakes (-1: all)")  # fmt: skip
    return p


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    config = CartesiaEmulatorConfig(
        api_key=args.api_key,
        realtime_factor=args.realtime_factor,
        first_chunk_latency_ms=args.first_chunk_ms,
        chunk_ms=args.chunk_ms,
        voice=args.voice,
        reject_handshakes=args.reject_handshakes,
        reject_status=args.reject_status,
        error_after_chunks=args.error_after_chunks,
        idle_close_s=args.idle_close_s or None,
        silent_connections=args.silent_connections,
        handshake_delay_ms=args.handshake_delay_ms,
        delayed_handshakes=args.delayed_handshakes,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_cartesia, args.host, args.port, config)
            print(f"cartesia emulator listening on ws://{args.host}:{port}{PATH}", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
