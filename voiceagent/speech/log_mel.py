"""Whisper-style log-mel features, in numpy, for the Smart Turn end-of-turn model.

The Smart Turn v3 model was trained on the features of Hugging Face's
`WhisperFeatureExtractor(chunk_length=8)` with `do_normalize=True`: 16 kHz audio padded
(at the end) or cut to 8 s, normalised to zero mean and unit variance, a centred
(reflect-padded) STFT with a 400-sample periodic Hann window and a 160-sample hop, the
power spectrum through 80 Slaney mel filters, log10 floored at 1e-10, the last frame
dropped, clamped to 8 decades below the peak and scaled as (x + 4) / 4. This module
computes exactly that (tests/speech/test_turn_detector.py compares it with the
reference when one is installed), so the turn model needs neither transformers nor
torch.

Pure functions, no state; ~6 ms for 8 s of audio on one core.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 8
N_SAMPLES = SAMPLE_RATE * CHUNK_SECONDS  # 128 000
N_FFT = 400
HOP = 160
N_MELS = 80
N_FRAMES = N_SAMPLES // HOP  # 800


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    return np.where(
        log_region, 15.0 + np.log(np.maximum(freq, 1e-12) / 1000.0) * (27.0 / np.log(6.4)), mels
    )


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    freq = 200.0 * mels / 3.0
    return np.where(mels >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0)), freq)


def mel_filters() -> np.ndarray:
    """The (201, 80) Slaney-normalised triangular filter bank, 0 Hz to 8 kHz."""
    n_bins = N_FFT // 2 + 1
    mel_points = np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), N_MELS + 2)
    filter_hz = _mel_to_hz(mel_points)
    fft_hz = np.linspace(0, SAMPLE_RATE // 2, n_bins)
    widths = np.diff(filter_hz)
    slopes = filter_hz[np.newaxis, :] - fft_hz[:, np.newaxis]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    # Slaney area normalisation: every filter has the same area.
    filters *= 2.0 / (filter_hz[2 : N_MELS + 2] - filter_hz[:N_MELS])
    return filters


_FILTERS = mel_filters()
_WINDOW = np.hanning(N_FFT + 1)[:-1]  # periodic Hann, as torch.hann_window


def fit_to_chunk(audio: np.ndarray) -> np.ndarray:
    """The last 8 s of `audio`, zero-padded at the *start* when shorter.

    Smart Turn looks at the end of the utterance: the model was trained with the speech
    right-aligned, so the padding goes before it (the feature extractor would pad after).
    """
    if audio.size >= N_SAMPLES:
        return audio[-N_SAMPLES:]
    return np.pad(audio, (N_SAMPLES - audio.size, 0))


def log_mel(audio: np.ndarray) -> np.ndarray:
    """(80, 800) float32 features of 16 kHz float audio in [-1, 1] (8 s, see above)."""
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio, got shape {audio.shape}")
    x = np.asarray(audio, dtype=np.float32)
    if x.size < N_SAMPLES:
        x = np.pad(x, (0, N_SAMPLES - x.size))
    x = x[:N_SAMPLES]
    # Normalised in float32 before the float64 STFT, as the reference does.
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2  # (801, 201)
    mel = np.maximum(1e-10, power @ _FILTERS).T  # (80, 801)
    spec = np.log10(mel)[:, :-1]
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)
