"""CPU per received message of trio-websocket with 4 KB (its default) and 64 KB reads.

A 100 ms audio message is ~6.5 KB on the wire (base64 of 4,800 PCM bytes in JSON): an
append from the server to a Realtime provider, a chunk from a Cartesia provider to the
server. With 4 KB reads each one takes two socket reads and two parser passes. This
measures, in one process on one core, the CPU time of receiving `--messages` such
messages over `--connections` loopback sockets:
- "server": trio-websocket accepts and reads (the emulators' side), a minimal sender
  writes the frames;
- "client": trio-websocket connects and reads (the server's provider clients), a
  minimal server writes the frames.
The sender's share is the same for both buffer sizes, so the difference is the reader's.
Rounds alternate the two sizes (interleaved A/B); medians are reported.

Writes results/ws_receive_buffer.{json,md}. Takes ~20 s.
Example: python benchmarks/ws_receive_buffer.py --rounds 5
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import resource
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio
from trio_websocket import ConnectionClosed, connect_websocket, wrap_server_stream

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import md_table, write_results
from _wsclient import OP_TEXT, LeanWebSocket, client_frame

SIZES = {"4 KB (default)": 4096, "64 KB": 65_536}
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def audio_message() -> bytes:
    pcm = os.urandom(4800)  # 100 ms of 24 kHz PCM16
    event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    return json.dumps(event).encode()


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed_round(
    handler: Callable[[trio.SocketStream], Awaitable[None]],
    peer: Callable[[int], Awaitable[None]],
    connections: int,
    done: trio.Event | None = None,
) -> float:
    """Serve `handler` on loopback, run `connections` peers against it (and wait for
    `done`); the CPU seconds that took."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, handler, 0)
        port = listeners[0].socket.getsockname()[1]
        start = cpu_s()
        with trio.fail_after(60):
            async with trio.open_nursery() as peers:
                for _ in range(connections):
                    peers.start_soon(peer, port)
            if done is not None:
                await done.wait()
        took = cpu_s() - start
        nursery.cancel_scope.cancel()
    return took


def server_frame(payload: bytes) -> bytes:
    """An unmasked server text frame (payload under 64 KB)."""
    return bytes([0x81, 126]) + len(payload).to_bytes(2, "big") + payload


async def trio_websocket_server(buffer: int, connections: int, per_connection: int) -> float:
    """trio-websocket reads; LeanWebSocket clients send. CPU seconds of the whole round."""
    frame = client_frame(OP_TEXT, audio_message())
    received = 0
    all_received = trio.Event()
    expected = connections * per_connection

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal received
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream, receive_buffer_size=buffer)
            ws = await request.accept()
            try:
                while True:
                    await ws.get_message()
                    received += 1
                    if received == expected:
                        all_received.set()
            except ConnectionClosed:
                pass
            nursery.cancel_scope.cancel()

    async def sender(port: int) -> None:
        ws = await LeanWebSocket.connect("127.0.0.1", port, "/")
        for _ in range(per_connection):
            await ws.send_frame(frame)
            await trio.lowlevel.checkpoint()
        await ws.aclose()

    return await timed_round(handler, sender, connections, all_received)


async def trio_websocket_client(buffer: int, connections: int, per_connection: int) -> float:
    """A minimal server sends; trio-websocket clients read. CPU seconds of the round."""
    frame = server_frame(audio_message())

    async def handler(stream: trio.SocketStream) -> None:
        request = await stream.receive_some(65_536)
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key")
        )
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        await stream.send_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        for _ in range(per_connection):
            await stream.send_all(frame)
            await trio.lowlevel.checkpoint()
        await trio.sleep_forever()

    async def reader(port: int) -> None:
        async with trio.open_nursery() as own:
            ws = await connect_websocket(
                own, "127.0.0.1", port, "/", use_ssl=False, receive_buffer_size=buffer
            )
            for _ in range(per_connection):
                await ws.get_message()
            own.cancel_scope.cancel()

    return await timed_round(handler, reader, connections)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5, help="rounds per side and buffer size")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--messages", type=int, default=10_000, help="messages per round")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    per_connection = max(1, args.messages // args.connections)
    count = per_connection * args.connections
    sides = {"server": trio_websocket_server, "client": trio_websocket_client}
    us: dict[str, dict[str, list[float]]] = {s: {b: [] for b in SIZES} for s in sides}
    for _ in range(args.rounds):
        for side, run in sides.items():
            for label, size in SIZES.items():  # alternate: drift hits both sizes
                took = trio.run(run, size, args.connections, per_connection)
                us[side][label].append(took / count * 1e6)
    rows = []
    medians: dict[str, dict[str, float]] = {}
    for side in sides:
        medians[side] = {label: statistics.median(v) for label, v in us[side].items()}
        small, large = medians[side]["4 KB (default)"], medians[side]["64 KB"]
        rows.append([side, small, large, large / small])
    command = "python benchmarks/ws_receive_buffer.py " + " ".join(sys.argv[1:])
    markdown = "\n\n".join(
        [
            "# trio-websocket: CPU per received 6.5 KB message, 4 KB against 64 KB reads",
            f"`{command}` ({count:,} messages a round over {args.connections} sockets, "
            f"{args.rounds} interleaved rounds; sender and reader in one process)",
            md_table(
                ["trio-websocket as", "4 KB reads (us/msg)", "64 KB reads (us/msg)", "ratio"],
                rows,
            ),
        ]
    )
    write_results(
        "ws_receive_buffer",
        {"args": vars(args), "us_per_message": us, "medians_us": medians},
        markdown,
    )
    print(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
