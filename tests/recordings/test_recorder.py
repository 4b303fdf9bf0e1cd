"""The recorder as a state machine on a synthetic clock: a 30-minute session."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from voiceagent.pcm import SAMPLE_RATE
from voiceagent.session.recorder import Recorder

FRAME_MS = 20
SILENCE = bytes(2 * SAMPLE_RATE * FRAME_MS // 1000)


def sound(duration_ms: int) -> bytes:
    """Constant loud samples: onsets and ends show to the sample (a tone crosses zero)."""
    return np.full(duration_ms * SAMPLE_RATE // 1000, 8000, dtype="<i2").tobytes()


class Onsets:
    """A recording writer that keeps no audio: where each channel's sound starts and
    ends, the blocks' offsets, and the header's final size."""

    def __init__(self) -> None:
        self.loud: list[list[int]] = [[], []]  # per channel: positions of sound, runs
        self.offsets: list[int] = []
        self.finished: int | None = None
        self._in_sound = [False, False]

    def open(self, path: Path) -> object:
        return path

    def block(self, file: object, offset: int, data: bytes) -> None:
        self.offsets.append(offset)
        samples = np.frombuffer(data, dtype="<i2").reshape(-1, 2)
        first = offset // 4
        for channel in (0, 1):
            loud = np.abs(samples[:, channel].astype(np.int32)) > 100
            changes = np.flatnonzero(np.diff(np.concatenate(([self._in_sound[channel]], loud))))
            self.loud[channel].extend(int(first + i) for i in changes)
            self._in_sound[channel] = bool(loud[-1]) if loud.size else self._in_sound[channel]

    def finish(self, file: object, data_bytes: int) -> None:
        self.finished = data_bytes


def ms(samples: int) -> float:
    return samples * 1000 / SAMPLE_RATE


def test_thirty_minutes_stay_aligned_with_bounded_memory() -> None:
    writer = Onsets()
    recorder = Recorder(writer, Path("x.wav"), start=100.0)  # type: ignore[arg-type]
    now = 100.0
    peak = 0
    expected_user: list[float] = []  # when each spoken burst began (ms from start)
    expected_agent: list[tuple[float, float]] = []  # (start, end) of agent audio heard
    total_ms = 30 * 60 * 1000
    t_ms = 0
    turn = 0
    while t_ms < total_ms:
        # Every 10 s: the user speaks 1 s (frames arrive with up to 15 ms of jitter),
        # the agent answers with 3 s of audio queued at once (faster than real time),
        # and every other answer is cut by a barge-in after 1.2 s of it was heard.
        cycle = t_ms % 10_000
        jitter = 0.015 if (t_ms // FRAME_MS) % 7 == 3 else 0.0
        frame = sound(FRAME_MS) if cycle < 1000 else SILENCE
        if cycle == 0:
            expected_user.append(t_ms)
        # Every third cycle the page stops sending for 2 s (a muted microphone).
        if not (5000 <= cycle < 7000 and turn % 3 == 0):
            recorder.user(frame, now + FRAME_MS / 1000 + jitter)
        if cycle == 2000:
            response = f"r{turn}"
            recorder.agent(response, sound(3000), now)
            if turn % 2:
                expected_agent.append((t_ms, t_ms + 1200))
            else:
                expected_agent.append((t_ms, t_ms + 3000))
        if cycle == 3200 and turn % 2:
            recorder.cut(f"r{turn}", 1200)
        if cycle == 9980:
            turn += 1
        peak = max(peak, recorder.buffered_bytes)
        now += FRAME_MS / 1000
        t_ms += FRAME_MS
    recorder.close(now)
    # Memory: each channel holds the lag (1 s) and a block (0.2 s); the agent's also
    # the reply queued ahead of playback (3 s). Not a byte more after 30 minutes.
    assert peak <= 2 * SAMPLE_RATE * (2 * (1.0 + 0.2) + 3.0)
    assert writer.finished == total_ms * SAMPLE_RATE // 1000 * 4
    assert writer.offsets == sorted(writer.offsets)
    user_starts = [ms(p) for p in writer.loud[0][0::2]]
    agent_runs = list(zip(writer.loud[1][0::2], writer.loud[1][1::2], strict=True))
    assert len(user_starts) == len(expected_user) == 180
    assert len(agent_runs) == len(expected_agent) == 180
    # Aligned within 20 ms, at the start and after 30 minutes alike.
    for got, want in zip(user_starts, expected_user, strict=True):
        assert abs(got - want) <= 20, (got, want)
    for (start, end), (want_start, want_end) in zip(agent_runs, expected_agent, strict=True):
        assert abs(ms(start) - want_start) <= 20 and abs(ms(end) - want_end) <= 20
