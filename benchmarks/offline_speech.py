"""Offline speech under load: event-loop lag while N speakers talk at once, in one process.

Each of N simulated sessions opens an `OfflineModel` connection and a `LocalVoiceTTS`
connection, speaks a synthesised airline question in real-time 20 ms frames, answers
the brain's tool call, and has the reply voiced (audio counted, not played). Sessions
start a little apart so their turns overlap the way real callers' do. Meanwhile a
probe task sleeps a fixed tick and records how late it wakes up: that overshoot is what
every other task in the process (socket reads, the writer, other rooms) would suffer.

Also measured: the VAD's cost per 100 ms of audio (inline, on the loop), STT and TTS
real-time factors inside the loaded server, and resident memory per extra idle session.

    python benchmarks/offline_speech.py --streams 1,2,4 --turns 2

Writes benchmarks/results/offline_speech.{json,md,png}. Bounded: every run of N
streams is cut off after --time-limit seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voiceagent.brain import OfflineBrain
from voiceagent.conversation import AgentSetup, ToolSpec
from voiceagent.events import FunctionCall, SpeechStopped, TextDelta, TextDone, TranscriptCompleted
from voiceagent.models.offline import OfflineModel, OfflineModelConfig
from voiceagent.speech.vad import VoiceActivityDetector
from voiceagent.tts.base import WordTiming
from voiceagent.tts.local import LocalVoiceTTS

RATE = 24_000
FRAME_BYTES = RATE * 2 // 50  # 20 ms
BASELINE_S = 8.0
QUESTIONS = (
    "What is the baggage allowance?",
    "Can I bring my dog on the plane?",
    "Is there wifi on board?",
)
ANSWER = (
    "You may check one bag of twenty three kilos. "
    "You can also bring one small carry on bag and a personal item."
)
FAQ = AgentSetup(
    agent_name="faq",
    instructions="Answer questions about baggage, pets and wifi.",
    tools=(
        ToolSpec(
            name="faq_lookup",
            description="Look up the answer to a question about baggage, pets or wifi.",
            parameters={
                "type": "object",
                "properties": {"question": {"type": "string", "description": "the question"}},
                "required": ["question"],
            },
            examples=("what is the baggage allowance", "can I bring my dog", "wifi"),
        ),
    ),
)


# -- measurements ---------------------------------------------------------------------


@dataclass
class LagProbe:
    tick_s: float = 0.005
    overshoot_ms: list[float] = field(default_factory=list)

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await trio.sleep(self.tick_s)
            self.overshoot_ms.append((time.perf_counter() - before - self.tick_s) * 1000)

    def summary(self) -> dict[str, float]:
        values = np.array(self.overshoot_ms or [0.0])
        return {
            "samples": int(values.size),
            "p50_ms": float(np.percentile(values, 50)),
            "p99_ms": float(np.percentile(values, 99)),
            "max_ms": float(values.max()),
        }


class StepCpu(trio.abc.Instrument):
    """CPU time of the loop thread per task step: our own blocking, whatever the host.

    Wall-clock lag also counts time the OS gave to other processes; thread CPU time
    does not, so a long step here is code of ours that held the loop.
    """

    def __init__(self) -> None:
        self.steps_ms: list[float] = []
        self.worst: dict[str, float] = {}
        self._started: int | None = None

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._started = time.thread_time_ns()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._started is None:  # the step that installed us: not measured
            return
        spent = (time.thread_time_ns() - self._started) / 1e6
        self.steps_ms.append(spent)
        name = task.name.rsplit(".", 1)[-1]
        if spent > self.worst.get(name, 0.0):
            self.worst[name] = spent

    def summary(self) -> dict[str, Any]:
        values = np.array(self.steps_ms or [0.0])
        worst = sorted(self.worst.items(), key=lambda item: -item[1])[:4]
        return {
            "steps": int(values.size),
            "p99_ms": float(np.percentile(values, 99)),
            "max_ms": float(values.max()),
            "worst_tasks_ms": {name: round(ms, 2) for name, ms in worst},
        }


@dataclass
class TimedVoice:
    """Wraps the shared voice to time each sentence (thread wall time vs audio length)."""

    inner: Any
    samples: list[tuple[float, float]] = field(default_factory=list)  # (wall s, audio s)

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def synthesize(self, text: str) -> bytes:
        started = time.perf_counter()
        pcm = self.inner.synthesize(text)
        self.samples.append((time.perf_counter() - started, len(pcm) / 2 / RATE))
        return pcm


class CountingSink:
    def __init__(self) -> None:
        self.bytes = 0

    async def audio(self, pcm: bytes) -> None:
        self.bytes += len(pcm)

    def words(self, timings: list[WordTiming]) -> None:
        pass


@dataclass
class StreamResult:
    turns: int = 0
    transcripts: list[str] = field(default_factory=list)
    stt_latency_s: list[float] = field(default_factory=list)  # speech stop -> transcript
    utterance_s: list[float] = field(default_factory=list)
    reply_audio_s: float = 0.0


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[1]) == pid:
                    found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


# -- one simulated speaker ------------------------------------------------------------


async def speaker(
    model: OfflineModel,
    tts: LocalVoiceTTS,
    speech: list[bytes],
    turns: int,
    start_delay: float,
    result: StreamResult,
) -> None:
    await trio.sleep(start_delay)
    async with model.connect(FAQ, output="text") as connection, tts.connect() as voice:
        turn_done = trio.Event()
        stopped_at: list[float] = []

        async def feed() -> None:
            nonlocal turn_done
            silence = bytes(RATE * 2 // 2)
            for turn in range(turns):
                audio = silence + speech[turn % len(speech)] + bytes(RATE * 2)
                result.utterance_s.append(len(speech[turn % len(speech)]) / 2 / RATE)
                deadline = trio.current_time()
                for offset in range(0, len(audio), FRAME_BYTES):
                    await connection.send_audio(audio[offset : offset + FRAME_BYTES])
                    deadline += 0.02
                    await trio.sleep_until(deadline)  # real-time pacing
                await turn_done.wait()
                turn_done = trio.Event()

        async def consume(nursery: trio.Nursery) -> None:
            text_tx: trio.MemorySendChannel[str] | None = None
            sink = CountingSink()
            async for event in connection:
                if isinstance(event, SpeechStopped):
                    stopped_at.append(time.perf_counter())
                elif isinstance(event, TranscriptCompleted):
                    result.stt_latency_s.append(time.perf_counter() - stopped_at[-1])
                    result.transcripts.append(event.transcript)
                    if not event.transcript:
                        turn_done.set()  # nothing heard, no reply: next turn
                elif isinstance(event, FunctionCall):
                    await connection.send_tool_result(event.call_id, ANSWER)
                elif isinstance(event, TextDelta):
                    if text_tx is None:
                        text_tx, text_rx = trio.open_memory_channel[str](64)
                        nursery.start_soon(speak, text_rx, sink)
                    await text_tx.send(event.delta)
                elif isinstance(event, TextDone) and text_tx is not None:
                    await text_tx.aclose()
                    text_tx = None

        async def speak(text_rx: trio.MemoryReceiveChannel[str], sink: CountingSink) -> None:
            await voice.synthesize(text_rx, sink, response_id="bench")
            result.reply_audio_s = sink.bytes / 2 / RATE
            result.turns += 1
            turn_done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume, nursery)
            await feed()
            nursery.cancel_scope.cancel()


async def run_streams(
    n: int, model: OfflineModel, tts: LocalVoiceTTS, speech: list[bytes], turns: int, limit: float
) -> dict[str, Any]:
    probe = LagProbe()
    steps = StepCpu()
    trio.lowlevel.add_instrument(steps)
    results = [StreamResult() for _ in range(n)]
    started = time.perf_counter()
    cpu_started = time.process_time()
    with trio.move_on_after(limit) as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe.run)
            if n == 0:
                # Baseline: the probe alone shows what the machine itself adds (a
                # shared or loaded host makes every row worse by about this much).
                await trio.sleep(BASELINE_S)
            async with trio.open_nursery() as speakers:
                for index in range(n):
                    # Staggered by 0.3 s: speech, decoding and voicing overlap across rooms.
                    speakers.start_soon(
                        speaker, model, tts, speech, turns, 0.3 * index, results[index]
                    )
            nursery.cancel_scope.cancel()
    wall = time.perf_counter() - started
    trio.lowlevel.remove_instrument(steps)
    stt_rtf = [
        latency / utterance
        for result in results
        for latency, utterance in zip(result.stt_latency_s, result.utterance_s, strict=False)
    ]
    return {
        "streams": n,
        "timed_out": scope.cancelled_caught,
        "wall_s": wall,
        "main_process_cpu_share": (time.process_time() - cpu_started) / wall,
        "turns_completed": sum(result.turns for result in results),
        "turns_expected": n * turns,
        "lag": probe.summary(),
        "loop_cpu_per_step": steps.summary(),
        "stt_latency_ms_p50": 1000
        * statistics.median([x for r in results for x in r.stt_latency_s] or [0]),
        "stt_rtf_in_server_p50": statistics.median(stt_rtf or [0]),
        "stt_rtf_in_server_max": max(stt_rtf or [0]),
        "sample_transcripts": [r.transcripts[:1] for r in results][:2],
    }


def vad_cost(speech: bytes) -> dict[str, float]:
    vad = VoiceActivityDetector()
    audio = (bytes(RATE) + speech + bytes(RATE * 2)) * 2
    batch = RATE * 2 // 10  # 100 ms, the session's batch size
    calls = []
    for offset in range(0, len(audio), batch):
        started = time.perf_counter()
        vad.feed(audio[offset : offset + batch])
        calls.append((time.perf_counter() - started) * 1000)
    return {
        "ms_per_100ms_p50": float(np.percentile(calls, 50)),
        "ms_per_100ms_p99": float(np.percentile(calls, 99)),
        "cpu_share_per_stream": float(np.mean(calls) / 100),
    }


async def memory_per_session(model: OfflineModel, tts: LocalVoiceTTS, sessions: int) -> float:
    """Extra resident MB per idle connected offline session (VAD + buffers + tasks)."""
    pid = os.getpid()
    before = rss_mb(pid)
    async with trio.open_nursery() as nursery:
        ready = 0
        all_ready = trio.Event()
        release = trio.Event()

        async def session() -> None:
            nonlocal ready
            async with model.connect(FAQ, output="text") as connection, tts.connect():
                await connection.send_audio(bytes(RATE * 2))  # one second of silence
                ready += 1
                if ready == sessions:
                    all_ready.set()
                await release.wait()

        for _ in range(sessions):
            nursery.start_soon(session)
        await all_ready.wait()
        after = rss_mb(pid)
        release.set()
    return (after - before) / sessions


def write_reports(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "offline_speech.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# Offline speech benchmark",
        "",
        f"{report['machine']} — {report['date']} — load average at start "
        f"{report['load_average_1m_at_start']:.2f}",
        "",
        "Streams = 0 is the lag probe alone (the machine's own noise).",
        "",
        "| streams | lag p50 ms | lag p99 ms | lag max ms | step CPU p99 / max ms | "
        "STT latency p50 ms | STT RTF p50 (in server) | turns done | main CPU share |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        lag = run["lag"]
        lines.append(
            f"| {run['streams']} | {lag['p50_ms']:.2f} | {lag['p99_ms']:.2f} | "
            f"{lag['max_ms']:.2f} | {run['loop_cpu_per_step']['p99_ms']:.2f} / "
            f"{run['loop_cpu_per_step']['max_ms']:.2f} | {run['stt_latency_ms_p50']:.0f} | "
            f"{run['stt_rtf_in_server_p50']:.2f} | {run['turns_completed']}/"
            f"{run['turns_expected']} | {run['main_process_cpu_share']:.2f} |"
        )
    tts = report["tts"]
    vad = report["vad"]
    lines += [
        "",
        f"- TTS ({tts['engine']}): RTF p50 {tts['rtf_p50']:.3f}, max {tts['rtf_max']:.3f} "
        f"over {tts['sentences']} sentences (thread wall time / audio length, under load); "
        f"alone {tts['rtf_alone']:.3f}",
        f"- VAD: {vad['ms_per_100ms_p50']:.2f} ms per 100 ms of audio (p99 "
        f"{vad['ms_per_100ms_p99']:.2f}), inline on the event loop",
        f"- STT alone: RTF {report['stt_rtf_alone']:.3f} (one utterance, warm worker)",
        f"- Memory: {report['rss_mb_per_extra_session']:.2f} MB RSS per extra idle session; "
        f"main process {report['rss_mb_main']:.0f} MB, STT workers "
        f"{report['rss_mb_workers']:.0f} MB in total",
        f"- Target p99 lag < 20 ms at 4 speakers: {'met' if report['target_met'] else 'NOT met'}",
    ]
    (out / "offline_speech.md").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    streams = [run["streams"] for run in report["runs"]]
    figure, (lag_axes, rtf_axes) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.27
    positions = np.arange(len(streams))
    bars = [
        ("lag p99", [r["lag"]["p99_ms"] for r in report["runs"]]),
        ("lag max", [r["lag"]["max_ms"] for r in report["runs"]]),
        ("longest loop step (CPU)", [r["loop_cpu_per_step"]["max_ms"] for r in report["runs"]]),
    ]
    for index, (label, values) in enumerate(bars):
        lag_axes.bar(positions + (index - 1) * width, values, width, label=label)
    lag_axes.set_yscale("symlog", linthresh=1.0)
    lag_axes.axhline(20, color="red", linestyle="--", label="20 ms target")
    lag_axes.set_xticks(positions, [str(s) for s in streams])
    lag_axes.set_xlabel("concurrent speakers")
    lag_axes.set_ylabel("ms (symlog)")
    lag_axes.set_title("Loop lag while speaking")
    lag_axes.legend()
    spoken = [run for run in report["runs"] if run["streams"] > 0]
    rtf_axes.plot(
        [run["streams"] for run in spoken],
        [run["stt_rtf_in_server_p50"] for run in spoken],
        "o-",
        label="STT (in server)",
    )
    rtf_axes.axhline(
        report["tts"]["rtf_p50"], color="green", linestyle=":", label="TTS p50 (all runs)"
    )
    rtf_axes.set_xlabel("concurrent speakers")
    rtf_axes.set_ylabel("real-time factor")
    rtf_axes.set_title("Speech engines' real-time factor")
    rtf_axes.legend()
    figure.tight_layout()
    figure.savefig(out / "offline_speech.png", dpi=100)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    streams = [int(part) for part in args.streams.split(",")]
    load_at_start = os.getloadavg()[0]
    config = OfflineModelConfig(stt_concurrency=args.stt_concurrency)
    model = OfflineModel(config, brain_factory=OfflineBrain)
    await model.warm_up()
    shared = await LocalVoiceTTS().voice()
    shared.synthesize("Warm up.")
    started = time.perf_counter()
    speech = [shared.synthesize(question) for question in QUESTIONS]
    tts_alone = (time.perf_counter() - started) / (sum(map(len, speech)) / 2 / RATE)
    # Every sentence the sessions synthesise goes through this timing wrapper.
    timed = TimedVoice(shared)
    tts = LocalVoiceTTS(voice=timed)
    await tts.warm_up()

    started = time.perf_counter()
    transcript = await model.recognizer.transcribe(speech[0], RATE)
    stt_alone = (time.perf_counter() - started) / (len(speech[0]) / 2 / RATE)
    runs = []
    for n in streams:
        print(f"running {n} stream(s)...", flush=True)
        runs.append(await run_streams(n, model, tts, speech, args.turns, args.time_limit))
        print(json.dumps(runs[-1]["lag"]), flush=True)
    rtf = [wall / audio for wall, audio in timed.samples if audio > 0]
    pid = os.getpid()
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        # The machine may be shared: a high load average makes every figure worse.
        "load_average_1m_at_start": load_at_start,
        "args": vars(args),
        "runs": runs,
        "vad": vad_cost(speech[0]),
        "stt_rtf_alone": stt_alone,
        "stt_sample": transcript,
        "tts": {
            "engine": timed.name,
            "sentences": len(rtf),
            "rtf_alone": tts_alone,
            "rtf_p50": statistics.median(rtf or [0]),
            "rtf_max": max(rtf or [0]),
        },
        "rss_mb_per_extra_session": await memory_per_session(model, tts, args.idle_sessions),
        "rss_mb_main": rss_mb(pid),
        "rss_mb_workers": sum(rss_mb(child) for child in children(pid)),
    }
    four = [run for run in runs if run["streams"] == 4]
    report["target_met"] = bool(four) and four[0]["lag"]["p99_ms"] < 20
    write_reports(report, Path(args.out))
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--streams", default="0,1,2,4", help="comma-separated speaker counts (0: baseline)"
    )
    parser.add_argument("--turns", type=int, default=2, help="spoken turns per speaker")
    parser.add_argument("--stt-concurrency", type=int, default=2, help="STT worker processes")
    parser.add_argument("--idle-sessions", type=int, default=20, help="sessions for RSS figure")
    parser.add_argument("--time-limit", type=float, default=90.0, help="seconds per stream count")
    parser.add_argument("--out", default="benchmarks/results", help="report folder")
    return parser.parse_args(argv)


if __name__ == "__main__":
    result = trio.run(main, parse_args())
    print(Path(parse_args().out, "offline_speech.md").read_text())
