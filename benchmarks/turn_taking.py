"""Turn-taking evaluation: when does a turn end, and what interrupts the agent?

(a) End of turn, VAD-only vs the semantic detector, on one corpus in one run: 48
    utterances read in chunks with 500-900 ms pauses (phone numbers, codes, lists) and
    48 complete sentences, by six synthetic speakers (benchmarks/_turn_corpus.py). Each
    utterance goes through the real VAD in 20 ms frames; its VAD events then drive the
    real end-of-turn rules (`voiceagent.speech.turn_end.TurnEnder`) twice: VAD-only,
    and with the Smart Turn model, whose verdict lands `predict()`'s measured time
    after the VAD stop (the audio keeps coming meanwhile, as in a live call). "+words"
    adds the words check (`voiceagent.speech.unfinished`): a turn the model calls
    complete is transcribed (pocketsphinx, as the server's worker does, timed) and
    held when its words end mid-sentence; its verdict lands after both.
    - premature: a turn committed before the speaker really finished;
    - end delay: from the real end of speech to the commit of the turn;
    - words delay: from the real end of speech to the turn's transcript (VAD-only
      decodes after the commit; +words reuses the transcript it made to decide);
    - added delay: minus VAD-only's, same utterance.
(b) Sounds over agent speech: barge-in phrases, backchannels ("yeah", "mm-hmm"...),
    coughs and noise bursts, as the microphone sends them (after echo cancellation).
    Without the interruption policy every VAD speech start during agent audio is a
    committed barge-in (`barge_in_on_main()`: what starts speech, and how fast);
    `policy_outcomes()` applies the policy (`voiceagent.interruption`) to the same
    sounds: its verdict from the speech's length and the local recogniser's transcript.
(c) Cost under load: 4 speakers talking at once through `OfflineModel` in real time,
    semantic on and off: p50/p99 per decision (wall time of `decide()`, queueing for
    the thread limiter included) and event-loop lag.

    python benchmarks/turn_taking.py            # all parts, ~3-5 min on 2 cores
    python benchmarks/turn_taking.py --load-seconds 0   # skip (c)

Writes benchmarks/results/turn_taking.{json,md,png}. Bounded: the corpus is fixed and
the load part stops after --load-seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trio

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import md_table, pct, write_results  # noqa: E402
from _turn_corpus import Overlay, Utterance, build_overlays, build_turns  # noqa: E402

from voiceagent.models.offline_turns import vad_config_for  # noqa: E402
from voiceagent.speech.turn_detector import SmartTurnDetector, TurnVerdict  # noqa: E402
from voiceagent.speech.turn_end import EAGERNESS, Eagerness, Hold, TurnEnder  # noqa: E402
from voiceagent.speech.unfinished import sounds_unfinished  # noqa: E402
from voiceagent.speech.vad import (  # noqa: E402
    SpeechPause,
    SpeechStart,
    SpeechStop,
    VadConfig,
    VoiceActivityDetector,
)

RATE = 24_000
FRAME_MS = 20
FRAME_BYTES = RATE * 2 * FRAME_MS // 1000


# -- (a) end of turn ------------------------------------------------------------------


VadEvents = list[tuple[int, SpeechStart | SpeechPause | SpeechStop]]


def vad_events(pcm: bytes, config: VadConfig) -> VadEvents:
    """The VAD's events over `pcm`, each with the input time (ms) it was reported at."""
    vad = VoiceActivityDetector(config)
    try:
        out: VadEvents = []
        for offset in range(0, len(pcm), FRAME_BYTES):
            for event in vad.feed(pcm[offset : offset + FRAME_BYTES]):
                out.append((vad.audio_ms, event))
        return out
    finally:
        vad.close()


@dataclass
class Replay:
    commits_ms: list[int]
    decisions: list[TurnVerdict] = field(default_factory=list)
    #: when each committed turn's transcript is ready (ms of input time)
    words_ms: list[float] = field(default_factory=list)
    held_by_words: int = 0


