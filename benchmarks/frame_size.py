"""Microphone frame size vs latency: barge-in and end of turn, per client framing.

One offline server (`hypercorn -k trio voiceagent:app`, VOICEAGENT_MODEL=offline,
VOICEAGENT_TTS=offline: the local VAD, recogniser, brain and voice), one room at a
time over a real socket. Each trial, for one framing F (ms):

1. The client speaks a synthesised question ("What is the baggage allowance?"), after
   300-500 ms of silence (random, so that the end of speech falls at any phase of the
   frames and of the server's 100 ms batches), in F ms binary frames on a real-time
   schedule: the frame holding samples [a, b) leaves when sample b would have been
   captured, as a microphone would send it. Silence
   follows, in the same framing, for as long as the trial lasts.
2. End of turn, from the end of the speech (the last sample above -45 dBFS, a
   property of the audio, the same for every framing): to `input_speech_stopped`
   (the server's VAD closed the turn), and to the first byte of the answer's audio.
3. Barge-in: 0.4 s after the answer's first audio the client starts speaking again,
   and its VAD fires at a random instant, not on a frame boundary (a browser's VAD
   runs on its own 10 ms windows: capture-worklet.js): `client_vad_speech_start` is
   sent then, as a message of its own, while the F ms frames keep flowing. Measured:
   that send to `audio_interrupted`, and the audio bytes of the cut response that
   arrive after it (stale: must be 0).

Framings are interleaved (round robin, trial by trial), so drift of a shared machine
falls on all of them alike; medians and p90 are quoted per framing.

    flock /work/wt/bench.lock python benchmarks/frame_size.py --frames 20,40,60,100 --trials 8

Writes benchmarks/results/frame_size.{json,md,png}. Bounded: --trials per framing
(at most 30), every wait has a deadline, and the whole run stops at --time-limit-s.
"""

from __future__ import annotations

import argparse
import random
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import trio
from trio_websocket import open_websocket_url

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import (  # noqa: E402
    RESULTS,
    free_port,
    loud_windows,
    md_table,
    pct,
    server_process,
    wait_app_ready,
    write_results,
)

from voiceagent.pcm import BYTES_PER_MS, SAMPLE_RATE  # noqa: E402

QUESTION = "What is the baggage allowance?"
BARGE_IN_AFTER_S = 0.4  # after the answer's first audio byte
TRIAL_TIMEOUT_S = 40.0
SPEECH_FLOOR_DBFS = -45.0


def speech_end_offset(pcm: bytes) -> float:
    """Seconds from the start of `pcm` to the end of its last 10 ms window of speech."""
    loud = loud_windows(pcm, SAMPLE_RATE, SPEECH_FLOOR_DBFS)
    return float((loud[-1] + 1) / 100)


