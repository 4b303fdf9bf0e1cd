"""A well-behaved room that asks for long replies and times the gaps in its audio.

Run as `python -m tests.fuzz.neighbour ADDRESS SECONDS`: listens until its standard input
is closed (or SECONDS at most), then prints one JSON line with the audio frames received
and the longest gap between two frames of one reply (ms). Its own process, so the gaps
are the server's, not a busy test process's.
"""

from __future__ import annotations

import sys
import time

import orjson
import trio
from trio_websocket import open_websocket_url

figures = {"frames": 0, "longest_gap_ms": 0.0, "replies": 0}


async def main(address: str, seconds: float) -> None:
    try:
        async with trio.open_nursery() as nursery:

            async def stop_when_told() -> None:
                await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop_when_told)
            nursery.cancel_scope.deadline = trio.current_time() + seconds
            await listen(address)
    finally:
        print(orjson.dumps(figures).decode(), flush=True)


async def listen(address: str) -> None:
    async with open_websocket_url(f"ws://{address}/ws/neighbour") as ws:
        while True:
            await ws.send_message(orjson.dumps({"type": "text", "text": "a story"}).decode())
            last: float | None = None
            while True:
                message = await ws.get_message()
                now = time.monotonic()
                if isinstance(message, bytes):
                    figures["frames"] += 1
                    if last is not None:
                        gap = (now - last) * 1000
                        figures["longest_gap_ms"] = max(figures["longest_gap_ms"], gap)
                    last = now
                elif orjson.loads(message)["type"] == "audio_end":
                    figures["replies"] += 1
                    break


if __name__ == "__main__":
    trio.run(main, sys.argv[1], float(sys.argv[2]))
