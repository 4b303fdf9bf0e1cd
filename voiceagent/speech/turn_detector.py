"""The semantic end-of-turn model: Smart Turn v3 (BSD-2) on onnxruntime, CPU only.

Rules of this module:

* The model file is never downloaded: it is the int8 ONNX file (~8.7 MB) that ships
  inside the `pipecat-ai` wheel. It is found through the installed distribution's file
  list, so pipecat itself is never imported and none of its dependencies is needed at
  run time (`pip install --no-deps pipecat-ai` is enough). No file -> no detector, and
  the offline pipeline ends turns on VAD silence alone.
* `predict()` is blocking (50-150 ms of one core: log-mel features of 8 s of audio in
  numpy, ~10 ms, then one ONNX run; benchmarks/turn_taking.py). onnxruntime releases
  the GIL while it runs, so `decide()` runs it in a Trio worker thread behind a
  `CapacityLimiter` (one decision per core at once): the event loop pays for the
  thread hand-off and for the GIL the feature extraction holds in short numpy steps.
  Cancelling `decide()` abandons the thread's result; the thread finishes on its own.
* One `SmartTurnDetector` per process serves every session (an ONNX session is safe to
  run from several threads at once).
* Errors: a missing or unreadable model raises `TurnModelUnavailable` at load; a failed
  decision raises `TurnModelError` (the caller then ends the turn as VAD-only would).
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trio

from voiceagent.speech.log_mel import SAMPLE_RATE, fit_to_chunk, log_mel

#: where the model lives inside the pipecat-ai wheel (newest version first)
_MODEL_FOLDER = "pipecat/audio/turn/smart_turn/data"
_MODEL_NAMES = ("smart-turn-v3.2-cpu.onnx", "smart-turn-v3.1-cpu.onnx", "smart-turn-v3.0.onnx")
#: probability above which the model means "the turn is complete" (the model's own cut)
COMPLETE_THRESHOLD = 0.5


class TurnModelUnavailable(RuntimeError):
    """The end-of-turn model file or onnxruntime is not installed."""


class TurnModelError(RuntimeError):
    """One decision failed (bad audio or an onnxruntime error)."""


@dataclass(frozen=True, slots=True)
class TurnVerdict:
    """One decision: is the speaker done, how sure, and what it cost."""

    complete: bool
    probability: float
    seconds: float


def find_turn_model() -> Path | None:
    """The Smart Turn ONNX file of the installed pipecat-ai, or None (nothing imported)."""
    try:
        dist = importlib.metadata.distribution("pipecat-ai")
    except importlib.metadata.PackageNotFoundError:
        return None
    for name in _MODEL_NAMES:
        path = Path(str(dist.locate_file(f"{_MODEL_FOLDER}/{name}")))
        if path.is_file():
            return path
    return None


class SmartTurnDetector:
    """Smart Turn v3 over 16 kHz PCM16 utterances; see the module docstring."""

    def __init__(
        self, model_path: Path | str | None = None, *, threshold: float = COMPLETE_THRESHOLD
    ) -> None:
        """Load the model (~150 ms, blocking: call from a worker thread at startup)."""
        path = Path(model_path) if model_path is not None else find_turn_model()
        if path is None or not path.is_file():
            raise TurnModelUnavailable(
                "the end-of-turn model is not installed (it ships in the pipecat-ai wheel: "
                "pip install --no-deps pipecat-ai)"
            )
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise TurnModelUnavailable("onnxruntime is not installed") from exc
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # One thread per decision: concurrency comes from several decisions at once, and
        # more intra-op threads only fight each other on a 2-core server.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session: Any = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise TurnModelUnavailable(f"cannot load the end-of-turn model {path}: {exc}") from exc
        self.path = path
        self.threshold = threshold
        self.limiter = trio.CapacityLimiter(2)
        self._lock = threading.Lock()
        self.decisions = 0

    def predict(self, pcm16: bytes) -> TurnVerdict:
        """Blocking: is the utterance in `pcm16` (16 kHz mono) a finished turn?"""
        if len(pcm16) % 2:
            raise TurnModelError("PCM16 audio must have an even byte count")
        started = time.perf_counter()
        audio = np.frombuffer(pcm16, dtype="<i2").astype(np.float32) / 32768.0
        features = log_mel(fit_to_chunk(audio))[np.newaxis]
        try:
            outputs = self._session.run(None, {"input_features": features})
        except Exception as exc:
            raise TurnModelError(f"end-of-turn model failed: {exc}") from exc
        probability = float(np.asarray(outputs[0]).reshape(-1)[0])
        with self._lock:
            self.decisions += 1
        return TurnVerdict(probability > self.threshold, probability, time.perf_counter() - started)

    async def decide(self, pcm16: bytes) -> TurnVerdict:
        """`predict()` in a worker thread, at most `limiter.total_tokens` at once."""
        return await trio.to_thread.run_sync(
            self.predict, pcm16, limiter=self.limiter, abandon_on_cancel=True
        )


def load_turn_detector() -> SmartTurnDetector | None:
    """The detector, or None when the model is not installed (VAD-only then)."""
    try:
        return SmartTurnDetector()
    except TurnModelUnavailable:
        return None


__all__ = [
    "COMPLETE_THRESHOLD",
    "SAMPLE_RATE",
    "SmartTurnDetector",
    "TurnModelError",
    "TurnModelUnavailable",
    "TurnVerdict",
    "find_turn_model",
    "load_turn_detector",
]