class Trial:
    """One room, one framing: the question, its answer, a barge-in over the answer."""

    def __init__(self, url: str, frame_ms: int, lead: bytes, question: bytes) -> None:
        self.url = url
        self.frame_bytes = frame_ms * BYTES_PER_MS
        self.frame_ms = frame_ms
        self.lead = lead  # silence before the question
        self.question = question
        self.speech_end_at: float | None = None
        self.stopped_at: float | None = None
        self.first_audio_at: float | None = None
        self.vad_sent_at: float | None = None
        self.interrupted_at: float | None = None
        self.cut_response: str | None = None
        self.stale_bytes = 0
        self.frames_sent = 0
        self.errors: list[str] = []
        self._barge = trio.Event()  # start speaking over the answer
        self._vad_at = 0.0  # when the client VAD fires (set with `_speaking`)
        self._speaking = trio.Event()  # the barge-in speech has started

    async def run(self) -> dict[str, Any]:
        async with open_websocket_url(self.url) as ws:
            started = orjson.loads(await ws.get_message())
            assert started["type"] == "session_started", started
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._mic, ws)
                await self._read(ws, nursery)
                nursery.cancel_scope.cancel()
        return self.figures()

    async def _mic(self, ws: Any) -> None:
        """Frames on a real-time schedule: first the question, then silence; after
        `_barge`, the question again (the speech that barges in), then silence."""
        size = self.frame_bytes
        pending = self.lead + self.question
        t0 = trio.current_time()
        self.speech_end_at = t0 + (len(self.lead) + self._speech_end) / (SAMPLE_RATE * 2)
        sent = 0  # bytes of the stream so far
        barged = False
        while True:
            if len(pending) < size:
                # Silence, as long as the trial lasts, continuing the stream (not a short
                # frame): the frame grid stays where t0 put it, so the end of speech
                # falls at a random phase of it (the random lead).
                pending += bytes(size)
            if self._barge.is_set() and not barged:
                barged = True
                pending = self.question
                onset = t0 + sent / (SAMPLE_RATE * 2)
                # The client VAD fires some 30-130 ms into the speech, at any instant.
                self._vad_at = onset + 0.03 + random.random() * 0.1
                self._speaking.set()
            frame, pending = pending[:size], pending[size:]
            sent += len(frame)
            await trio.sleep_until(t0 + sent / (SAMPLE_RATE * 2))
            await ws.send_message(frame)
            self.frames_sent += 1

    async def _vad(self, ws: Any) -> None:
        await self._speaking.wait()
        await trio.sleep_until(self._vad_at)
        self.vad_sent_at = trio.current_time()
        await ws.send_message('{"type":"client_vad_speech_start"}')

    async def _read(self, ws: Any, nursery: trio.Nursery) -> None:
        owner: str | None = None
        with trio.fail_after(TRIAL_TIMEOUT_S):
            while True:
                message = await ws.get_message()
                now = trio.current_time()
                if isinstance(message, bytes):
                    if owner is not None and owner == self.cut_response:
                        self.stale_bytes += len(message)
                    elif self.first_audio_at is None and self.stopped_at is not None:
                        self.first_audio_at = now
                        nursery.start_soon(self._barge_in, ws, nursery)
                    continue
                event = orjson.loads(message)
                kind = event["type"]
                if kind == "audio_start":
                    owner = event["response_id"]
                elif kind == "input_speech_stopped" and self.stopped_at is None:
                    self.stopped_at = now
                elif kind == "audio_interrupted" and self.vad_sent_at is not None:
                    self.interrupted_at = now
                    self.cut_response = event["response_id"]
                    # Watch 0.5 s more for stale audio of the cut response, then stop.
                    with trio.move_on_after(0.5):
                        while True:
                            message = await ws.get_message()
                            if isinstance(message, bytes) and owner == self.cut_response:
                                self.stale_bytes += len(message)
                            elif isinstance(message, str):
                                follow = orjson.loads(message)
                                if follow["type"] == "audio_start":
                                    owner = follow["response_id"]
                    return
                elif kind == "error":
                    self.errors.append(str(event.get("code")))

    async def _barge_in(self, ws: Any, nursery: trio.Nursery) -> None:
        await trio.sleep(BARGE_IN_AFTER_S)
        self._barge.set()
        await self._vad(ws)

    @property
    def _speech_end(self) -> int:
        return int(speech_end_offset(self.question) * SAMPLE_RATE) * 2

    def figures(self) -> dict[str, Any]:
        def ms(later: float | None, earlier: float | None) -> float | None:
            return None if later is None or earlier is None else (later - earlier) * 1000

        return {
            "frame_ms": self.frame_ms,
            "eot_stopped_ms": ms(self.stopped_at, self.speech_end_at),
            "eot_first_audio_ms": ms(self.first_audio_at, self.speech_end_at),
            "barge_in_ms": ms(self.interrupted_at, self.vad_sent_at),
            "stale_bytes": self.stale_bytes,
            "frames_sent": self.frames_sent,
            "errors": self.errors,
        }


def summarize(trials: list[dict[str, Any]], frames: list[int]) -> list[dict[str, Any]]:
    rows = []
    for frame_ms in frames:
        mine = [t for t in trials if t["frame_ms"] == frame_ms]
        row: dict[str, Any] = {"frame_ms": frame_ms, "trials": len(mine)}
        for key in ("eot_stopped_ms", "eot_first_audio_ms", "barge_in_ms"):
            values = [t[key] for t in mine if t[key] is not None]
            row[key] = {
                "n": len(values),
                "p50": statistics.median(values) if values else None,
                "p90": pct(values, 90),
                "max": max(values) if values else None,
            }
        row["stale_bytes"] = sum(t["stale_bytes"] for t in mine)
        row["errors"] = sorted({code for t in mine for code in t["errors"]})
        row["messages_per_s"] = 1000 / frame_ms
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace, elapsed: float) -> str:
    table = md_table(
        [
            "frame (ms)", "msgs/s", "trials",
            "speech end -> input_speech_stopped p50 / p90 (ms)",
            "speech end -> first audio p50 / p90 (ms)",
            "client_vad_speech_start -> audio_interrupted p50 / p90 / max (ms)",
            "stale bytes", "errors",
        ],
        [
            [
                r["frame_ms"], r["messages_per_s"], r["trials"],
                f"{r['eot_stopped_ms']['p50']:.0f} / {r['eot_stopped_ms']['p90']:.0f}"
                if r["eot_stopped_ms"]["n"] else "-",
                f"{r['eot_first_audio_ms']['p50']:.0f} / {r['eot_first_audio_ms']['p90']:.0f}"
                if r["eot_first_audio_ms"]["n"] else "-",
                f"{r['barge_in_ms']['p50']:.1f} / {r['barge_in_ms']['p90']:.1f} /"
                f" {r['barge_in_ms']['max']:.1f}" if r["barge_in_ms"]["n"] else "-",
                r["stale_bytes"], ", ".join(r["errors"]) or "-",
            ]
            for r in rows
        ],
    )  # fmt: skip
    return f"""# Microphone frame size vs latency (benchmarks/frame_size.py)

One offline server (local VAD, recogniser, brain and voice), one room at a time over a
real socket; the client speaks in real time in frames of the given duration. Framings
interleaved trial by trial, {args.trials} trials each, {elapsed:.0f} s in all.
Command: `flock /work/wt/bench.lock python benchmarks/frame_size.py --frames
{",".join(map(str, args.frames))} --trials {args.trials}`.

{table}

- *speech end*: the last 10 ms of the question above {SPEECH_FLOOR_DBFS:.0f} dBFS, on
  the client's real-time clock; the server's VAD then waits its silence duration, so
  these figures include it, the same for every framing.
- *client_vad_speech_start -> audio_interrupted*: the browser VAD's message is sent at
  a random instant (not on a frame boundary), while the frames keep flowing.
- Machine shared with other work (2 cores); see the JSON for the load average.
"""