class CachedWords:
    """The server's recogniser, in this process: the worker's steps (trim, one
    full-utterance pass), timed; each distinct audio decoded once."""

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(fwdflat=False, samprate=16_000, loglevel="FATAL")
        self.cache: dict[bytes, tuple[str, float]] = {}

    def transcribe(self, pcm16: bytes) -> tuple[str, float]:
        """(transcript, seconds) of 16 kHz PCM16 audio."""
        from voiceagent.speech.stt_worker import trim_silence

        if pcm16 not in self.cache:
            started = time.perf_counter()
            samples = trim_silence(np.frombuffer(pcm16, dtype="<i2"))
            self.decoder.start_utt()
            self.decoder.process_raw(samples.tobytes(), no_search=False, full_utt=True)
            self.decoder.end_utt()
            hypothesis = self.decoder.hyp()
            text = hypothesis.hypstr.strip() if hypothesis is not None else ""
            self.cache[pcm16] = (text, time.perf_counter() - started)
        return self.cache[pcm16]


class CachedDetector:
    """The detector, each distinct audio asked once (the levels share the VAD's events)."""

    def __init__(self, detector: SmartTurnDetector) -> None:
        self.detector = detector
        self.cache: dict[bytes, TurnVerdict] = {}
        self.seconds: list[float] = []

    def predict(self, pcm16: bytes) -> TurnVerdict:
        if pcm16 not in self.cache:
            self.cache[pcm16] = verdict = self.detector.predict(pcm16)
            self.seconds.append(verdict.seconds)
        return self.cache[pcm16]


def replay(
    events: VadEvents,
    total_ms: int,
    detector: CachedDetector | None,
    level: Eagerness,
    stt: CachedWords,
    check_words: bool = False,
) -> Replay:
    """Run the end-of-turn rules over the VAD's events in input time (see the docstring),
    as `voiceagent.models.offline_turns.TurnGate` does."""
    ender = TurnEnder(semantic=detector is not None, max_delay_ms=level.max_delay_ms)
    result = Replay([])
    pending: tuple[float, int, bool] | None = None  # (due ms, generation, complete)
    known: set[int] = set()  # generations whose transcript the words check made
    by_time: dict[int, list[SpeechStart | SpeechPause | SpeechStop]] = {}
    for at, event in events:
        by_time.setdefault(at, []).append(event)

    def committed(now: int, turn: SpeechStop, generation: int) -> None:
        result.commits_ms.append(now)
        ready = now if generation in known else now + stt.transcribe(turn.audio)[1] * 1000
        result.words_ms.append(ready)

    for now in range(0, total_ms + FRAME_MS, FRAME_MS):
        if pending is not None and pending[0] <= now:
            generation = ender.generation
            turn = ender.verdict(pending[1], pending[2])
            pending = None
            if turn is not None:
                committed(now, turn, generation)
        for event in by_time.get(now, []):
            if isinstance(event, SpeechStart):
                ender.speech_resumed()
                continue
            generation = ender.generation
            decision = (
                ender.vad_pause(event) if isinstance(event, SpeechPause) else ender.vad_stop(event)
            )
            if isinstance(decision, Hold):
                assert detector is not None
                verdict = detector.predict(decision.audio)
                result.decisions.append(verdict)
                complete = verdict.probability > level.threshold
                due = now + verdict.seconds * 1000
                if complete and check_words:
                    text, seconds = stt.transcribe(decision.audio)
                    known.add(decision.generation)
                    due += seconds * 1000
                    if sounds_unfinished(text):
                        complete = False
                        result.held_by_words += 1
                pending = (due, decision.generation, complete)
            elif decision is not None:
                committed(now, decision, generation)
        generation = ender.generation
        turn = ender.tick(now)
        if turn is not None:
            committed(now, turn, generation)
    return result


def judge(item: Utterance, run: Replay) -> dict[str, Any]:
    premature = [at for at in run.commits_ms if at < item.true_end_ms]
    final = next((i for i, at in enumerate(run.commits_ms) if at >= item.true_end_ms), None)
    return {
        "premature": bool(premature),
        "commits": len(run.commits_ms),
        "end_delay_ms": None if final is None else run.commits_ms[final] - item.true_end_ms,
        "words_delay_ms": None if final is None else run.words_ms[final] - item.true_end_ms,
        "held_by_words": run.held_by_words,
    }


