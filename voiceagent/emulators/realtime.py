"""A local Azure OpenAI / OpenAI Realtime server that speaks the protocol faithfully.

Endpoints (127.0.0.1 only):

- ``/openai/v1/realtime?model=DEPLOYMENT`` and ``/v1/realtime?model=MODEL``: GA events;
  with the ``OpenAI-Beta: realtime=v1`` header: beta events.
- ``/openai/realtime?api-version=...&deployment=...``: the Azure preview (beta events).

Auth: ``api-key`` header or query parameter, or ``Authorization: Bearer``; otherwise
HTTP 401. A GA URL that carries ``api-version`` also gets 401, like the service.

Per connection: ``session.created``, then every client event is validated
(`realtime_schema`) and answered the way the service answers it. Server VAD runs on
appended audio (`realtime_vad.EnergyVad`); committed audio is transcribed by a
pluggable transcriber; replies come from a pluggable brain (`realtime_parts`). Audio
replies are a synthetic tone, not speech.

Modules, from the wire inwards:

- `realtime` (this one): handshake (routes, auth, rejection faults) and the CLI;
- `realtime_connection`: the thin Trio shell of one session (tasks, pacing, sending);
- `realtime_server`: the sans-I/O server state machine (client events in, server events
  and effects out), with `realtime_schema` / `realtime_checks` (client event validation),
  `realtime_session` (session config), `realtime_items` (conversation),
  `realtime_input` (input audio buffer), `realtime_vad` (turn detection) and
  `realtime_responses` (a response's phases and events);
- `realtime_generator`: produces a response's output from the brain's reply;
- `realtime_config` (what can be configured), `realtime_parts` (brains, transcribers,
  synthetic voice).

Latency knobs: `first_token_s` (time to first delta), `tokens_per_s` (text pacing, 0 =
unpaced) and `audio_rtf` (audio pacing: each chunk is due its own duration times this
factor after the one before, so 1.0 = as fast as it plays, 0.25 = four times faster,
0 = unpaced). Deltas keep one schedule per response, like a remote service's clock: a
late wake-up on a loaded machine is caught up, not added to every delta after it.

Faults: handshake rejection (e.g. 429), an ``error`` event on the n-th response,
dropping the TCP connection mid-response, stalling mid-response.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from urllib.parse import parse_qs, urlsplit

import orjson
import trio

from voiceagent.emulators.realtime_config import EmulatorConfig, Faults
from voiceagent.emulators.realtime_connection import RealtimeEmulatorConnection, Shared
from voiceagent.emulators.realtime_parts import CannedBrain, CannedTranscriber
from voiceagent.provider_socket import HandshakeFailed, SocketClosed, Upgrade, read_upgrade

__all__ = [
    "EmulatorConfig",
    "Faults",
    "RealtimeEmulatorConnection",
    "main",
    "route",
    "serve_realtime",
]

log = logging.getLogger(__name__)

GA_PATHS = ("/openai/v1/realtime", "/v1/realtime")
HANDSHAKE_TIMEOUT_S = 10.0  # for the upgrade request only, never the socket's life
PREVIEW_PATH = "/openai/realtime"


# ---------------------------------------------------------------------------- handshake


def route(request: Upgrade, config: EmulatorConfig) -> tuple[int, str, str, str]:
    """Decide a handshake: (HTTP status, error message, flavour, model). 101 = accept."""
    parts = urlsplit(request.path)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    path = parts.path.rstrip("/")
    key = request.header("api-key") or query.get("api-key")
    bearer = request.header("authorization") or ""
    if not key and bearer.lower().startswith("bearer "):
        key = bearer[7:].strip()
    if not key or (config.api_keys and key not in config.api_keys):
        return 401, "Access denied due to invalid subscription key or wrong API endpoint.", "", ""
    if path in GA_PATHS:
        if "api-version" in query:
            return 401, "The GA endpoint does not take an api-version.", "", ""
        model = query.get("model") or query.get("call_id")
        if not model:
            return 400, "Missing required query parameter: 'model'.", "", ""
        beta = (request.header("openai-beta") or "").strip() == "realtime=v1"
        return 101, "", "beta" if beta else "ga", model
    if path == PREVIEW_PATH:
        if "api-version" not in query:
            return 404, "Resource not found (the preview path needs api-version).", "", ""
        model = query.get("deployment") or query.get("model")
        if not model:
            return 400, "Missing required query parameter: 'deployment'.", "", ""
        return 101, "", "beta", model
    return 404, f"No realtime endpoint at {parts.path!r}.", "", ""


async def _serve_stream(stream: trio.SocketStream, shared: Shared) -> None:
    """Handle one TCP connection; network errors of a dying client are not failures."""
    try:
        await _serve_connection(stream, shared)
    except* (trio.BrokenResourceError, trio.ClosedResourceError, SocketClosed, HandshakeFailed):
        pass
    except* Exception as group:
        log.error("realtime emulator connection failed", exc_info=group)


async def _serve_connection(stream: trio.SocketStream, shared: Shared) -> None:
    """Handshake (route, auth, faults), then run the session until either side closes."""
    config = shared.config
    with trio.move_on_after(HANDSHAKE_TIMEOUT_S) as handshake:
        request = await read_upgrade(stream, max_message_bytes=config.max_message_bytes)
    if handshake.cancelled_caught:
        await stream.aclose()
        return
    shared.handshakes += 1
    faults = config.faults
    status, message, flavor, model = route(request, config)
    if (
        status == 101
        and faults.reject_status is not None
        and (faults.reject_first == 0 or shared.handshakes <= faults.reject_first)
    ):
        status, message = faults.reject_status, "Rate limit exceeded (emulated fault)."
    if status != 101:
        body = orjson.dumps({"error": {"code": str(status), "message": message}})
        await request.reject(status, headers=[(b"content-type", b"application/json")], body=body)
        return
    ws = await request.accept()
    connection = RealtimeEmulatorConnection(ws, stream, flavor, model, shared)
    try:
        await connection.run()
    finally:
        with trio.move_on_after(2) as closing:
            closing.shield = True
            await ws.aclose()


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the emulator serves loopback only, not {host!r}")


async def serve_realtime(
    host: str = "127.0.0.1",
    port: int = 0,
    config: EmulatorConfig | None = None,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the emulator until cancelled; `task_status.started(port)` gives the bound port.

    Use with ``port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)``.
    Cancelling it closes the listener and every connection. With ``use_recognizer`` the
    recogniser is warmed up in the background from the start (connections are accepted
    at once) and its worker processes are stopped when the server stops.
    """
    _check_loopback(host)
    shared = Shared(config or EmulatorConfig())
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]

    async def handler(stream: trio.SocketStream) -> None:
        await _serve_stream(stream, shared)

    try:
        async with trio.open_nursery() as nursery:
            if shared.recognizer is not None:
                nursery.start_soon(shared.recognizer.warm_up)
            await nursery.start(trio.serve_listeners, handler, listeners)
            task_status.started(bound)
    finally:
        if shared.recognizer is not None:
            with trio.move_on_after(5) as closing:
                closing.shield = True
                await shared.recognizer.aclose()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m voiceagent.emulators realtime",
        description="Local Azure OpenAI / OpenAI Realtime emulator (GA and preview flavours). "
        "Audio replies are a synthetic tone, not speech.",
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)"
    )
    p.add_argument("--port", type=int, default=8765, help="port (0 = any free port)")
    p.add_argument(
        "--api-key", action="append", default=[], help="accepted key (repeatable; default: any)"
    )
    p.add_argument(
        "--canned", metavar="TEXT", help="always reply TEXT instead of the offline brain"
    )
    p.add_argument("--transcript", default="hello", help="what the default transcriber hears")
    p.add_argument(
        "--stt",
        action="store_true",
        help="transcribe with voiceagent.speech.stt if present (warmed up at start)",
    )
    p.add_argument("--ttft", type=float, default=0.0, help="seconds before the first delta")
    p.add_argument(
        "--token-rate", type=float, default=0.0, help="text deltas per second (0 = unpaced)"
    )
    p.add_argument(
        "--audio-rtf",
        type=float,
        default=1.0,
        help="audio pacing: seconds waited per second of audio (1 = real time, 0 = unpaced)",
    )
    p.add_argument(
        "--reject-status", type=int, help="reject handshakes with this HTTP status (e.g. 429)"
    )
    p.add_argument(
        "--reject-first", type=int, default=0, help="...only the first N handshakes (0 = all)"
    )
    p.add_argument("--error-on-response", type=int, help="send an error event on the N-th response")
    p.add_argument("--drop-on-response", type=int, help="drop the socket during the N-th response")
    p.add_argument("--stall-on-response", type=int, help="stall forever during the N-th response")
    p.add_argument("--after-deltas", type=int, default=2, help="deltas sent before a drop/stall")
    p.add_argument("-v", "--verbose", action="store_true", help="log every frame")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        _check_loopback(args.host)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2

    def trace(direction: str, text: str) -> None:
        log.debug("%s %s", direction, text[:300])

    config = EmulatorConfig(
        api_keys=tuple(args.api_key),
        first_token_s=args.ttft,
        tokens_per_s=args.token_rate,
        audio_rtf=args.audio_rtf,
        brain_factory=(lambda: CannedBrain(args.canned)) if args.canned else None,
        transcriber=None if args.stt else CannedTranscriber(args.transcript),
        use_recognizer=args.stt,
        faults=Faults(
            reject_status=args.reject_status,
            reject_first=args.reject_first,
            error_on_response=args.error_on_response,
            drop_on_response=args.drop_on_response,
            stall_on_response=args.stall_on_response,
            after_deltas=args.after_deltas,
        ),
        trace=trace if args.verbose else None,
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve_realtime, args.host, args.port, config)
            base = f"ws://{args.host}:{port}"
            print(f"realtime emulator on {base}", flush=True)
            print(
                f"  GA:      {base}/openai/v1/realtime?model=DEPLOYMENT  (api-key header)",
                flush=True,
            )
            print(
                f"  preview: {base}/openai/realtime?api-version=2025-04-01-preview&deployment=D",
                flush=True,
            )
            print(f"  OpenAI:  {base}/v1/realtime?model=gpt-realtime  (Bearer)", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    return 0
