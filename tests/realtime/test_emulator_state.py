"""The emulator's pure parts: energy VAD, conversation bounds, session rendering."""

from __future__ import annotations

import numpy as np
import pytest

from tests.realtime.conformance import check_event
from voiceagent.conversation import ConversationItem
from voiceagent.emulators.realtime_items import Conversation, WireItem, item_from_client
from voiceagent.emulators.realtime_parts import recognizer_transcriber, synthetic_voice, tokens
from voiceagent.emulators.realtime_session import SessionState
from voiceagent.emulators.realtime_vad import EnergyVad


def tone(ms: int, level: float) -> bytes:
    t = np.arange(ms * 24) / 24000
    return (level * np.sin(2 * np.pi * 250 * t)).astype("<i2").tobytes()


def test_vad_finds_speech_start_and_stop_in_input_time():
    vad = EnergyVad(threshold=0.5, silence_ms=300)
    decisions = vad.feed(bytes(200 * 48) + tone(500, 8000) + bytes(400 * 48))
    assert decisions == [("start", 200), ("stop", 1000)]


@pytest.mark.parametrize(("threshold", "heard"), [(0.2, True), (0.9, False)])
def test_vad_threshold_decides_what_counts_as_speech(threshold, heard):
    vad = EnergyVad(threshold=threshold, silence_ms=300)
    decisions = vad.feed(tone(300, 300))  # a quiet voice, about -40 dBFS
    assert bool(decisions) is heard


def test_vad_accepts_odd_chunk_sizes():
    vad = EnergyVad(threshold=0.5, silence_ms=200)
    audio = tone(400, 8000) + bytes(300 * 48)
    decisions = []
    for offset in range(0, len(audio), 333):  # not a multiple of a frame, nor of a sample
        decisions += vad.feed(audio[offset : offset + 333])
    assert [kind for kind, _ in decisions] == ["start", "stop"]


def test_semantic_vad_eagerness_sets_the_silence():
    session = SessionState(id="sess_1", model="m")
    session.apply_ga(
        {
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": "high"}}},
        }
    )
    assert session.silence_ms == 250
    session.apply_ga({"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    assert session.turn_detection is None


def test_rendered_sessions_conform_in_both_shapes():
    session = SessionState(id="sess_1", model="my-deployment")
    session.apply_beta(
        {
            "modalities": ["text"],
            "input_audio_transcription": {"model": "whisper-1"},
            "tools": [{"type": "function", "name": "f", "parameters": {}}],
        }
    )
    check_event("ga", "server", _event("session.updated", session.render_ga()))
    check_event("beta", "server", _event("session.updated", session.render_beta()))


def _event(kind: str, session: dict) -> bytes:
    import orjson

    return orjson.dumps({"type": kind, "event_id": "e1", "session": session})


def test_conversation_is_bounded_and_keeps_order():
    conversation = Conversation(max_items=3)
    for n in range(5):
        conversation.insert(WireItem(ConversationItem(id=f"i{n}", role="user")))
    assert [i.id for i in conversation.history()] == ["i2", "i3", "i4"]
    conversation.insert(WireItem(ConversationItem(id="x", role="assistant")), "i2", at_end=False)
    assert [i.id for i in conversation.history()] == ["x", "i3", "i4"]
    assert conversation.previous_of("i3") == "x"


def test_conversation_drops_the_oldest_text_beyond_its_budget():
    conversation = Conversation(max_chars=100)
    for n in range(5):
        conversation.insert(
            item_from_client(
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "x" * 40}],
                },
                f"i{n}",
            )
        )
    assert [i.id for i in conversation.history()] == ["i3", "i4"]


def test_tokens_join_back_and_synthetic_voice_has_the_asked_length():
    text = "Hello  there, friend."
    assert "".join(tokens(text)) == text
    assert len(synthetic_voice(1500)) == 1500 * 48


def test_the_offline_recognizer_is_found_when_installed():
    pytest.importorskip("pocketsphinx")
    assert recognizer_transcriber() is not None