POLICIES = ("vad_only", "high", "medium", "low", "high+words", "medium+words", "low+words")


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def end_of_turn(
    items: list[Utterance], detector: CachedDetector, stt: CachedWords
) -> list[dict[str, Any]]:
    """VAD-only and the semantic end at each eagerness level (with and without the
    words check), for every utterance."""
    rows: list[dict[str, Any]] = []
    for item in items:
        total_ms = len(item.pcm) * 1000 // (RATE * 2)
        plain = vad_events(item.pcm, VadConfig())
        with_pauses = vad_events(item.pcm, vad_config_for(VadConfig(), semantic=True))
        row: dict[str, Any] = {"kind": item.kind, "speaker": item.speaker, "text": item.text}
        row["vad_only"] = judge(item, replay(plain, total_ms, None, EAGERNESS["high"], stt))
        for policy in POLICIES[1:]:
            level, _, words = policy.partition("+")
            run = replay(with_pauses, total_ms, detector, EAGERNESS[level], stt, bool(words))
            row[policy] = judged = judge(item, run)
            base = row["vad_only"]
            judged["added_delay_ms"] = _minus(judged["end_delay_ms"], base["end_delay_ms"])
            judged["added_words_delay_ms"] = _minus(
                judged["words_delay_ms"], base["words_delay_ms"]
            )
            judged["probabilities"] = [round(v.probability, 3) for v in run.decisions]
        rows.append(row)
    return rows


