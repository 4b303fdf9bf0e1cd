"""The offline model's turn gate: model verdicts, model errors and the wall-clock backstop."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from voiceagent.models.offline_turns import TurnGate, vad_config_for
from voiceagent.speech.turn_detector import TurnModelError, TurnVerdict
from voiceagent.speech.turn_end import EAGERNESS, EARLY_PAUSE_MS
from voiceagent.speech.vad import SpeechPause, SpeechStop, VadConfig


class FakeDetector:
    """Answers with a fixed probability (or raises) after `delay` seconds."""

    def __init__(self, probability: float | None, delay: float = 0.05) -> None:
        self.probability = probability
        self.delay = delay
        self.asked: list[bytes] = []

    async def decide(self, pcm16: bytes) -> TurnVerdict:
        self.asked.append(pcm16)
        await trio.sleep(self.delay)
        if self.probability is None:
            raise TurnModelError("broken model")
        return TurnVerdict(self.probability > 0.5, self.probability, self.delay)


async def gate_run(
    detector: Any, script: Any, within: float = 10
) -> list[tuple[float, SpeechStop]]:
    """Run `script` against a gate; the commits it made within `within` seconds."""
    commits: list[tuple[float, SpeechStop]] = []

    async def commit(turn: SpeechStop) -> None:
        commits.append((trio.current_time(), turn))

    with trio.move_on_after(within):
        async with trio.open_nursery() as nursery:
            gate = TurnGate(
                detector,
                eagerness=EAGERNESS["auto"],
                max_turn_ms=30_000,
                nursery=nursery,
                commit=commit,
            )
            await script(gate)
    return commits


@pytest.mark.parametrize("probability, committed", [(0.95, True), (0.2, False)])
async def test_the_verdict_decides_whether_a_vad_stop_ends_the_turn(
    probability: float, committed: bool
) -> None:
    detector = FakeDetector(probability)

    async def script(gate: TurnGate) -> None:
        gate.speech_paused(SpeechPause(0, 800, b"abcd"))
        await trio.sleep(0.3)
        await gate.speech_stopped(SpeechStop(0, 1000, b"abcd"))
        await gate.audio_fed(1000)
        await trio.sleep(0.1)
        await gate.audio_fed(3999)  # just under the max delay of input audio

    commits = await gate_run(detector, script, within=1)
    assert detector.asked == [b"abcd"]  # asked once, at the pause
    assert bool(commits) is committed


async def test_a_model_error_ends_the_turn_as_vad_only_would() -> None:
    async def script(gate: TurnGate) -> None:
        await gate.speech_stopped(SpeechStop(0, 1000, b"ab"))
        await trio.sleep(0.2)

    commits = await gate_run(FakeDetector(None), script)
    assert [turn.audio for _, turn in commits] == [b"ab"]


async def test_the_backstop_ends_a_held_turn_when_audio_stops_coming(
    mock_clock: trio.testing.MockClock,
) -> None:
    mock_clock.autojump_threshold = 0.01

    async def script(gate: TurnGate) -> None:
        await gate.speech_stopped(SpeechStop(0, 1000, b"ab"))  # then no more audio at all

    started = trio.current_time()
    commits = await gate_run(FakeDetector(0.1), script)
    assert len(commits) == 1
    # max delay (3 s for "auto") + 1 s of slack, after the model's 50 ms.
    assert commits[0][0] - started == pytest.approx(4.05, abs=0.01)


def test_the_vad_reports_early_pauses_only_with_the_model() -> None:
    assert vad_config_for(VadConfig(), semantic=False).pause_ms is None
    assert vad_config_for(VadConfig(), semantic=True).pause_ms == EARLY_PAUSE_MS
    # A VAD silence too short to ask earlier: the model is asked at the stop.
    assert vad_config_for(VadConfig(silence_duration_ms=250), semantic=True).pause_ms is None
