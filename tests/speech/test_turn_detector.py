"""The semantic end-of-turn model on speech synthesised here, and its fallbacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr
import trio

from voiceagent.models.offline_turns import TurnModel
from voiceagent.speech import turn_detector
from voiceagent.speech.log_mel import N_FRAMES, N_MELS, N_SAMPLES, fit_to_chunk, log_mel
from voiceagent.speech.turn_detector import (
    SmartTurnDetector,
    TurnModelError,
    TurnModelUnavailable,
    find_turn_model,
)
from voiceagent.speech.voices import load_voice

needs_model = pytest.mark.skipif(
    find_turn_model() is None, reason="the end-of-turn model (pipecat-ai) is not installed"
)


def utterance_16k(text: str, *, piper: bool = True, tail_s: float = 0.25) -> bytes:
    """`text` spoken by a local voice, as the VAD hands it over: 16 kHz with a short tail."""
    voice = load_voice("en", prefer_piper=piper)
    # Steady: a sampled rendering of the cut sentence is judged finished once in a while.
    pcm = np.frombuffer(voice.synthesize(text, steady=True), dtype="<i2")
    audio = soxr.resample(pcm, 24_000, 16_000)
    audio = np.concatenate((audio, np.zeros(int(16_000 * tail_s), dtype=np.int16)))
    return audio.astype("<i2").tobytes()


@pytest.fixture(scope="module")
def detector() -> SmartTurnDetector:
    return SmartTurnDetector()


@needs_model
@pytest.mark.parametrize("piper", [True, False], ids=["piper", "espeak-ng"])
def test_a_complete_sentence_is_finished_and_a_cut_one_is_not(
    detector: SmartTurnDetector, piper: bool
) -> None:
    complete = detector.predict(utterance_16k("What is the baggage allowance?", piper=piper))
    cut = detector.predict(utterance_16k("I would like to book a flight to", piper=piper))
    assert complete.complete and complete.probability > 0.5
    assert not cut.complete and cut.probability < 0.5
    assert complete.seconds < 2.0


@needs_model
async def test_decisions_run_off_the_event_loop(detector: SmartTurnDetector) -> None:
    audio = utterance_16k("What is the baggage allowance?")
    before = detector.decisions
    ticks = 0

    async def count_ticks() -> None:
        nonlocal ticks
        while True:
            await trio.sleep(0.005)
            ticks += 1

    async with trio.open_nursery() as nursery:
        nursery.start_soon(count_ticks)
        verdicts = [await detector.decide(audio) for _ in range(3)]
        nursery.cancel_scope.cancel()
    assert all(verdict.complete for verdict in verdicts)
    assert detector.decisions == before + 3
    assert ticks >= 3  # the loop kept running while the model worked


@needs_model
def test_bad_audio_is_a_clear_error(detector: SmartTurnDetector) -> None:
    with pytest.raises(TurnModelError, match="even byte count"):
        detector.predict(b"\x00")


def test_the_features_match_the_reference_extractor() -> None:
    reference = pytest.importorskip(
        "pipecat.audio.turn.smart_turn._whisper_features"
    ).compute_whisper_log_mel_features
    rng = np.random.default_rng(3)
    for seconds in (0.5, 3.0, 9.0):
        audio = fit_to_chunk((rng.standard_normal(int(16_000 * seconds)) * 0.1).astype("f4"))
        assert audio.size == N_SAMPLES
        ours = log_mel(audio)
        assert ours.shape == (N_MELS, N_FRAMES) and ours.dtype == np.float32
        np.testing.assert_allclose(ours, reference(audio), atol=1e-5)


def test_fit_to_chunk_keeps_the_end_and_pads_the_start() -> None:
    short = np.ones(10, dtype=np.float32)
    fitted = fit_to_chunk(short)
    assert fitted.size == N_SAMPLES and fitted[-10:].all() and not fitted[:-10].any()
    long = np.arange(N_SAMPLES + 5, dtype=np.float32)
    assert fit_to_chunk(long)[0] == 5.0


def test_a_missing_model_is_reported(tmp_path: Path) -> None:
    with pytest.raises(TurnModelUnavailable, match="pipecat-ai"):
        SmartTurnDetector(tmp_path / "nothing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(TurnModelUnavailable, match="cannot load"):
        SmartTurnDetector(broken)


async def test_without_the_model_the_pipeline_falls_back_to_vad_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(turn_detector, "find_turn_model", lambda: None)
    assert turn_detector.load_turn_detector() is None
    assert await TurnModel(enabled=True).get() is None
    assert await TurnModel(enabled=False).get() is None
