"""The load side of active_rooms: one simulated browser per room (benchmarks only).

Per room, three tasks in one nursery (a child of the load process's session nursery):
- mic: a frame of silence every `frame_ms` (spec; 20 ms = 960 bytes by default, the
  telephony framing; the demo page sends 100 ms), in real time;
- reader: every server message; binary audio is checked for the emulator's send stamp
  (see `_stamped_cartesia.py`) and counted; audio after `audio_interrupted` and before
  the next `audio_start` is STALE (the protocol promises there is none);
- turns: every `turn_every_s` (random phase) a typed question; every
  `interrupt_every`-th turn is interrupted `interrupt_after_s` after its first audio.

Recorded inside the script's window: chunk latency (receive - stamp, wall clock),
turn latency (question sent -> first audio byte), interrupt -> `audio_interrupted`
latency twice (read by the room's reader, and arrived at its socket by the kernel's
clock: the difference is the load process waiting for its core), stale bytes, error
codes, turns and interrupts.
"""

from __future__ import annotations

import random
import struct
import time
from collections import Counter
from typing import Any

import orjson
import trio
from _wsclient import OP_BINARY, LeanWebSocket, WsClosed, WsProtocolError, client_frame

STAMP_MAGIC = b"\x7fVA-STMP"  # 8 bytes unlikely in a tone's PCM
QUESTION = orjson.dumps({"type": "text", "text": "What is the baggage allowance?"}).decode()
INTERRUPT = orjson.dumps({"type": "interrupt"}).decode()


class RoomStats:
    def __init__(self) -> None:
        self.chunk_lat: list[float] = []
        self.turn_lat: list[float] = []
        self.turn_over_answer: list[bool] = []  # per turn_lat: asked while an answer played
        self.silence_lat: list[float] = []
        self.silence_socket_lat: list[float] = []  # the same, to the kernel's arrival time
        self.stale_bytes = 0
        self.audio_bytes = 0
        self.turns = 0
        self.turns_with_audio = 0
        self.interrupts = 0
        self.interrupts_acked = 0
        self.server_turn_ms: list[float] = []
        # The same turns' model and voice stages (the server's `metrics` events).
        self.server_llm_ms: list[float] = []
        self.server_tts_ms: list[float] = []
        # Every measured turn by (room, response id): [client first audio (ms), turn
        # number in its room, the server's turn, model and voice stages (ms; NaN until
        # its `metrics` event comes, when the answer ends)]. The client's clock minus the
        # server's is what lies outside the server's turn clock: the question's way in
        # and the first audio's way out.
        self.turn_records: dict[tuple[int, str], list[float]] = {}
        self.codes: Counter[str] = Counter()


