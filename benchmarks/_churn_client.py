"""The load side of room_churn.py: rooms opened and left mid-answer, in batches.

Driven over stdin/stdout by room_churn.py. It reads one line per batch, `N` (run N
room cycles, `--concurrency` at a time), and answers one JSON line when the batch is
done: {"done": n, "ok": n, "failed": n, "interrupted": n, "errors": {...}}. An empty
line or EOF ends it.

One cycle: connect to /ws/churn-<i>, send a typed question, wait for the answer's
`audio_start` and one audio frame, then leave (close frame, socket dropped): the
server's session, its Realtime connection and its Cartesia stream are cancelled
mid-answer. Every `--interrupt-every`-th cycle sends `interrupt` first and waits for
`audio_interrupted` (the voice is cut mid-stream), then leaves. Every step is bounded
(`--cycle-timeout`); a cycle that times out counts as failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import pin, raise_nofile
from _wsclient import OP_TEXT, LeanWebSocket

QUESTION = json.dumps({"type": "text", "text": "What is the baggage allowance?"})
INTERRUPT = json.dumps({"type": "interrupt"})


async def read_until(ws: LeanWebSocket, kind: str, *, audio: bool = False) -> None:
    """Read until an event of `kind` (then, with `audio`, one binary frame) arrives."""
    seen = False
    while True:
        opcode, payload = await ws.receive()
        if opcode == OP_TEXT:
            if not seen and json.loads(payload).get("type") == kind:
                seen = True
                if not audio:
                    return
        elif seen:
            return


async def one_cycle(args: argparse.Namespace, index: int, tally: Counter[str]) -> None:
    with trio.move_on_after(args.cycle_timeout) as scope:
        try:
            ws = await LeanWebSocket.connect(args.host, args.port, f"/ws/churn-{index}")
        except OSError as exc:
            tally["failed"] += 1
            tally[f"error:{type(exc).__name__}"] += 1
            return
        try:
            await read_until(ws, "session_started")
            await ws.send_text(QUESTION)
            await read_until(ws, "audio_start", audio=True)
            if args.interrupt_every and index % args.interrupt_every == 0:
                await ws.send_text(INTERRUPT)
                await read_until(ws, "audio_interrupted")
                tally["interrupted"] += 1
            tally["ok"] += 1
        except Exception as exc:  # the server closed or broke: count it, go on
            tally["failed"] += 1
            tally[f"error:{type(exc).__name__}"] += 1
        finally:
            with trio.CancelScope(shield=True):
                await ws.aclose()
    if scope.cancelled_caught:
        tally["failed"] += 1
        tally["error:timeout"] += 1


async def batch(args: argparse.Namespace, start: int, n: int) -> dict[str, object]:
    tally: Counter[str] = Counter()
    indices = iter(range(start, start + n))  # shared: each index is taken once

    async def worker() -> None:
        for index in indices:
            await one_cycle(args, index, tally)

    async with trio.open_nursery() as nursery:
        for _ in range(min(args.concurrency, n)):
            nursery.start_soon(worker)
    errors = {k.split(":", 1)[1]: v for k, v in tally.items() if k.startswith("error:")}
    return {"done": n, "ok": tally["ok"], "failed": tally["failed"],
            "interrupted": tally["interrupted"], "errors": errors}  # fmt: skip


async def main(args: argparse.Namespace) -> None:
    done = 0
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline)
        if not line.strip():
            return
        n = int(line)
        result = await batch(args, done, n)
        done += n
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=25)
    p.add_argument("--interrupt-every", type=int, default=4)
    p.add_argument("--cycle-timeout", type=float, default=20.0)
    p.add_argument("--cpus", default="")
    parsed = p.parse_args()
    raise_nofile()
    pin([int(c) for c in parsed.cpus.split(",") if c.strip()] or None)
    trio.run(main, parsed)
