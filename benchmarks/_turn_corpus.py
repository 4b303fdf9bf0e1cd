"""The turn-taking corpus, synthesised here with the local voices (no recordings).

Speakers: the piper `joe` voice at three speeds/noise settings and espeak-ng with three
voices at three rates. Every item is 24 kHz PCM16 with its ground truth in ms:

* paused: a phone number, a booking code, a list... read in chunks with 500-900 ms
  silences between them (the pauses a VAD takes for the end of a turn). Each is
  spoken as one sentence with commas and its comma pauses are stretched, so the voice
  keeps a mid-sentence intonation at each pause;
* complete: a finished sentence, no designed pause;
* overlay: a sound the user makes while the agent talks (a barge-in phrase, a
  backchannel, a cough, a noise burst), as the microphone sends it after echo
  cancellation: the user's sound alone.

Deterministic for a given seed (piper's noise is seeded through numpy's global RNG
where piper uses it; the pause lengths through `seed`).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from voiceagent.speech.voices import _ESPEAK_LOCK, _Espeak, _shared, _to_output_rate, load_voice

RATE = 24_000
LEAD_S = 0.5
_ESPEAK_RATE = 1  # espeakRATE in espeak_PARAMETER

PAUSED = (
    ("My phone number is", "five five five,", "two one three,", "four four seven nine."),
    ("My booking code is", "X R seven,", "four B two."),
    ("I need", "two checked bags,", "a window seat,", "and a vegetarian meal."),
    ("The flight number is", "V A", "one two three."),
    ("My card ends in", "four four", "one two."),
    ("I want to fly from Boston", "to Denver", "on the twelfth of May."),
    ("The passengers are", "Anna,", "Ben,", "and Carla."),
    ("My frequent flyer number is", "nine one", "seven seven", "three zero."),
)
COMPLETE = (
    "What is the baggage allowance?",
    "I want to change my flight to Tuesday.",
    "Can I bring my dog on the plane?",
    "Thank you, that is all.",
    "Please cancel my booking.",
    "Is there wifi on board?",
    "My phone number is five five five, two one three, four four seven nine.",
    "I would like a window seat please.",
)
BARGE_INS = (
    "Stop, wait, I need something else.",
    "No no, that is wrong.",
    "Hold on, can I change the date?",
)
BACKCHANNELS = ("yeah", "uh-huh", "mm-hmm", "okay", "right")


@dataclass(frozen=True)
class Speaker:
    name: str
    engine: str  # "piper" or "espeak"
    settings: dict[str, Any] = field(default_factory=dict)


SPEAKERS = (
    Speaker("piper-1.0", "piper", {"length_scale": 1.0, "noise_scale": 0.667}),
    Speaker("piper-fast", "piper", {"length_scale": 0.85, "noise_scale": 0.5}),
    Speaker("piper-slow", "piper", {"length_scale": 1.2, "noise_scale": 0.8}),
    Speaker("espeak-us-175", "espeak", {"voice": "en-us", "rate": 175}),
    Speaker("espeak-rp-150", "espeak", {"voice": "en-gb-x-rp", "rate": 150}),
    Speaker("espeak-us-f3-200", "espeak", {"voice": "en-us+f3", "rate": 200}),
)


def speak(speaker: Speaker, text: str) -> np.ndarray:
    """`text` in `speaker`'s voice: int16 samples at 24 kHz."""
    if speaker.engine == "piper":
        from piper.config import SynthesisConfig

        voice = load_voice("en")
        inner = voice._voice  # type: ignore[attr-defined]  # the benchmark varies its settings
        chunks = [
            chunk.audio_int16_array
            for chunk in inner.synthesize(text, syn_config=SynthesisConfig(**speaker.settings))
        ]
        pcm = _to_output_rate(np.concatenate(chunks).astype(np.float32), voice.sample_rate)  # type: ignore[attr-defined]
    else:
        engine = _shared("espeak", _Espeak)
        with _ESPEAK_LOCK:
            engine._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            engine._lib.espeak_SetParameter(_ESPEAK_RATE, int(speaker.settings["rate"]), 0)
        pcm = engine.synthesize(speaker.settings["voice"], text)
    return np.frombuffer(pcm, dtype="<i2")


