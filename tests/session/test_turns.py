"""Turns and responses on their own: epochs, audibility, barge-in, what was heard."""

from __future__ import annotations

import trio
import trio.testing

from voiceagent.pcm import BYTES_PER_MS
from voiceagent.session.turns import PLAYBACK_SLACK_S, Turns
from voiceagent.tts.base import WordTiming


async def test_responses_begin_in_the_current_epoch(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns()
    first = turns.begin("r1", "Front Desk")
    second = turns.begin("r2", "Front Desk")  # r1 is still being written: kept
    assert (first.epoch, second.epoch) == (0, 0)
    assert turns.current is second
    assert turns.get("r1") is first
    assert turns.get("nope") is None


async def test_a_response_is_audible_until_its_playback_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns()
    response = turns.begin("r1", "a")
    assert response.audible(trio.current_time())  # the model is still writing
    response.model_done = response.speech_done = True
    assert not response.audible(trio.current_time())  # done, and it said nothing
    response.first_audio_at = trio.current_time()
    response.audio_bytes = 1000 * BYTES_PER_MS  # one second of audio
    end = response.first_audio_at + 1.0 + PLAYBACK_SLACK_S
    assert response.audible(end - 0.01)
    assert not response.audible(end)
    assert turns.audible(end - 0.01) is response
    assert turns.audible(end) is None


async def test_finished_responses_are_forgotten_at_the_next_begin(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns()
    old = turns.begin("r1", "a")
    old.model_done = old.speech_done = True  # no audio: not audible any more
    turns.begin("r2", "a")
    assert turns.get("r1") is None


async def test_interrupt_ends_the_epoch_of_audible_responses_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns()
    first = turns.begin("r1", "a")
    second = turns.begin("r2", "a")
    speaking = turns.interrupt(trio.current_time())
    assert speaking == [first, second]
    assert first.interrupted and second.interrupted
    assert turns.epoch == 1
    third = turns.begin("r3", "a")
    assert third.epoch == 1
    assert turns.interrupt(trio.current_time()) == [third]  # the cut-off ones are gone
    assert turns.epoch == 2
    # Nothing audible: interrupting is a no-op and the epoch stays.
    assert turns.interrupt(trio.current_time()) == []
    assert turns.epoch == 2


async def test_interrupt_after_playback_ended_is_a_no_op(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns()
    response = turns.begin("r1", "a")
    response.model_done = response.speech_done = True
    response.first_audio_at = trio.current_time()
    response.audio_bytes = 500 * BYTES_PER_MS
    await trio.sleep(0.5 + PLAYBACK_SLACK_S + 0.1)
    assert turns.interrupt(trio.current_time()) == []
    assert not response.interrupted
    assert turns.epoch == 0


async def test_heard_is_clamped_to_the_audio_sent(autojump_clock: trio.testing.MockClock) -> None:
    turns = Turns()
    response = turns.begin("r1", "a")
    assert response.estimated_played_ms(trio.current_time()) == 0  # no audio yet
    response.first_audio_at = trio.current_time()
    response.audio_bytes = 800 * BYTES_PER_MS
    await trio.sleep(0.3)
    assert response.estimated_played_ms(trio.current_time()) == 300  # by the wall clock
    await trio.sleep(5.0)
    assert response.estimated_played_ms(trio.current_time()) == 800  # never past the audio
    response.played_ms = 250  # the client's acks win over the wall clock
    assert response.estimated_played_ms(trio.current_time()) == 250
    response.played_ms = 5000  # ... but are clamped to what was sent
    assert response.estimated_played_ms(trio.current_time()) == 800


async def test_heard_text_follows_word_timings_or_the_share_played(
    autojump_clock: trio.testing.MockClock,
) -> None:
    turns = Turns()
    response = turns.begin("r1", "a")
    response.item_id = "item_1"
    response.text = "one two three four"
    assert response.heard_text(1000) == ""  # no audio sent: nothing was heard
    response.audio_bytes = 1000 * BYTES_PER_MS
    # No timings: in proportion to the audio played, ending at a word boundary.
    assert response.heard_text(500) == "one two"
    assert response.heard_text(1000) == "one two three four"
    assert response.heard_text(100) == ""
    response.words = [WordTiming("one", 0.0, 0.2), WordTiming("two", 0.25, 0.5)]
    response.words += [WordTiming("three", 0.6, 0.8), WordTiming("four", 0.9, 1.0)]
    assert response.heard_text(610) == "one two three"
    response.first_audio_at = trio.current_time()
    response.played_ms = 300
    heard = response.heard(trio.current_time())
    assert (heard.response_id, heard.item_id, heard.audio_ms) == ("r1", "item_1", 300)
    assert heard.text == "one two"
