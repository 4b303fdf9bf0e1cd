"""Barge-in: after `audio_interrupted`, not one byte of the old response reaches the client."""

from __future__ import annotations

import pytest
import trio

from tests.conftest import Client, connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.conversation import Heard
from voiceagent.metrics import REGISTRY
from voiceagent.models.scripted import ScriptedModel, ScriptedReply, tone
from voiceagent.tts.scripted import ScriptedTTS

LONG_REPLY = " ".join(f"word{i}" for i in range(60))


def slow_voice_services() -> tuple[ScriptedModel, ScriptedTTS, object]:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), delta_delay=0.005)
    tts = ScriptedTTS(realtime_factor=0.25)  # 4x faster than real time: still mid-speech
    return model, tts, make_services(model, tts, agent=front_desk)


def count(histogram: str) -> float:
    return REGISTRY.get_sample_value(f"{histogram}_count") or 0.0


def assert_no_stale_audio(client: Client, interrupted_id: str) -> None:
    """No audio frame of `interrupted_id` after its `audio_interrupted` event."""
    cut = client.order.index(("event", "audio_interrupted"))
    stale = [
        owner for kind, owner in client.order[cut:] if kind == "audio" and owner == interrupted_id
    ]
    assert stale == []


@pytest.mark.parametrize("message", ["interrupt", "client_vad_speech_start"])
async def test_interrupt_mid_tts_sends_zero_stale_bytes(message: str) -> None:
    model, tts, services = slow_voice_services()
    relayed, interrupts = (
        count("voiceagent_audio_relay_seconds"),
        count("voiceagent_interrupt_seconds"),
    )
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="tell me a long story")
        start = await client.wait_for("audio_start")
        with trio.fail_after(5):
            while len(client.audio) < 5:
                await client.receive()
        await client.send(type=message)
        interrupted = await client.wait_for("audio_interrupted")
        assert interrupted["response_id"] == start["response_id"]
        await client.drain(1.0)  # anything still in flight would show up here
        assert_no_stale_audio(client, start["response_id"])
        # /metrics saw every audio frame written (and no discarded one) and the barge-in.
        assert count("voiceagent_audio_relay_seconds") - relayed == len(client.audio)
        assert count("voiceagent_interrupt_seconds") - interrupts == 1
        assert start["response_id"] in tts.cancelled
        done = client.of_type("response_done")
        assert done and done[-1]["status"] == "cancelled"
        # The model kept only what was heard: a prefix of the reply, not all of it.
        heard = [entry for kind, entry in model.log if kind == "heard"]
        assert heard and isinstance(heard[0], Heard)
        assert LONG_REPLY.startswith(heard[0].text or "")
        assert len(heard[0].text or "") < len(LONG_REPLY)


async def test_playback_acks_decide_what_was_heard() -> None:
    model, _tts, services = slow_voice_services()
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="story please")
        start = await client.wait_for("audio_start")
        with trio.fail_after(5):
            while len(client.audio) < 25:
                await client.receive()
        # The speaker played 700 ms: word0..word2 began by then (300 ms a word).
        await client.send(type="playback", response_id=start["response_id"], played_ms=700)
        await client.send(type="interrupt")
        interrupted = await client.wait_for("audio_interrupted")
        assert interrupted["played_ms"] == 700
        await client.drain(0.3)
        heard = next(entry for kind, entry in model.log if kind == "heard")
        assert heard.audio_ms == 700
        assert heard.text == "word0 word1 word2"


async def test_model_vad_speech_start_barges_in() -> None:
    _, tts, services = slow_voice_services()
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="story")
        start = await client.wait_for("audio_start")
        speech = tone(300, amplitude=8000)
        for offset in range(0, len(speech), 960):
            await client.send_audio(speech[offset : offset + 960])
        await client.wait_for("audio_interrupted")  # urgent: may overtake the VAD event
        await client.drain(0.5)
        assert client.of_type("input_speech_started")
        assert_no_stale_audio(client, start["response_id"])
        assert start["response_id"] in tts.cancelled


async def test_next_response_after_interrupt_is_heard_in_full() -> None:
    model, _tts, services = slow_voice_services()
    model.replies = {"short": ScriptedReply("Okay.")}
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="long one")
        await client.wait_for("audio_start")
        await client.send(type="interrupt")
        await client.wait_for("audio_interrupted")
        await client.send(type="text", text="short one")
        second = await client.wait_for("audio_start", where=lambda e: True)
        while second["response_id"] == client.of_type("audio_start")[0]["response_id"]:
            second = await client.wait_for("audio_start")
        end = await client.wait_for("audio_end")
        assert end["response_id"] == second["response_id"]
        frames = [f for owner, f in client.audio if owner == second["response_id"]]
        assert sum(len(f) for f in frames) // 48 == end["audio_ms"] > 0


async def test_interrupt_with_nothing_playing_is_harmless() -> None:
    _, _, services = slow_voice_services()
    async with running_app(services) as address, connect(address) as client:
        await client.wait_for("session_started")
        await client.send(type="interrupt")
        await client.send(type="client_vad_speech_start")
        await client.drain(0.3)
        assert client.of_type("audio_interrupted") == []
        assert client.of_type("error") == []


@pytest.mark.parametrize("model_done_first", [True, False])
async def test_an_interrupted_turn_still_reports_its_metrics(model_done_first: bool) -> None:
    # The model usually finishes writing long before the voice finishes speaking; the
    # turn's figures (first audio, model and voice stages) are known either way.
    delay = 0.001 if model_done_first else 0.05
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), delta_delay=delay)
    tts = ScriptedTTS(realtime_factor=0.25)
    services = make_services(model, tts, agent=front_desk)
    async with running_app(services) as address, connect(address) as client:
        await client.send(type="text", text="tell me a long story")
        start = await client.wait_for("audio_start")
        rid = start["response_id"]
        if model_done_first:
            await client.wait_for("response_done")
        else:
            assert not client.of_type("response_done")
        await client.send(type="interrupt")
        await client.wait_for("audio_interrupted")
        report = await client.wait_for("metrics")
        assert report["response_id"] == rid
        assert report["turn_ms"] is not None and report["turn_ms"] > 0
        assert report["llm_ms"] is not None and report["tts_ms"] is not None
        await client.drain(0.5)
        assert [m["response_id"] for m in client.of_type("metrics")] == [rid]
        assert not client.of_type("audio_end")  # it was cut, not finished
