"""The interruption policy as pure code, the outbox's pause, and the Realtime wire shape."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.testing

from tests.session.test_outbox import Wire, outbox
from voiceagent.config import ConfigError, Settings
from voiceagent.graph import Agent
from voiceagent.interruption import InterruptionSettings, is_backchannel, words_of
from voiceagent.models.realtime.config import RealtimeConfig
from voiceagent.models.realtime.protocol import RealtimeProtocol, turn_detection


@pytest.mark.parametrize(
    ("transcript", "speech_ms", "reason"),
    [
        ("", 900, "no_words"),
        ("Stop, wait, I need something else.", 150, "too_short"),
        ("Yeah.", 700, "backchannel"),
        ("Mm-hmm, okay, right.", 1200, "backchannel"),
        ("uh huh", 700, "backchannel"),
        ("oh yea", 700, "backchannel"),  # how the offline recogniser spells a short "yeah"
        ("Stop, wait, I need something else.", 1400, None),
        ("No.", 600, None),
        ("Okay, but what about my bag?", 1400, None),
    ],
)
def test_what_is_not_an_interruption(transcript: str, speech_ms: int, reason: str | None) -> None:
    assert InterruptionSettings().judge(transcript, speech_ms) == reason


def test_vietnamese_backchannels() -> None:
    vi = InterruptionSettings(language="vi")
    for said in ("Dạ vâng.", "Đúng rồi!", "ừ", "vâng vâng", "Ờ, hiểu rồi."):
        assert vi.judge(said, 900) == "backchannel", said
    assert vi.judge("Không, dừng lại đã.", 900) is None


def test_words_minimum_and_custom_phrases() -> None:
    strict = InterruptionSettings(min_interruption_words=3)
    assert strict.judge("No, stop.", 900) == "too_few_words"
    assert strict.judge("No, stop now.", 900) is None
    custom = InterruptionSettings(backchannels=frozenset({"Roger that"}))
    assert custom.judge("roger that", 900) == "backchannel"
    assert custom.judge("yeah", 900) is None


def test_backchannel_cover_is_whole_words_only() -> None:
    phrases = InterruptionSettings().phrases()
    assert is_backchannel(words_of("yeah yeah okay"), phrases)
    assert not is_backchannel(words_of("yeah, book it"), phrases)
    assert not is_backchannel([], phrases)


def test_partial_transcripts_settle_only_past_any_backchannel() -> None:
    policy = InterruptionSettings()
    assert not policy.clearly_interrupting("yeah okay right")
    assert policy.clearly_interrupting("stop wait I need")


def test_agent_overrides() -> None:
    base = InterruptionSettings()
    agent = Agent(name="Careful", interruption={"min_interruption_words": 2})
    assert agent.interruption_settings(base).min_interruption_words == 2
    assert Agent(name="Plain").interruption_settings(base) is base
    with pytest.raises(ValueError, match="unknown interruption settings"):
        Agent(name="Typo", interruption={"min_words": 2})


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "VOICEAGENT_RESUME_FALSE_INTERRUPTION": "false",
            "VOICEAGENT_MIN_INTERRUPTION_MS": "300",
            "VOICEAGENT_MIN_INTERRUPTION_WORDS": "2",
            "VOICEAGENT_FALSE_INTERRUPTION_TIMEOUT_MS": "1500",
            "VOICEAGENT_USER_AWAY_TIMEOUT_S": "30",
        }
    )
    policy = InterruptionSettings.from_settings(settings)
    assert (policy.resume_false_interruption, policy.min_interruption_ms) == (False, 300)
    assert (policy.min_interruption_words, policy.false_interruption_timeout_ms) == (2, 1500)
    assert settings.user_away_timeout_s == 30.0
    with pytest.raises(ConfigError, match="VOICEAGENT_MIN_INTERRUPTION_MS"):
        Settings.from_env({"VOICEAGENT_MIN_INTERRUPTION_MS": "soon"})


async def test_a_paused_outbox_holds_audio_then_sends_it_first(
    autojump_clock: trio.testing.MockClock,
) -> None:
    box, _ = outbox(capacity=16)
    wire = Wire()
    box.begin_epoch(1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(box.run_writer, wire.send)
        await box.put(b"a1", epoch=1)
        await trio.sleep(0.1)
        box.pause("pause")
        await box.put(b"a2", epoch=1)
        await box.put("transcript")  # not audio: goes out while paused
        await box.put(b"a3", epoch=1)
        await trio.sleep(0.1)
        assert wire.sent == [b"a1", "pause", "transcript"]
        box.resume("resume")
        await trio.sleep(0.1)
        assert wire.sent[3:] == ["resume", b"a2", b"a3"]
        box.pause("pause again")
        await box.put(b"a4", epoch=1)
        await trio.sleep(0.1)
        box.interrupt("interrupted")  # the held audio is never sent
        await box.put(b"a5", epoch=1)
        await trio.sleep(0.1)
        box.close()
    assert wire.sent[6:] == ["pause again", "interrupted"]


async def test_a_paused_outbox_lets_the_voice_wait(autojump_clock: trio.testing.MockClock) -> None:
    box, _ = outbox()
    box.pause("pause")
    with trio.move_on_after(5) as waited:
        await box.wait_unpaused()
    assert waited.cancelled_caught
    box.resume("resume")
    with trio.fail_after(1):
        await box.wait_unpaused()


def test_realtime_holds_vad_turns_and_answers_or_deletes_them() -> None:
    config = RealtimeConfig(model="m", hold_turns=True)
    td = turn_detection(config, "ga")
    assert td is not None and (td["create_response"], td["interrupt_response"]) == (False, False)
    protocol = RealtimeProtocol(config, "ga", "text")
    committed = orjson.dumps({"type": "input_audio_buffer.committed", "item_id": "item_1"})
    protocol.receive(committed)
    assert protocol.answer("item_9", True) == []  # not held: nothing to do
    [delete] = protocol.answer("item_1", False)
    assert orjson.loads(delete)["type"] == "conversation.item.delete"
    assert protocol.answer("item_1", True) == []  # answered once
    protocol.receive(orjson.dumps({"type": "input_audio_buffer.committed", "item_id": "item_2"}))
    [create] = protocol.answer("item_2", True)
    assert orjson.loads(create)["type"] == "response.create"
    # A manual commit already asks for its response itself: it is never held.
    protocol.commit_audio()
    protocol.receive(orjson.dumps({"type": "input_audio_buffer.committed", "item_id": "item_3"}))
    assert protocol.answer("item_3", True) == []


def test_realtime_without_hold_keeps_the_configured_flags() -> None:
    td = turn_detection(RealtimeConfig(model="m"), "ga")
    assert td is not None and (td["create_response"], td["interrupt_response"]) == (True, True)
