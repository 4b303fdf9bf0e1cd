"""The demo's audio code (static/audio/*.js), run in Chromium without a server.

The page's modules are served from the static/ folder by a loopback HTTP server, and
fed known signals: the resampler the capture worklet uses, the client VAD that decides
barge-in, and the playback worklet rendered offline.
"""

from __future__ import annotations

import functools
import http.server
import threading
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.browser import browser_skip_reason

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_skip_reason() is not None, reason=browser_skip_reason() or ""),
]

STATIC = Path(__file__).resolve().parents[2] / "static"


@pytest.fixture(scope="module")
def static_origin() -> Iterator[str]:
    """A loopback HTTP server for static/ (at /static/), on a free port."""
    handler = functools.partial(_StaticHandler, directory=str(STATIC.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


class _StaticHandler(http.server.SimpleHTTPRequestHandler):
    def translate_path(self, path: str) -> str:
        # Only static/ is served; "/" is an empty page to run modules from.
        if not path.startswith("/static/"):
            return str(STATIC / "missing")
        return super().translate_path(path)

    def do_GET(self) -> None:
        if self.path == "/":
            body = b"<!doctype html><title>dsp</title>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def page(browser: Any, static_origin: str) -> Iterator[Any]:
    """A blank page on localhost (a secure context: AudioWorklet needs one)."""
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(f"{static_origin}/")
    yield pg
    context.close()


RESAMPLE_TONE = """async ([inRate, freq, seconds]) => {
    const { StreamResampler } = await import('/static/audio/resampler.js');
    const r = new StreamResampler(inRate, 24000);
    const out = [];
    const block = new Float32Array(128);
    const dst = new Float32Array(r.maxOutput(128));
    let n = 0;
    for (let b = 0; b < Math.floor(inRate * seconds / 128); b++) {
        for (let i = 0; i < 128; i++, n++) {
            block[i] = 0.5 * Math.sin(2 * Math.PI * freq * n / inRate);
        }
        const k = r.process(block, dst);
        for (let i = 0; i < k; i++) out.push(dst[i]);
    }
    return out;
}"""


def tone_level(samples: np.ndarray, freq: float, rate: int = 24_000) -> tuple[float, float]:
    """(amplitude at `freq`, RMS of everything else) of the steady part of `samples`."""
    steady = samples[len(samples) // 4 :]
    t = np.arange(len(steady)) / rate
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, steady, rcond=None)
    residual = steady - basis @ coef
    return float(np.hypot(*coef)), float(np.sqrt(np.mean(residual**2)))


@pytest.mark.parametrize("in_rate", [48_000, 44_100, 16_000])
def test_capture_resampler_keeps_a_speech_tone_intact(page: Any, in_rate: int) -> None:
    out = np.array(page.evaluate(RESAMPLE_TONE, [in_rate, 1000, 1.0]))
    assert abs(len(out) - 24_000) < 24_000 * 128 / in_rate + 40  # 1 s in, 1 s out
    amplitude, rest = tone_level(out, 1000)
    assert amplitude == pytest.approx(0.5, rel=0.02)
    assert rest < 0.5 * 10 ** (-50 / 20)  # distortion and noise 50 dB below the tone


def test_capture_resampler_removes_what_24khz_cannot_carry(page: Any) -> None:
    # 18 kHz at 48 kHz would alias to 6 kHz, in the middle of the speech band.
    out = np.array(page.evaluate(RESAMPLE_TONE, [48_000, 18_000, 1.0]))
    steady = out[len(out) // 4 :]
    assert np.sqrt(np.mean(steady**2)) < 0.5 * 10 ** (-40 / 20)


def read_wav_24k(path: Path) -> np.ndarray:
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), np.int16) / 32768.0
    t_out = np.arange(int(len(pcm) * 24_000 / rate)) / 24_000
    return np.interp(t_out, np.arange(len(pcm)) / rate, pcm)


RUN_VAD = """async ([meanSquares, agentSpeaking]) => {
    const { EnergyVad, WINDOW_SAMPLES } = await import('/static/audio/vad.js');
    const vad = new EnergyVad();
    vad.agentSpeaking = agentSpeaking;
    const changes = [];
    meanSquares.forEach((ms, w) => {
        const t = (w + 1) * WINDOW_SAMPLES / 24000;
        const change = vad.pushWindow(ms, t);
        if (change) changes.push({ ...change, reportedAt: t });
    });
    return changes;
}"""


def windows(samples: np.ndarray) -> list[float]:
    """Mean square of each 10 ms window: what the capture worklet feeds its VAD."""
    frames = samples[: len(samples) // 240 * 240].reshape(-1, 240)
    return [float(v) for v in np.mean(frames**2, axis=1)]


def speech_bounds(samples: np.ndarray) -> tuple[float, float]:
    """First and last 10 ms window within 30 dB of the loudest one, in seconds."""
    db = 10 * np.log10(np.array(windows(samples)) + 1e-12)
    loud = np.flatnonzero(db > db.max() - 30)
    return loud[0] * 0.01, (loud[-1] + 1) * 0.01


def test_client_vad_reports_speech_start_and_end_of_the_spoken_question(
    page: Any, question_wav: Path
) -> None:
    samples = read_wav_24k(question_wav)
    onset, end = speech_bounds(samples)
    changes = page.evaluate(RUN_VAD, [windows(samples), False])
    assert [c["speaking"] for c in changes] == [True, False]
    start, stop = changes
    # Reported within 150 ms of the real onset, and stamped with the onset itself.
    assert 0 <= start["reportedAt"] - onset < 0.15
    assert abs(start["t"] - onset) < 0.05
    # The end is stamped at the last voiced window (the e2e figure starts there).
    assert abs(stop["t"] - end) < 0.1
    print(f"client VAD onset reported {1000 * (start['reportedAt'] - onset):.0f} ms after onset")


def test_client_vad_guard_ignores_echo_of_the_agent_but_not_the_user(
    page: Any, question_wav: Path
) -> None:
    speech = read_wav_24k(question_wav)
    echo = speech * 10 ** (-25 / 20)  # what is left of the agent's voice after AEC
    assert page.evaluate(RUN_VAD, [windows(echo), True]) == []
    # Without the guard the same echo would have read as the user: the guard matters.
    assert page.evaluate(RUN_VAD, [windows(echo), False])[0]["speaking"] is True
    # The user talking over the agent at full voice still barges in.
    assert page.evaluate(RUN_VAD, [windows(speech), True])[0]["speaking"] is True


RENDER_PLAYBACK = """async (steps) => {
    // steps: [[time_s, [message, ...]], ...]; a message's `pcm` is a list of int16.
    const ctx = new OfflineAudioContext(1, 48000, 48000);
    await ctx.audioWorklet.addModule('/static/audio/playback-worklet.js');
    const node = new AudioWorkletNode(ctx, 'voiceagent-playback', {
        numberOfInputs: 0, outputChannelCount: [1] });
    node.connect(ctx.destination);
    const messages = [];
    node.port.onmessage = (e) => messages.push(e.data);
    // Messages reach the worklet between render quanta: post them while suspended.
    for (const [at, batch] of steps) {
        ctx.suspend(at).then(() => {
            for (const m of batch) {
                if (m.pcm) node.port.postMessage({ ...m, pcm: new Int16Array(m.pcm).buffer });
                else node.port.postMessage(m);
            }
            setTimeout(() => ctx.resume(), 50);
        });
    }
    const buffer = await ctx.startRendering();
    await new Promise((r) => setTimeout(r, 50));
    return { out: Array.from(buffer.getChannelData(0)), messages };
}"""
QUANTUM_S = 128 / 48_000  # suspend() lands on render-quantum boundaries


def one_response(pcm: list[int]) -> list[Any]:
    return [
        {"type": "start", "rid": "resp_1"},
        {"type": "chunk", "pcm": pcm},
        {"type": "end", "rid": "resp_1"},
    ]


def reply_tone(seconds: float) -> list[int]:
    t = np.arange(int(24_000 * seconds)) / 24_000
    return (0.25 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).tolist()


def test_playback_plays_a_response_at_the_device_rate_and_reports_it(page: Any) -> None:
    result = page.evaluate(RENDER_PLAYBACK, [[QUANTUM_S, one_response(reply_tone(0.5))]])
    out = np.array(result["out"])
    audible = np.flatnonzero(np.abs(out) > 0.01)
    assert (audible[-1] - audible[0]) / 48_000 == pytest.approx(0.5, abs=0.01)
    amplitude, _ = tone_level(out[audible[0] : audible[-1]], 440, rate=48_000)
    assert amplitude == pytest.approx(0.25, rel=0.03)
    ended = [m for m in result["messages"] if m["type"] == "ended"]
    assert ended == [{"type": "ended", "rid": "resp_1", "playedMs": 500}]


def test_playback_flush_silences_output_and_reports_what_was_played(page: Any) -> None:
    flush_at = 95 * QUANTUM_S  # ~0.25 s into a 0.8 s response that began at one quantum
    steps = [[QUANTUM_S, one_response(reply_tone(0.8))], [flush_at, [{"type": "flush"}]]]
    result = page.evaluate(RENDER_PLAYBACK, steps)
    out = np.array(result["out"])
    after = out[int(flush_at * 48_000) + 128 :]
    assert np.max(np.abs(after)) == 0.0, "audio after the flush (beyond the fade)"
    flushed = [m for m in result["messages"] if m["type"] == "flushed"]
    assert len(flushed) == 1 and flushed[0]["rid"] == "resp_1"
    assert flushed[0]["playedMs"] == pytest.approx(1000 * (flush_at - QUANTUM_S), abs=10)
    assert not [m for m in result["messages"] if m["type"] == "ended"]


def test_playback_waits_for_its_jitter_buffer_and_fades_on_underrun(page: Any) -> None:
    tone = reply_tone(0.08)
    first, second = tone[: 24 * 40], tone[24 * 40 :]  # 40 ms, then 40 ms more
    resume_at = 24 * QUANTUM_S  # 64 ms
    steps = [
        [QUANTUM_S, [{"type": "start", "rid": "resp_1"}, {"type": "chunk", "pcm": first}]],
        [resume_at, [{"type": "chunk", "pcm": second}]],
    ]
    result = page.evaluate(RENDER_PLAYBACK, steps)
    out = np.abs(np.array(result["out"]))
    # 40 ms is under the 60 ms jitter buffer: nothing plays until more arrives.
    assert out[: int(resume_at * 48_000)].max() == 0.0
    audible = np.flatnonzero(out > 0.005)
    assert audible[0] >= int(resume_at * 48_000)
    # The segment stays open (no `end`), so running dry is an underrun, faded out: the
    # last quantum that sounds gets quieter towards its end instead of stopping dead.
    statuses = [m for m in result["messages"] if m["type"] == "status"]
    assert statuses[-1]["underruns"] == 1
    assert statuses[-1]["playedSamples"] == len(tone)
    fade_end = (audible[-1] // 128 + 1) * 128  # the faded quantum is the last that sounds
    assert out[fade_end - 256 : fade_end - 128].max() > 0.2  # full level before it
    assert out[fade_end - 20 : fade_end].max() < 0.05  # gain <= 20/128 at its end
    assert out[fade_end:].max() == 0.0