def speech_bounds(samples: np.ndarray, threshold: int = 300) -> tuple[int, int]:
    """First and last sample louder than `threshold` (the voices pad with silence)."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        return 0, 0
    return int(loud[0]), int(loud[-1]) + 1


@dataclass
class Utterance:
    kind: str  # "paused" or "complete"
    speaker: str
    text: str
    pcm: bytes
    #: where the speech really ends (ms from the start of `pcm`)
    true_end_ms: float
    #: where each designed pause starts and ends (ms)
    pauses_ms: list[tuple[float, float]]


def _ms(samples: int) -> float:
    return samples * 1000 / RATE


def quiet_gaps(samples: np.ndarray, min_ms: int = 60) -> list[tuple[int, int]]:
    """(start, end) samples of the silent stretches inside speech (10 ms frames)."""
    frame = RATE // 100
    usable = samples[: samples.size // frame * frame].astype(np.float64)
    rms = np.sqrt((usable.reshape(-1, frame) ** 2).mean(axis=1))
    gaps, run = [], 0
    for index, quiet in enumerate(np.append(rms < 150, False)):
        if quiet:
            run += 1
            continue
        if run * 10 >= min_ms:
            gaps.append(((index - run) * frame, index * frame))
        run = 0
    return gaps


def _paused(
    speaker: Speaker,
    chunks: tuple[str, ...],
    rng: np.random.Generator,
    lead: np.ndarray,
    trail: np.ndarray,
) -> Utterance:
    """The chunks spoken as *one* sentence with commas, so each pause keeps the voice's
    continuation intonation (a chunk spoken alone would end like a finished sentence),
    then the comma pauses (the longest quiet stretches) stretched to 500-900 ms."""
    text = ", ".join(chunk.rstrip(",.") for chunk in chunks) + "."
    spoken = speak(speaker, text)
    start, end = speech_bounds(spoken)
    spoken = spoken[start:end]
    gaps = sorted(sorted(quiet_gaps(spoken), key=lambda g: g[0] - g[1])[: len(chunks) - 1])
    parts: list[np.ndarray] = [lead]
    pauses: list[tuple[float, float]] = []
    cursor, taken = lead.size, 0
    for gap_start, gap_end in gaps:
        parts.append(spoken[taken:gap_start])
        cursor += gap_start - taken
        silence = np.zeros(int(RATE * rng.uniform(0.5, 0.9)), dtype=np.int16)
        pauses.append((_ms(cursor), _ms(cursor + silence.size)))
        parts.append(silence)
        cursor += silence.size
        taken = gap_end
    parts.append(spoken[taken:])
    cursor += spoken.size - taken
    parts.append(trail)
    return Utterance(
        "paused", speaker.name, text, np.concatenate(parts).tobytes(), _ms(cursor), pauses
    )


def build_turns(seed: int = 7, trail_s: float = 7.0) -> list[Utterance]:
    """48 paused + 48 complete utterances (8 texts x 6 speakers each), each followed by
    `trail_s` of silence: longer than the VAD silence plus the longest max delay (6 s),
    so every turn ends inside its own audio."""
    rng = np.random.default_rng(seed)
    lead = np.zeros(int(RATE * LEAD_S), dtype=np.int16)
    trail = np.zeros(int(RATE * trail_s), dtype=np.int16)
    items: list[Utterance] = []
    for speaker in SPEAKERS:
        for chunks in PAUSED:
            items.append(_paused(speaker, chunks, rng, lead, trail))
        for text in COMPLETE:
            spoken = speak(speaker, text)
            start, end = speech_bounds(spoken)
            spoken = spoken[start:end]
            pcm = np.concatenate((lead, spoken, trail)).tobytes()
            items.append(
                Utterance("complete", speaker.name, text, pcm, _ms(lead.size + spoken.size), [])
            )
    return items


@dataclass
class Overlay:
    kind: str  # "barge_in", "backchannel", "cough", "noise"
    label: str
    pcm: bytes
    onset_ms: float
    duration_ms: float

    @property
    def should_interrupt(self) -> bool:
        return self.kind == "barge_in"


def _cough(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A cough-like burst: noise through a crude low-pass with a fast attack, slow decay."""
    n = int(RATE * seconds)
    noise = rng.standard_normal(n)
    kernel = np.ones(12) / 12  # ~2 kHz low-pass at 24 kHz
    shaped = np.convolve(noise, kernel, mode="same")
    envelope = np.minimum(np.linspace(0, 1, n) * 20, 1) * np.exp(-np.linspace(0, 5, n))
    return np.clip(shaped * envelope * 20_000, -32768, 32767).astype(np.int16)


def build_overlays(seed: int = 11) -> list[Overlay]:
    """12 barge-ins, 20 backchannels, 8 coughs, 8 noise bursts (150-400 ms)."""
    rng = np.random.default_rng(seed)
    lead = np.zeros(int(RATE * 1.0), dtype=np.int16)
    trail = np.zeros(int(RATE * 2.0), dtype=np.int16)
    overlays: list[Overlay] = []

    def add(kind: str, label: str, sound: np.ndarray) -> None:
        pcm = np.concatenate((lead, sound, trail)).tobytes()
        overlays.append(Overlay(kind, label, pcm, _ms(lead.size), _ms(sound.size)))

    for speaker in SPEAKERS[:4]:
        for text in BARGE_INS:
            spoken = speak(speaker, text)
            start, end = speech_bounds(spoken)
            add("barge_in", f"{speaker.name}: {text}", spoken[start:end])
        for word in BACKCHANNELS:
            spoken = speak(speaker, word)
            start, end = speech_bounds(spoken)
            add("backchannel", f"{speaker.name}: {word}", spoken[start:end])
    for index in range(8):
        add("cough", f"cough {index}", _cough(rng, rng.uniform(0.25, 0.45)))
    for index in range(8):
        seconds = (0.15, 0.2, 0.3, 0.4)[index % 4]
        burst = rng.standard_normal(int(RATE * seconds)) * rng.uniform(2000, 6000)
        add(
            "noise",
            f"noise {int(seconds * 1000)} ms",
            np.clip(burst, -32768, 32767).astype(np.int16),
        )
    return overlays
