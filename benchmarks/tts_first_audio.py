"""Time to first audio: streamed Cartesia TTS vs waiting for the whole response text.

For each simulated response (a model writing at `--tokens-per-s` after a fixed
`--first-token-ms`), measure the time from the FIRST text delta to the FIRST audio byte
at the client, in two designs against the same Cartesia emulator (a subprocess on
127.0.0.1, same pacing settings):

- streamed:   `CartesiaTTS` (deltas aggregated at phrase boundaries and pushed with
              `continue: true` as they arrive; one context per response, one socket);
- whole-text: wait until the response text is complete, then send one request with
              `continue: false` (the seed's design), on one warm socket too.

Both designs run on warm sockets (a warm-up response is not counted) and alternate turn
by turn over the same texts. Each response is cancelled once its first audio arrived
(only the first byte is measured), which keeps the run short.
Writes JSON, Markdown and a PNG to benchmarks/results/.

    python benchmarks/tts_first_audio.py --turns 20
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import trio
from trio_websocket import open_websocket_url

from voiceagent.tts.base import WordTiming
from voiceagent.tts.cartesia import CartesiaConfig, CartesiaTTS
from voiceagent.tts.cartesia import protocol as proto

RESPONSES = [
    "Sure, I can help with that. Your flight to Lisbon leaves at nine forty from gate twelve, "
    "and boarding starts thirty minutes before departure.",
    "You are allowed one carry-on bag and one personal item. Checked bags up to twenty-three "
    "kilos are included in your fare.",
    "I have moved you to seat fourteen A, a window seat near the front. Is there anything "
    "else I can do for you today?",
    "Let me check that for you. The earliest flight tomorrow morning still has three seats "
    "left, departing at six fifteen.",
    "Of course. Pets under eight kilos can travel in the cabin in an approved carrier, and "
    "the fee is fifty euros each way.",
    "Your refund has been requested. It usually takes five to seven business days to appear "
    "on your card statement.",
]
VOICE_ID = "a0e99841-438c-4a64-b679-ae501e7d6091"


def tokens_of(text: str) -> list[str]:
    """Rough model tokens: words, long words split in two, spaces kept in front."""
    out: list[str] = []
    for piece in re.findall(r"\s*\S+", text):
        core = piece.strip()
        if len(core) > 7:
            cut = len(piece) - len(core) // 2
            out += [piece[:cut], piece[cut:]]
        else:
            out.append(piece)
    return out


class FirstAudioSink:
    """Notes the first audio byte, then cancels the response (barge-in style) to save time."""

    def __init__(self, scope: trio.CancelScope) -> None:
        self.first_audio_at: float | None = None
        self.scope = scope

    async def audio(self, pcm: bytes) -> None:
        if self.first_audio_at is None:
            self.first_audio_at = trio.current_time()
            self.scope.cancel()

    def words(self, timings: Sequence[WordTiming]) -> None:
        pass


async def write_like_a_model(
    text: str,
    send: trio.MemorySendChannel[str],
    args: argparse.Namespace,
    first: list[float],
) -> None:
    """Send tokens with model-like timing; appends the first delta's time to `first`."""
    async with send:
        await trio.sleep(args.first_token_s)
        start = trio.current_time()
        for i, token in enumerate(tokens_of(text)):
            await trio.sleep_until(start + i / args.tokens_per_s)
            if i == 0:
                first.append(trio.current_time())
            await send.send(token)


async def streamed_turn(conn, text: str, args: argparse.Namespace, n: int) -> float:
    send, receive = trio.open_memory_channel[str](256)
    first: list[float] = []

    with trio.CancelScope() as scope:
        sink = FirstAudioSink(scope)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_like_a_model, text, send, args, first)
            await conn.synthesize(receive, sink, response_id=f"bench_{n}")
    assert sink.first_audio_at is not None
    return sink.first_audio_at - first[0]


async def whole_text_turn(ws, text: str, args: argparse.Namespace, n: int) -> float:
    send, receive = trio.open_memory_channel[str](256)
    settings = proto.GenerationSettings(model_id="sonic-3", voice_id=VOICE_ID)
    first: list[float] = []
    first_audio: float | None = None
    context_id = f"whole_{n}"

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_like_a_model, text, send, args, first)
        full = "".join([delta async for delta in receive])
        request = proto.generation_request(settings, context_id, full, more=False)
        await ws.send_message(proto.encode(request))
        while True:
            response = proto.parse_response(await ws.get_message())
            if getattr(response, "context_id", None) != context_id:
                continue
            if isinstance(response, proto.AudioChunk):
                first_audio = trio.current_time()
                await ws.send_message(proto.encode(proto.cancel_request(context_id)))
                break
            if isinstance(response, proto.Done | proto.ErrorResponse):
                break
    assert first_audio is not None
    return first_audio - first[0]


