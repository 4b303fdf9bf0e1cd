"""A user who goes quiet: one check-in, then a polite close (VOICEAGENT_USER_AWAY_TIMEOUT_S).

Real sockets and real (short) timeouts: the clock starts when the agent's audio has
presumably finished playing (its duration plus turns.PLAYBACK_SLACK_S after its first
byte), so each deadline is computed from the audio the client received.
"""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed

from tests.conftest import connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.session.turns import PLAYBACK_SLACK_S
from voiceagent.tts.scripted import ScriptedTTS

AWAY_S = 0.6
TOLERANCE_S = 0.35  # scheduling on a loaded machine


def away_services() -> object:
    model = ScriptedModel(default=ScriptedReply("Hello there."))
    settings = Settings(user_away_timeout_s=AWAY_S)
    return make_services(model, ScriptedTTS(), agent=front_desk, settings=settings)


async def test_the_agent_checks_in_once_then_closes_the_room() -> None:
    async with running_app(away_services()) as address, connect(address) as client:  # type: ignore[arg-type]
        await client.send(type="text", text="hi")
        await client.wait_for("audio_start")
        first_audio = trio.current_time()
        end = await client.wait_for("audio_end")
        expected = first_audio + end["audio_ms"] / 1000 + PLAYBACK_SLACK_S + AWAY_S
        check_in = await client.wait_for("text_done", where=lambda e: "still there" in e["text"])
        at = trio.current_time()
        assert abs(at - expected) < TOLERANCE_S, at - expected
        assert check_in["text"] == "Are you still there?"
        await client.wait_for("audio_start")
        second_audio = trio.current_time()
        end = await client.wait_for("audio_end")
        expected = second_audio + end["audio_ms"] / 1000 + PLAYBACK_SLACK_S + AWAY_S
        error = await client.wait_for("error", where=lambda e: e["code"] == "user_away")
        assert abs(trio.current_time() - expected) < TOLERANCE_S
        assert error["message"]
        try:
            with trio.fail_after(5):
                while True:
                    await client.receive()
        except ConnectionClosed as closed:
            assert closed.reason.code == 1000
            assert closed.reason.reason == "user away"


async def test_a_sign_of_life_after_the_check_in_keeps_the_room() -> None:
    async with running_app(away_services()) as address, connect(address) as client:  # type: ignore[arg-type]
        await client.send(type="text", text="hi")
        await client.wait_for("text_done", where=lambda e: "still there" in e["text"])
        await client.wait_for("audio_end")
        await client.send(type="text", text="yes, sorry")
        await client.wait_for("text_done", where=lambda e: e["text"] == "Hello there.")
        await client.wait_for("audio_end")
        # The clock started over: a check-in again, not a close.
        again = await client.wait_for("text_done", where=lambda e: "still there" in e["text"])
        assert again
        assert [e for e in client.of_type("error") if e["code"] == "user_away"] == []