def make_room_session(spec: dict[str, Any], rec, sockets: list[LeanWebSocket]):
    """Factory used by `_loadgen.worker_main` for mode "rooms"."""
    stats = RoomStats()
    period = spec.get("frame_ms", 20) / 1000
    frame = client_frame(OP_BINARY, bytes(round(period * 48_000)))
    turn_every = spec.get("turn_every_s", 4.0)
    interrupt_every = spec.get("interrupt_every", 2)
    interrupt_after = spec.get("interrupt_after_s", 0.4)
    first_audio_timeout = spec.get("first_audio_timeout_s", 10.0)

    async def session(ws: LeanWebSocket, index: int) -> None:
        sockets.append(ws)
        now = trio.current_time
        first_audio = trio.Event()
        # turn_at: when the pending question was sent; cleared at the first audio byte
        # that follows the question's own audio_start (older answers may still stream).
        state = {"stale": False, "interrupt_at": None, "turn_at": None, "answer_started": False,
                 "speaking": False, "over_answer": False, "interrupt_wall": 0.0,
                 "turn_response": None, "turn_n": 0}  # fmt: skip

        async def mic() -> None:
            t = now() + random.random() * period
            while True:
                await trio.sleep_until(t)
                await ws.send_frame(frame)
                rec.frames_sent += 1
                t += period
                if now() > t + period:
                    rec.late_resyncs += 1
                    t = now()

        async def reader() -> None:
            nonlocal first_audio
            while True:
                op, payload = await ws.receive()
                arrived_wall = time.time()
                arrived = now()
                rec.frames_received += 1
                in_window = rec.in_window(arrived)
                if op == OP_BINARY:
                    if state["stale"]:
                        stats.stale_bytes += len(payload)
                        continue
                    stats.audio_bytes += len(payload)
                    at = payload.find(STAMP_MAGIC)
                    if at >= 0 and in_window and at + 16 <= len(payload):
                        (stamp,) = struct.unpack_from("<d", payload, at + 8)
                        stats.chunk_lat.append(arrived_wall - stamp)
                    if state["answer_started"] and not first_audio.is_set():
                        first_audio.set()
                        if state["turn_at"] is not None and in_window:
                            stats.turn_lat.append(arrived - state["turn_at"])
                            stats.turn_over_answer.append(state["over_answer"])
                            if state["turn_response"] is not None:
                                nan = float("nan")
                                stats.turn_records[index, state["turn_response"]] = [
                                    (arrived - state["turn_at"]) * 1000, state["turn_n"],
                                    nan, nan, nan]  # fmt: skip
                    continue
                event = orjson.loads(payload)
                kind = event.get("type")
                if kind == "audio_start":
                    state["stale"] = False
                    state["speaking"] = True
                    state["answer_started"] = state["turn_at"] is not None
                    if state["answer_started"]:
                        state["turn_response"] = event.get("response_id")
                elif kind == "audio_end":
                    state["speaking"] = False
                elif kind == "audio_interrupted":
                    state["stale"] = True
                    state["speaking"] = False
                    if state["interrupt_at"] is not None:
                        if in_window:
                            stats.silence_lat.append(arrived - state["interrupt_at"])
                            stats.silence_socket_lat.append(
                                ws.arrived_wall - state["interrupt_wall"]
                            )
                        stats.interrupts_acked += 1
                        state["interrupt_at"] = None
                elif kind == "metrics" and event.get("turn_ms") is not None:
                    record = stats.turn_records.get((index, event.get("response_id")))
                    if record is not None:  # its answer may end after the window
                        stages = (event["turn_ms"], event.get("llm_ms"), event.get("tts_ms"))
                        record[2:] = [float("nan") if v is None else v for v in stages]
                    if in_window:
                        stats.server_turn_ms.append(event["turn_ms"])
                        for stage, into in (("llm_ms", stats.server_llm_ms),
                                            ("tts_ms", stats.server_tts_ms)):  # fmt: skip
                            value = event.get(stage)
                            into.append(float("nan") if value is None else value)
                elif kind == "error":
                    stats.codes[str(event.get("code"))] += 1

        async def turns() -> None:
            nonlocal first_audio
            await trio.sleep(random.random() * turn_every)
            t = now()
            n = 0
            while True:
                n += 1
                state["turn_n"] = n
                first_audio = trio.Event()
                state["answer_started"] = False
                state["turn_at"] = now()
                state["over_answer"] = state["speaking"]  # the last answer still plays
                await ws.send_text(QUESTION)
                stats.turns += 1
                with trio.move_on_after(first_audio_timeout):
                    await first_audio.wait()
                if first_audio.is_set():
                    stats.turns_with_audio += 1
                    if interrupt_every and n % interrupt_every == 0:
                        await trio.sleep(interrupt_after)
                        state["interrupt_at"] = now()
                        state["interrupt_wall"] = time.time()
                        await ws.send_text(INTERRUPT)
                        stats.interrupts += 1
                t += turn_every
                await trio.sleep_until(max(t, now()))

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(mic)
                nursery.start_soon(turns)
                await reader()
        except (WsClosed, WsProtocolError, trio.BrokenResourceError, OSError) as exc:
            rec.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1

    def summary() -> dict[str, Any]:
        import numpy as np

        return {
            "chunk_lat_s": np.asarray(stats.chunk_lat),
            "turn_lat_s": np.asarray(stats.turn_lat),
            "turn_over_answer": np.asarray(stats.turn_over_answer, dtype=bool),
            "silence_lat_s": np.asarray(stats.silence_lat),
            "silence_socket_lat_s": np.asarray(stats.silence_socket_lat),
            "server_turn_ms": np.asarray(stats.server_turn_ms, dtype=float),
            "server_llm_ms": np.asarray(stats.server_llm_ms, dtype=float),
            "server_tts_ms": np.asarray(stats.server_tts_ms, dtype=float),
            "turn_records_ms": np.asarray(list(stats.turn_records.values()), dtype=float).reshape(
                -1, 5
            ),
            "stale_bytes": stats.stale_bytes,
            "audio_bytes": stats.audio_bytes,
            "turns": stats.turns,
            "turns_with_audio": stats.turns_with_audio,
            "interrupts": stats.interrupts,
            "interrupts_acked": stats.interrupts_acked,
            "error_codes": dict(stats.codes),
        }

    session.summary = summary  # type: ignore[attr-defined]
    return session