def start_emulator(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable,
        "-m",
        "voiceagent.emulators",
        "cartesia",
        "--port",
        "0",
        "--realtime-factor",
        str(args.rtf),
        "--first-chunk-ms",
        str(args.first_chunk_ms),
        "--idle-close-s",
        "0",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"ws://\S+", line)
    if not match:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, match.group(0)


async def run(args: argparse.Namespace, url: str) -> dict[str, list[float]]:
    config = CartesiaConfig(api_key="bench", voice_id=VOICE_ID, url=url)
    results: dict[str, list[float]] = {"streamed": [], "whole_text": []}
    headers = [(k.encode(), v.encode()) for k, v in config.handshake_headers()]
    with trio.fail_after(args.time_limit_s):
        async with (
            CartesiaTTS(config).connect() as conn,
            open_websocket_url(url, extra_headers=headers) as ws,
        ):
            # Warm both sockets; not counted.
            await streamed_turn(conn, RESPONSES[0], args, -1)
            await whole_text_turn(ws, RESPONSES[0], args, -1)
            for n in range(args.turns):
                text = RESPONSES[n % len(RESPONSES)]
                order = ("streamed", "whole_text") if n % 2 == 0 else ("whole_text", "streamed")
                for design in order:
                    if design == "streamed":
                        value = await streamed_turn(conn, text, args, n)
                    else:
                        value = await whole_text_turn(ws, text, args, n)
                    results[design].append(value * 1000)
    return results


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered), 1),
        "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1),
        "min_ms": round(ordered[0], 1),
        "max_ms": round(ordered[-1], 1),
    }


def write_reports(args: argparse.Namespace, results: dict[str, list[float]]) -> dict:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {design: summarize(values) for design, values in results.items()}
    mean_tokens = statistics.mean(len(tokens_of(t)) for t in RESPONSES)
    ratio = summary["whole_text"]["median_ms"] / max(summary["streamed"]["median_ms"], 1e-9)
    report = {
        "benchmark": "tts_first_audio",
        "what": "ms from the first text delta to the first audio byte at the client",
        "settings": {
            "turns": args.turns,
            "tokens_per_s": args.tokens_per_s,
            "first_token_ms": args.first_token_s * 1000,
            "emulator_realtime_factor": args.rtf,
            "emulator_first_chunk_ms": args.first_chunk_ms,
            "mean_response_tokens": round(mean_tokens, 1),
        },
        "summary": summary,
        "ratio_whole_over_streamed_median": round(ratio, 2),
        "samples_ms": {k: [round(v, 1) for v in vs] for k, vs in results.items()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (out / "tts_first_audio.json").write_text(json.dumps(report, indent=2))
    lines = [
        "# TTS time to first audio: streamed vs whole-text",
        "",
        f"Model writing at {args.tokens_per_s:g} tokens/s; Cartesia emulator at real-time "
        f"factor {args.rtf:g} with {args.first_chunk_ms:g} ms first-chunk latency; "
        f"{args.turns} responses per design, warm sockets, loopback. Responses average "
        f"{mean_tokens:.0f} tokens ({mean_tokens / args.tokens_per_s * 1000:.0f} ms of writing):"
        " the whole-text figure grows with response length, the streamed one does not.",
        "",
        "| design | median ms | p90 ms | min ms | max ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for design, s in summary.items():
        lines.append(
            f"| {design} | {s['median_ms']} | {s['p90_ms']} | {s['min_ms']} | {s['max_ms']} |"
        )
    lines += ["", f"Whole-text / streamed (medians): **{ratio:.1f}x**", ""]
    (out / "tts_first_audio.md").write_text("\n".join(lines))
    plot(out / "tts_first_audio.png", results, ratio)
    return report


def plot(path: Path, results: dict[str, list[float]], ratio: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    names = list(results)
    ax.boxplot([results[n] for n in names], tick_labels=names)
    for i, name in enumerate(names, start=1):
        ax.scatter([i] * len(results[name]), results[name], s=10, alpha=0.5)
    ax.set_ylabel("first text delta -> first audio byte (ms)")
    ax.set_title(f"Time to first audio (whole/streamed median = {ratio:.1f}x)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--turns", type=int, default=20, help="responses per design (max 200)")
    p.add_argument("--tokens-per-s", type=float, default=40.0)
    p.add_argument("--first-token-ms", type=float, default=300.0)
    p.add_argument("--rtf", type=float, default=0.25, help="emulator real-time factor")
    p.add_argument("--first-chunk-ms", type=float, default=90.0, help="emulator latency")
    p.add_argument("--time-limit-s", type=float, default=300.0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = p.parse_args(argv)
    args.turns = max(1, min(args.turns, 200))
    args.first_token_s = args.first_token_ms / 1000
    proc, url = start_emulator(args)
    try:
        results = trio.run(run, args, url)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
    report = write_reports(args, results)
    print(
        json.dumps(
            {"summary": report["summary"], "ratio": report["ratio_whole_over_streamed_median"]},
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