def plot(path: Path, trials: list[dict[str, Any]], frames: list[int]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("eot_stopped_ms", "speech end -> input_speech_stopped"),
        ("eot_first_audio_ms", "speech end -> first audio"),
        ("barge_in_ms", "client_vad_speech_start -> audio_interrupted"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (key, title) in zip(axes, keys, strict=True):
        data = [
            [t[key] for t in trials if t["frame_ms"] == f and t[key] is not None] for f in frames
        ]
        ax.boxplot(data, tick_labels=[str(f) for f in frames])
        for i, values in enumerate(data, start=1):
            ax.scatter([i] * len(values), values, s=10, alpha=0.5)
        ax.set_xlabel("client frame (ms)")
        ax.set_ylabel("ms")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


async def run(args: argparse.Namespace, base: str, question: bytes) -> list[dict[str, Any]]:
    trials: list[dict[str, Any]] = []
    token = secrets.token_hex(3)
    deadline = time.monotonic() + args.time_limit_s
    for index in range(args.trials):
        order = list(args.frames)
        random.shuffle(order)
        for frame_ms in order:
            if time.monotonic() > deadline:
                print("time limit reached", file=sys.stderr)
                return trials
            url = f"{base}/ws/fs-{token}-{frame_ms}-{index}"  # new rooms: nothing to resume
            lead = bytes(int((0.3 + 0.2 * random.random()) * SAMPLE_RATE) * 2)
            try:
                figures = await Trial(url, frame_ms, lead, question).run()
            except trio.TooSlowError:
                figures = {"frame_ms": frame_ms, "eot_stopped_ms": None,
                           "eot_first_audio_ms": None, "barge_in_ms": None, "stale_bytes": 0,
                           "frames_sent": 0, "errors": ["trial_timeout"]}  # fmt: skip
            trials.append(figures)
            print(orjson.dumps(figures).decode(), file=sys.stderr)
            await trio.sleep(0.3)
    return trials


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--frames", default="20,40,60,100", help="frame durations in ms (10-200)")
    p.add_argument("--trials", type=int, default=8, help="trials per framing (max 30)")
    p.add_argument("--time-limit-s", type=float, default=600.0)
    p.add_argument("--out-name", default="frame_size")
    args = p.parse_args(argv)
    args.frames = [min(200, max(10, int(f))) for f in args.frames.split(",")]
    args.trials = max(1, min(args.trials, 30))
    random.seed(18)

    from voiceagent.speech.voices import load_voice

    question = load_voice("en").synthesize(QUESTION)
    port = free_port()
    env = {"VOICEAGENT_MODEL": "offline", "VOICEAGENT_TTS": "offline",
           "VOICEAGENT_LOG_LEVEL": "WARNING"}  # fmt: skip
    argv_server = [sys.executable, "-m", "hypercorn", "-k", "trio", "voiceagent:app",
                   "--bind", f"127.0.0.1:{port}"]  # fmt: skip
    started = time.monotonic()
    with server_process(argv_server, name="frame_size", cpus=None, env=env):
        wait_app_ready(port)
        trials = trio.run(run, args, f"ws://127.0.0.1:{port}", question)
    elapsed = time.monotonic() - started
    rows = summarize(trials, args.frames)
    paths = write_results(
        args.out_name,
        {"args": {"frames": args.frames, "trials": args.trials}, "summary": rows, "trials": trials},
        markdown(rows, args, elapsed),
    )
    plot(RESULTS / f"{args.out_name}.png", trials, args.frames)
    print(paths["md"].read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
