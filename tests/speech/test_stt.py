"""Speech recognition in worker processes: words come back, bad audio is a typed error."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest
import soxr
import trio

from tests.speech.sounds import RATE, silence
from voiceagent.interruption import BACKCHANNELS, is_backchannel, words_of
from voiceagent.speech.stt import MAX_UTTERANCE_S, Recognizer, SpeechRecognitionError
from voiceagent.speech.stt_worker import SILENCE_MARGIN_MS, trim_silence


async def test_a_spoken_sentence_is_transcribed(spoken_question: bytes) -> None:
    transcript = await Recognizer(max_concurrency=1).transcribe(spoken_question, RATE)
    words = transcript.lower().split()
    assert "baggage" in words
    assert "allowance" in words


async def test_16khz_audio_is_accepted(spoken_question: bytes) -> None:
    samples = np.frombuffer(spoken_question, dtype="<i2")
    pcm16k = soxr.resample(samples, RATE, 16_000).astype("<i2").tobytes()
    transcript = await Recognizer(max_concurrency=1).transcribe(pcm16k, 16_000)
    assert "baggage" in transcript.lower().split()


async def test_more_utterances_than_workers_all_get_transcripts(spoken_question: bytes) -> None:
    recognizer = Recognizer(max_concurrency=1)
    results: list[str] = []

    async def one() -> None:
        results.append(await recognizer.transcribe(spoken_question, RATE))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert len(results) == 3
    assert all("baggage" in text.lower() for text in results)


async def test_silence_has_no_words() -> None:
    assert await Recognizer(max_concurrency=1).transcribe(silence(1.0), RATE) == ""


async def test_odd_byte_count_is_a_typed_error() -> None:
    with pytest.raises(SpeechRecognitionError, match="even"):
        await Recognizer().transcribe(b"\x00" * 4801, RATE)


async def test_over_long_audio_is_refused_before_any_work() -> None:
    with pytest.raises(SpeechRecognitionError, match="longer"):
        await Recognizer().transcribe(silence(MAX_UTTERANCE_S + 1), RATE)


async def test_unknown_sample_rate_is_refused() -> None:
    with pytest.raises(SpeechRecognitionError, match="sample rate"):
        await Recognizer().transcribe(silence(1.0), 12_345)


async def test_cancelling_a_transcription_kills_its_worker(spoken_question: bytes) -> None:
    recognizer = Recognizer(max_concurrency=1)
    await recognizer.warm_up()
    (worker_before,) = recognizer.worker_pids
    with trio.move_on_after(0.2) as scope:
        await recognizer.transcribe(spoken_question * 8, RATE)  # seconds of decoding
    assert scope.cancelled_caught
    # The decode was not left running: its worker is gone.
    assert recognizer.worker_pids == []
    # A fresh worker takes over on the next call.
    assert "baggage" in (await recognizer.transcribe(spoken_question, RATE)).lower()
    assert recognizer.worker_pids not in ([], [worker_before])
    await recognizer.aclose()
    assert recognizer.worker_pids == []


async def test_warm_up_starts_the_workers_once() -> None:
    recognizer = Recognizer(max_concurrency=2)
    await recognizer.warm_up()
    started = recognizer.worker_pids
    assert len(started) == 2
    await recognizer.warm_up()  # already warm: no more processes
    assert recognizer.worker_pids == started
    await recognizer.aclose()


YEAH_FROM_CHROMIUM = Path(__file__).parent / "audio" / "yeah_from_chromium.wav"


async def test_a_backchannel_padded_with_digital_silence_stays_a_backchannel() -> None:
    # A "Yeah." as Chromium captured it (its audio processing clips it), followed by
    # the digital silence a VAD segment ends with. Undecoded, pocketsphinx heard
    # "yeah and" in most of these cuts: no longer a backchannel, so a "yeah" over the
    # agent cut it off instead of letting it play on.
    with wave.open(str(YEAH_FROM_CHROMIUM)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    recognizer = Recognizer(max_concurrency=1)
    heard = set()
    for start_ms in (0, 100, 200, 300):
        for end_ms in (1200, 1400, 1600):
            cut = samples[start_ms * rate // 1000 : end_ms * rate // 1000]
            heard.add(await recognizer.transcribe(cut.tobytes(), rate))
    await recognizer.aclose()
    assert all(is_backchannel(words_of(text), BACKCHANNELS["en"]) for text in heard), heard


def test_trimming_keeps_the_speech_and_a_margin_of_silence() -> None:
    speech = (np.sin(np.arange(8_000) / 5) * 10_000).astype("<i2")  # 0.5 s at 16 kHz
    padded = np.concatenate([silence_16k(1.0), speech, silence_16k(2.0)])
    trimmed = trim_silence(padded)
    margin = SILENCE_MARGIN_MS * 16
    assert len(trimmed) == len(speech) + 2 * margin
    assert np.array_equal(trimmed[margin:-margin], speech)
    noisy = np.random.default_rng(1).normal(0, 300, 16_000).astype("<i2")  # a noisy room
    assert len(trim_silence(noisy)) == len(noisy)
    assert len(trim_silence(silence_16k(1.0))) == 16_000  # nothing voiced: left alone


def silence_16k(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * 16_000), dtype="<i2")
