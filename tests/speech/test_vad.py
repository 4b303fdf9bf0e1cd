"""Server VAD: turns on speech, stays quiet on silence and noise, bounded memory."""

from __future__ import annotations

import pytest

from tests.speech.sounds import RATE, frames, silence, white_noise
from voiceagent.speech.vad import (
    VAD_SAMPLE_RATE,
    SpeechPause,
    SpeechStart,
    SpeechStop,
    VadConfig,
    VadInputError,
    VoiceActivityDetector,
)


def run(pcm: bytes, config: VadConfig | None = None, frame_ms: int = 20) -> list:
    vad = VoiceActivityDetector(config)
    events = []
    for frame in frames(pcm, frame_ms):
        events.extend(vad.feed(frame))
    return events


def test_speech_gives_one_start_and_one_stop_around_it(spoken_question: bytes) -> None:
    speech_ms = len(spoken_question) * 1000 // (RATE * 2)
    events = run(silence(1.0) + spoken_question + silence(1.0))
    assert [type(event) for event in events] == [SpeechStart, SpeechStop]
    start, stop = events
    # The start includes the 300 ms prefix padding before the onset at ~1000 ms.
    assert 600 <= start.audio_start_ms <= 1000
    assert stop.audio_start_ms == start.audio_start_ms
    # The stop comes after the speech plus the 500 ms of closing silence.
    assert stop.audio_end_ms >= 1000 + speech_ms + 400
    # The utterance audio holds the padding and all the speech, not the whole silence.
    utterance_ms = len(stop.audio) * 1000 // (VAD_SAMPLE_RATE * 2)
    assert speech_ms <= utterance_ms <= speech_ms + 900
    assert not stop.truncated


def test_silence_gives_no_events() -> None:
    assert run(silence(5.0)) == []


def test_white_noise_gives_no_events() -> None:
    assert run(white_noise(5.0)) == []


def test_a_click_is_not_speech() -> None:
    click = white_noise(0.03, amplitude=20000)
    assert run(silence(0.5) + click + silence(1.0)) == []


def test_events_do_not_depend_on_how_the_audio_is_cut(spoken_question: bytes) -> None:
    pcm = silence(0.7) + spoken_question + silence(1.0)
    by_20ms = run(pcm, frame_ms=20)
    by_odd_pieces = run(pcm, frame_ms=130)
    assert [type(e) for e in by_20ms] == [type(e) for e in by_odd_pieces]
    assert abs(by_20ms[0].audio_start_ms - by_odd_pieces[0].audio_start_ms) <= 32


def test_two_utterances_give_two_turns(spoken_question: bytes) -> None:
    events = run(silence(0.5) + spoken_question + silence(1.0) + spoken_question + silence(1.0))
    assert [type(e) for e in events] == [SpeechStart, SpeechStop, SpeechStart, SpeechStop]
    assert events[2].audio_start_ms > events[1].audio_end_ms - 500


def test_long_speech_is_cut_at_max_utterance(spoken_question: bytes) -> None:
    config = VadConfig(max_utterance_ms=1000)
    events = run(silence(0.5) + spoken_question, config)
    stops = [e for e in events if isinstance(e, SpeechStop)]
    assert stops and stops[0].truncated
    assert len(stops[0].audio) <= (1000 + 64) * VAD_SAMPLE_RATE * 2 // 1000


def test_end_utterance_commits_speech_in_progress(spoken_question: bytes) -> None:
    vad = VoiceActivityDetector()
    assert vad.end_utterance() is None  # nobody speaking: nothing to commit
    events = vad.feed(silence(0.5) + spoken_question[: len(spoken_question) // 4 * 2])
    assert [type(e) for e in events] == [SpeechStart]
    stop = vad.end_utterance()
    assert stop is not None and stop.audio
    assert not vad.speaking


def test_odd_byte_count_is_a_typed_error() -> None:
    vad = VoiceActivityDetector()
    with pytest.raises(VadInputError):
        vad.feed(b"\x00\x01\x02")


@pytest.mark.parametrize(
    "bad",
    [
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"silence_duration_ms": -1},
        {"max_utterance_ms": 10},
    ],
)
def test_bad_settings_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        VadConfig(**bad)


def test_a_reused_model_starts_fresh(spoken_question: bytes) -> None:
    pcm = silence(0.7) + spoken_question + silence(1.0)
    fresh = run(pcm)
    first = VoiceActivityDetector()
    first.feed(silence(0.5) + spoken_question[: len(spoken_question) // 4 * 2])
    assert first.speaking
    first.close()  # mid-utterance: its model goes back to the pool
    second = VoiceActivityDetector()
    events = []
    for frame in frames(pcm):
        events.extend(second.feed(frame))
    assert [(type(e), e.audio_start_ms) for e in events] == [
        (type(e), e.audio_start_ms) for e in fresh
    ]
    with pytest.raises(RuntimeError):
        first.feed(silence(0.1))


def test_a_pause_comes_before_the_stop_with_the_same_audio(spoken_question: bytes) -> None:
    config = VadConfig(pause_ms=260)
    events = run(silence(1.0) + spoken_question + silence(1.0), config)
    assert [type(event) for event in events] == [SpeechStart, SpeechPause, SpeechStop]
    _, pause, stop = events
    assert pause.audio_start_ms == stop.audio_start_ms
    assert 150 <= stop.audio_end_ms - pause.audio_end_ms <= 260  # 500 - 260 ms, in windows
    assert pause.audio == stop.audio  # the model is asked about what the turn will carry
    # Without pause_ms, no pause events (VAD-only stays as it was).
    assert SpeechPause not in {type(event) for event in run(spoken_question + silence(1.0))}


@pytest.mark.parametrize("pause_ms", [0, 500, 900])
def test_a_pause_must_come_before_the_silence_that_ends_speech(pause_ms: int) -> None:
    with pytest.raises(ValueError, match="pause_ms"):
        VadConfig(pause_ms=pause_ms)