def summarise_turns(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kind in ("paused", "complete", "all"):
        chosen = [row for row in rows if kind in ("all", row["kind"])]
        entry: dict[str, Any] = {"utterances": len(chosen)}
        for policy in POLICIES:
            results = [row[policy] for row in chosen]
            delays = [r["end_delay_ms"] for r in results if r["end_delay_ms"] is not None]
            added = [r["added_delay_ms"] for r in results if r.get("added_delay_ms") is not None]
            words = [r["words_delay_ms"] for r in results if r["words_delay_ms"] is not None]
            added_words = [
                r["added_words_delay_ms"]
                for r in results
                if r.get("added_words_delay_ms") is not None
            ]
            premature = sum(r["premature"] for r in results)
            entry[policy] = {
                # a turn still open when its audio ran out (none with the corpus's 7 s tail)
                "never_ended": sum(r["end_delay_ms"] is None for r in results),
                "premature": premature,
                "premature_rate": premature / max(len(results), 1),
                "median_end_delay_ms": statistics.median(delays) if delays else None,
                "p90_end_delay_ms": pct(delays, 90),
                "median_added_delay_ms": statistics.median(added) if added else None,
                "p90_added_delay_ms": pct(added, 90),
                "median_words_delay_ms": statistics.median(words) if words else None,
                "median_added_words_delay_ms": (
                    statistics.median(added_words) if added_words else None
                ),
                "p90_added_words_delay_ms": pct(added_words, 90),
                "held_by_words": sum(r["held_by_words"] for r in results),
            }
        out[kind] = entry
    return out


# -- (b) sounds over agent speech -----------------------------------------------------


def barge_in_on_main(overlays: list[Overlay]) -> list[dict[str, Any]]:
    """What main does: a VAD speech start during agent audio is a committed barge-in."""
    rows = []
    for overlay in overlays:
        events = vad_events(overlay.pcm, VadConfig())
        starts = [at for at, event in events if isinstance(event, SpeechStart)]
        rows.append(
            {
                "kind": overlay.kind,
                "label": overlay.label,
                "duration_ms": round(overlay.duration_ms),
                "interrupted": bool(starts),
                "resumed": False,  # main has no resume: an interruption ends the reply
                "detect_ms": (starts[0] - overlay.onset_ms) if starts else None,
            }
        )
    return rows


def policy_outcomes(overlays: list[Overlay]) -> list[dict[str, Any]]:
    """The interruption policy's verdict for each overlay (`voiceagent.interruption`,
    default settings): speech the VAD hears pauses the agent at once (so the agent goes
    silent when main's barge-in would); the policy then judges the VAD's speech length
    and the local recogniser's transcript. Rows have `barge_in_on_main()`'s shape, plus
    `decided_ms` (onset -> verdict: VAD stop + transcription) and the reason."""
    from voiceagent.interruption import InterruptionSettings
    from voiceagent.speech.stt import Recognizer

    settings = InterruptionSettings()

    async def run() -> list[dict[str, Any]]:
        recognizer = Recognizer(2)
        await recognizer.warm_up()
        rows = []
        try:
            for overlay in overlays:
                events = vad_events(overlay.pcm, VadConfig())
                start = next((e for e in events if isinstance(e[1], SpeechStart)), None)
                stop = next((e for e in events if isinstance(e[1], SpeechStop)), None)
                row: dict[str, Any] = {
                    "kind": overlay.kind,
                    "label": overlay.label,
                    "duration_ms": round(overlay.duration_ms),
                    "interrupted": False,
                    "resumed": False,
                    "detect_ms": None,
                    "decided_ms": None,
                    "reason": "not_speech",
                }
                if start is not None and stop is not None:
                    assert isinstance(stop[1], SpeechStop)
                    began = time.perf_counter()
                    transcript = await recognizer.transcribe(stop[1].audio, 16_000)
                    stt_ms = (time.perf_counter() - began) * 1000
                    speech_ms = stop[1].audio_end_ms - start[0]
                    reason = settings.judge(transcript, speech_ms)
                    row.update(
                        interrupted=reason is None,
                        resumed=reason is not None,
                        detect_ms=start[0] - overlay.onset_ms,
                        decided_ms=stop[0] - overlay.onset_ms + stt_ms,
                        reason=reason or "interruption",
                        transcript=transcript,
                    )
                rows.append(row)
        finally:
            await recognizer.aclose()
        return rows

    return trio.run(run)


def summarise_overlays(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for kind in ("barge_in", "backchannel", "cough", "noise"):
        chosen = [row for row in rows if row["kind"] == kind]
        detect = [row["detect_ms"] for row in chosen if row["detect_ms"] is not None]
        decided = [row["decided_ms"] for row in chosen if row.get("decided_ms") is not None]
        out.append(
            {
                "kind": kind,
                "n": len(chosen),
                "interrupted": sum(row["interrupted"] for row in chosen),
                "resumed": sum(row["resumed"] for row in chosen),
                "detect_p50_ms": pct(detect, 50),
                "detect_p99_ms": pct(detect, 99),
                "decided_p50_ms": pct(decided, 50),
            }
        )
    return out


# -- (c) cost under load --------------------------------------------------------------


class TimedDetector(SmartTurnDetector):
    """Records the wall time of each `decide()` (thread hand-off and queueing included)."""

    def __init__(self) -> None:
        super().__init__()
        self.wall_s: list[float] = []

    async def decide(self, pcm16: bytes) -> TurnVerdict:
        started = time.perf_counter()
        try:
            return await super().decide(pcm16)
        finally:
            self.wall_s.append(time.perf_counter() - started)


async def load_run(
    items: list[Utterance], detector: TimedDetector | None, speakers: int, seconds: float
) -> dict[str, Any]:
    from offline_speech import FAQ, LagProbe

    from voiceagent.brain import OfflineBrain
    from voiceagent.events import FunctionCall
    from voiceagent.models.offline import OfflineModel, OfflineModelConfig

    model = OfflineModel(
        OfflineModelConfig(semantic_turn=detector is not None),
        brain_factory=OfflineBrain,
        turn_detector=detector,
    )
    await model.warm_up()
    probe = LagProbe()
    turns = 0

    async def speaker(index: int) -> None:
        nonlocal turns
        async with model.connect(FAQ, output="text") as connection:

            async def drain() -> None:
                nonlocal turns
                async for event in connection:
                    if isinstance(event, FunctionCall):
                        await connection.send_tool_result(event.call_id, "ok")
                    elif type(event).__name__ == "InputCommitted":
                        turns += 1

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain)
                await trio.sleep(index * 0.37)  # callers do not start in step
                deadline = trio.current_time()
                for item in items[index::speakers] * 4:
                    for offset in range(0, len(item.pcm), FRAME_BYTES):
                        await connection.send_audio(item.pcm[offset : offset + FRAME_BYTES])
                        deadline += FRAME_MS / 1000
                        await trio.sleep_until(deadline)
                nursery.cancel_scope.cancel()

    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(probe.run)
            async with trio.open_nursery() as talkers:
                for index in range(speakers):
                    talkers.start_soon(speaker, index)
            nursery.cancel_scope.cancel()
    wall = detector.wall_s if detector is not None else []
    return {
        "semantic": detector is not None,
        "speakers": speakers,
        "seconds": seconds,
        "turns_committed": turns,
        "decisions": len(wall),
        "decision_p50_ms": pct([s * 1000 for s in wall], 50),
        "decision_p99_ms": pct([s * 1000 for s in wall], 99),
        "loop_lag": probe.summary(),
    }


# -- report ---------------------------------------------------------------------------


LABELS = {
    "vad_only": "VAD only",
    "high": "semantic, high",
    "medium": "semantic, auto/medium",
    "low": "semantic, low",
    "high+words": "semantic + words, high",
    "medium+words": "semantic + words, auto/medium",
    "low+words": "semantic + words, low",
}


def plot(
    summary: dict[str, Any],
    rows: list[dict[str, Any]],
    overlays: list[dict[str, Any]],
    policy: list[dict[str, Any]],
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    kinds = ("paused", "complete")
    x = np.arange(len(kinds))
    width = 0.8 / len(POLICIES)
    for index, name in enumerate(POLICIES):
        rates = [summary[kind][name]["premature_rate"] * 100 for kind in kinds]
        offset = index - (len(POLICIES) - 1) / 2
        axes[0].bar(x + offset * width, rates, width, label=LABELS[name])
    axes[0].set_xticks(x, [f"{k} (n={summary[k]['utterances']})" for k in kinds])
    axes[0].set_ylabel("utterances cut by a premature end of turn (%)")
    axes[0].set_title("Premature end of turn")
    axes[0].legend(fontsize=8)
    data = [
        [
            r[p]["end_delay_ms"]
            for r in rows
            if r["kind"] == "complete" and r[p]["end_delay_ms"] is not None
        ]
        for p in POLICIES
    ]
    ticks = [LABELS[p].replace("semantic", "").strip(" ,").replace("auto/", "") for p in POLICIES]
    axes[1].boxplot(data, tick_labels=ticks)
    axes[1].tick_params(axis="x", labelrotation=30, labelsize=8)
    axes[1].set_ylabel("end of speech -> turn committed (ms)")
    axes[1].set_title("End-of-turn delay, complete utterances")
    spots = np.arange(len(overlays))
    for shift, table, label in ((-0.2, overlays, "every speech start"), (0.2, policy, "policy")):
        shares = [100 * o["interrupted"] / max(o["n"], 1) for o in table]
        axes[2].bar(spots + shift, shares, 0.4, label=label)
    axes[2].set_xticks(spots, [o["kind"] for o in overlays])
    axes[2].set_ylabel("interrupted the agent (%)")
    axes[2].set_title("Sounds over agent speech")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    path = HERE / "results" / "turn_taking.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def markdown(
    summary: dict[str, Any],
    decisions_ms: list[float],
    stt_ms: list[float],
    overlays: list[dict[str, Any]],
    policy: list[dict[str, Any]],
    load: list[dict[str, Any]],
) -> str:
    levels = ", ".join(
        f"{name}: threshold {EAGERNESS[name].threshold}, "
        f"max delay {EAGERNESS[name].max_delay_ms} ms"
        for name in ("high", "medium", "low")
    )
    lines = [
        "# Turn taking",
        "",
        "`python benchmarks/turn_taking.py`: six synthetic speakers (piper at three "
        "speeds, espeak-ng with three voices and rates); the real VAD (500 ms silence, "
        "early pause for the model at 260 ms) and the real end-of-turn rules; the model's "
        f"verdict lands after its measured run time. Eagerness levels: {levels}.",
        "",
        "## (a) End of turn",
        "",
        "premature: share of utterances committed before the speaker finished; end delay: "
        "real end of speech to commit; words delay: real end of speech to the turn's "
        "transcript (VAD-only and the model alone decode after the commit; + words reuses "
        "the transcript it decided on); added: minus VAD-only's on the same utterance; "
        "held by words: verdicts of the model turned into a hold by the words.",
        "",
    ]
    rows = []
    for kind in ("paused", "complete", "all"):
        entry = summary[kind]
        for name in POLICIES:
            p = entry[name]
            rows.append(
                [
                    kind,
                    entry["utterances"],
                    LABELS[name],
                    f"{p['premature_rate'] * 100:.1f}%",
                    p["median_end_delay_ms"],
                    p["p90_end_delay_ms"],
                    p["median_added_delay_ms"],
                    p["p90_added_delay_ms"],
                    p["median_words_delay_ms"],
                    p["median_added_words_delay_ms"],
                    p["held_by_words"],
                ]
            )
    lines.append(
        md_table(
            [
                "utterances",
                "n",
                "turn end",
                "premature",
                "median end delay ms",
                "p90 end delay ms",
                "median added ms",
                "p90 added ms",
                "median words delay ms",
                "median added words ms",
                "held by words",
            ],
            rows,
        )
    )
    lines += [
        "",
        f"Model decisions (one at a time): p50 {pct(decisions_ms, 50) or 0:.0f} ms, "
        f"p99 {pct(decisions_ms, 99) or 0:.0f} ms over {len(decisions_ms)} decisions. "
        f"Transcriptions (one process, one at a time): p50 {pct(stt_ms, 50) or 0:.0f} ms, "
        f"p99 {pct(stt_ms, 99) or 0:.0f} ms over {len(stt_ms)}.",
        "",
        "## (b) Sounds over agent speech",
        "",
        "Without the policy every VAD speech start during agent audio is a committed "
        "barge-in (nothing resumes). Detection: from the sound's onset to the VAD's "
        "speech start.",
        "",
        md_table(
            ["sound", "n", "interrupted", "resumed", "detect p50 ms", "detect p99 ms"],
            [
                [
                    o["kind"],
                    o["n"],
                    o["interrupted"],
                    o["resumed"],
                    o["detect_p50_ms"],
                    o["detect_p99_ms"],
                ]
                for o in overlays
            ],
        ),
        "",
        "With the interruption policy (default settings): the agent pauses at the VAD's "
        "speech start (the same detection time), then the policy judges the speech's "
        "length and its local transcript; decided: onset to verdict.",
        "",
        md_table(
            [
                "sound",
                "n",
                "interrupted",
                "resumed",
                "detect p50 ms",
                "detect p99 ms",
                "decided p50 ms",
            ],
            [
                [
                    o["kind"],
                    o["n"],
                    o["interrupted"],
                    o["resumed"],
                    o["detect_p50_ms"],
                    o["detect_p99_ms"],
                    o["decided_p50_ms"],
                ]
                for o in policy
            ],
        ),
        "",
        "## (c) Cost with concurrent speakers (real time, one process)",
        "",
        "decision: wall time of `decide()` (worker thread, limiter queueing included).",
        "",
    ]
    lines.append(
        md_table(
            [
                "turn end",
                "speakers",
                "turns",
                "decisions",
                "decision p50 ms",
                "decision p99 ms",
                "loop lag p50 ms",
                "loop lag p99 ms",
                "loop lag max ms",
            ],
            [
                [
                    "semantic" if r["semantic"] else "VAD only",
                    r["speakers"],
                    r["turns_committed"],
                    r["decisions"],
                    r["decision_p50_ms"],
                    r["decision_p99_ms"],
                    r["loop_lag"]["p50_ms"],
                    r["loop_lag"]["p99_ms"],
                    r["loop_lag"]["max_ms"],
                ]
                for r in load
            ],
        )
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--load-seconds", type=float, default=30.0)
    args = parser.parse_args()

    started = time.perf_counter()
    turns = build_turns()
    overlays = build_overlays()
    print(
        f"corpus: {len(turns)} utterances, {len(overlays)} overlays "
        f"({time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    detector = CachedDetector(SmartTurnDetector())
    stt = CachedWords()
    rows = end_of_turn(turns, detector, stt)
    stt_ms = [seconds * 1000 for _, seconds in stt.cache.values()]
    summary = summarise_turns(rows)
    on_main = barge_in_on_main(overlays)
    overlay_summary = summarise_overlays(on_main)
    policy_rows = policy_outcomes(overlays)
    policy = summarise_overlays(policy_rows)
    load: list[dict[str, Any]] = []
    if args.load_seconds > 0:
        paused = [item for item in turns if item.kind == "paused"]
        for semantic in (False, True):
            timed = TimedDetector() if semantic else None
            load.append(trio.run(load_run, paused, timed, args.speakers, args.load_seconds))
            print(f"load run done: {load[-1]}", flush=True)
    decisions_ms = [s * 1000 for s in detector.seconds]
    data = {
        "eagerness": {
            name: {
                "threshold": EAGERNESS[name].threshold,
                "max_delay_ms": EAGERNESS[name].max_delay_ms,
            }
            for name in ("high", "medium", "low")
        },
        "end_of_turn": summary,
        "decision_ms": {
            "p50": pct(decisions_ms, 50),
            "p99": pct(decisions_ms, 99),
            "n": len(decisions_ms),
        },
        "transcribe_ms": {"p50": pct(stt_ms, 50), "p99": pct(stt_ms, 99), "n": len(stt_ms)},
        "overlays_on_main": overlay_summary,
        "overlays_with_policy": policy,
        "policy_rows": policy_rows,
        "load": load,
        "utterances": rows,
        "overlay_rows": on_main,
    }
    md = markdown(summary, decisions_ms, stt_ms, overlay_summary, policy, load)
    paths = write_results("turn_taking", data, md)
    png = plot(summary, rows, overlay_summary, policy)
    print(md)
    print(f"\nwrote {paths['json']}, {paths['md']}, {png}")


if __name__ == "__main__":
    main()
