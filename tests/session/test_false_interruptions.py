"""Speech over the agent pauses it; noise and backchannels resume it, real speech cuts it.

Real sockets, the scripted model (energy VAD, scripted transcripts) and the scripted
voice paced at 4x real time, so the agent is mid-reply when the user speaks.
"""

from __future__ import annotations

from typing import Any

import trio

from tests.conftest import Client, connect, make_services, running_app
from tests.session.helpers import front_desk
from tests.session.test_barge_in import assert_no_stale_audio
from voiceagent.config import Settings
from voiceagent.graph import Agent
from voiceagent.models.scripted import ScriptedModel, ScriptedReply, tone
from voiceagent.tts.scripted import ScriptedTTS

FRAME = 960  # 20 ms of 24 kHz PCM16
SILENCE = bytes(FRAME)
LONG_REPLY = " ".join(f"word{i}" for i in range(25))  # 7.5 s of voice, made in ~2 s
_UNINTERRUPTED: list[int] = []  # measured once


def services(
    *,
    spoken: list[str] | None = None,
    agent: Agent = front_desk,
    transcript_delay: float = 0.0,
    **settings: Any,
) -> tuple[ScriptedModel, ScriptedTTS, Any]:
    model = ScriptedModel(
        default=ScriptedReply(LONG_REPLY),
        replies={"something else": ScriptedReply("Sure, what else?")},
        delta_delay=0.005,
        spoken=list(spoken or []),
        transcript_delay=transcript_delay,
    )
    tts = ScriptedTTS(realtime_factor=0.25)
    return model, tts, make_services(model, tts, agent=agent, settings=Settings(**settings))


async def speak(client: Client, speech_ms: int, silence_ms: int = 400) -> None:
    """Loud audio for `speech_ms`, then silence that ends the utterance."""
    speech = tone(speech_ms, amplitude=8000)
    for offset in range(0, len(speech), FRAME):
        await client.send_audio(speech[offset : offset + FRAME])
    for _ in range(silence_ms // 20):
        await client.send_audio(SILENCE)


async def reply_started(client: Client) -> str:
    await client.send(type="text", text="tell me a long story")
    start = await client.wait_for("audio_start")
    with trio.fail_after(5):
        while len(client.audio) < 3:
            await client.receive()
    return str(start["response_id"])


def audio_of(client: Client, response_id: str) -> int:
    return sum(len(frame) for owner, frame in client.audio if owner == response_id)


async def uninterrupted_bytes() -> int:
    """The bytes of the reply when nobody speaks over it (measured, once)."""
    if not _UNINTERRUPTED:
        _UNINTERRUPTED.append(await _measure_uninterrupted())
    return _UNINTERRUPTED[0]


async def _measure_uninterrupted() -> int:
    _, _, plain = services()
    async with running_app(plain) as address, connect(address) as client:
        rid = await reply_started(client)
        end = await client.wait_for("audio_end", within=20)
        assert end["response_id"] == rid
        return audio_of(client, rid)


def assert_paused_then_resumed(client: Client) -> None:
    kinds = [kind for kind, _ in client.order]
    assert ("event", "playback_pause") in client.order
    pause = client.order.index(("event", "playback_pause"))
    resume = client.order.index(("event", "playback_resume"))
    assert pause < resume
    # Not one frame of the agent while it was paused: the server held them.
    assert "audio" not in kinds[pause:resume]
    assert client.of_type("audio_interrupted") == []


async def test_a_noise_burst_pauses_and_resumes_with_every_byte_once() -> None:
    expected = await uninterrupted_bytes()
    model, tts, services_ = services()
    async with running_app(services_) as address, connect(address) as client:
        rid = await reply_started(client)
        await speak(client, 150)  # a cough, a door: 150 ms
        resumed = await client.wait_for("playback_resume")
        assert resumed["response_id"] == rid and resumed["reason"] == "too_short"
        end = await client.wait_for("audio_end", within=20)
        assert end["response_id"] == rid
        assert_paused_then_resumed(client)
        # Nothing lost, nothing repeated: the same bytes as without the noise.
        assert audio_of(client, rid) == expected
        assert end["audio_ms"] == expected // 48
        assert rid not in tts.cancelled
        # The noise never became a turn: the model dropped it and did not answer.
        assert ("dropped", "(spoken)") in model.log
        assert ("user", "(spoken)") not in model.log
        assert client.of_type("user_transcript") == []


async def test_a_backchannel_neither_interrupts_nor_becomes_a_turn() -> None:
    expected = await uninterrupted_bytes()
    model, _tts, services_ = services(spoken=["Yeah."])
    async with running_app(services_) as address, connect(address) as client:
        rid = await reply_started(client)
        await speak(client, 700)  # long enough to count: judged by its words
        resumed = await client.wait_for("playback_resume")
        assert resumed["reason"] == "backchannel"
        await client.wait_for("audio_end", within=20)
        assert_paused_then_resumed(client)
        assert audio_of(client, rid) == expected
        assert ("dropped", "Yeah.") in model.log
        assert [e for e in model.log if e[0] == "user"] == [("user", "tell me a long story")]
        assert client.of_type("user_transcript") == []
        await client.drain(0.3)
        users = [
            item
            for e in client.of_type("history_added")
            for item in [e["item"]]
            if item.get("role") == "user"
        ]
        assert all("Yeah" not in (item.get("text") or "") for item in users)
        assert len(client.of_type("response_start")) == 1


async def test_real_speech_pauses_then_interrupts_with_zero_stale_bytes() -> None:
    model, tts, services_ = services(spoken=["Stop, wait, I need something else."])
    async with running_app(services_) as address, connect(address) as client:
        rid = await reply_started(client)
        await speak(client, 1200)
        interrupted = await client.wait_for("audio_interrupted")
        assert interrupted["response_id"] == rid
        assert client.order.index(("event", "playback_pause")) < client.order.index(
            ("event", "audio_interrupted")
        )
        answer = await client.wait_for("text_done", where=lambda e: "else" in e["text"])
        assert answer["text"] == "Sure, what else?"
        await client.drain(0.5)
        assert_no_stale_audio(client, rid)
        assert client.of_type("playback_resume") == []
        assert rid in tts.cancelled
        # What the model keeps is what was heard (the pause does not count as played).
        heard = next(entry for kind, entry in model.log if kind == "heard")
        assert LONG_REPLY.startswith(heard.text or "")
        assert heard.audio_ms == interrupted["played_ms"]
        assert ("user", "Stop, wait, I need something else.") in model.log
        transcripts = [e["text"] for e in client.of_type("user_transcript")]
        assert transcripts == ["Stop, wait, I need something else."]


async def test_an_uninterruptible_agent_plays_through_speech() -> None:
    disclaimer = Agent(name="Disclaimer", instructions="Read it.", allow_interruptions=False)
    expected = await uninterrupted_bytes()
    model, _tts, services_ = services(
        spoken=["Stop, wait, I need something else."], agent=disclaimer
    )
    async with running_app(services_) as address, connect(address) as client:
        rid = await reply_started(client)
        await speak(client, 1200)
        end = await client.wait_for("audio_end", within=20)
        assert end["response_id"] == rid
        assert audio_of(client, rid) == expected
        assert client.of_type("audio_interrupted") == []
        assert client.of_type("playback_pause") == []
        assert ("dropped", "Stop, wait, I need something else.") in model.log


async def test_without_resume_any_speech_interrupts_at_once() -> None:
    _, tts, services_ = services(resume_false_interruption=False)
    async with running_app(services_) as address, connect(address) as client:
        rid = await reply_started(client)
        await speak(client, 150)
        interrupted = await client.wait_for("audio_interrupted")
        assert interrupted["response_id"] == rid
        await client.drain(0.3)
        assert client.of_type("playback_pause") == []
        assert_no_stale_audio(client, rid)
        assert rid in tts.cancelled


async def test_an_agent_override_asks_for_more_words() -> None:
    strict = Agent(name="Strict", instructions="Hm.", interruption={"min_interruption_words": 8})
    _model, _tts, services_ = services(spoken=["Stop, wait, I need something else."], agent=strict)
    async with running_app(services_) as address, connect(address) as client:
        rid = await reply_started(client)
        await speak(client, 1200)
        resumed = await client.wait_for("playback_resume")
        assert resumed["response_id"] == rid and resumed["reason"] == "too_few_words"
        await client.wait_for("audio_end", within=20)
        assert client.of_type("audio_interrupted") == []


async def test_no_transcript_in_time_resumes_and_the_late_one_is_not_a_turn() -> None:
    expected = await uninterrupted_bytes()
    model, _tts, services_ = services(
        spoken=["Stop, wait, I need something else."],
        transcript_delay=1.5,
        false_interruption_timeout_ms=300,
    )
    async with running_app(services_) as address, connect(address) as client:
        rid = await reply_started(client)
        await speak(client, 700)
        stopped = await client.wait_for("input_speech_stopped")
        assert stopped
        at = trio.current_time()
        resumed = await client.wait_for("playback_resume")
        # 300 ms after the speech stopped (the event and the judgement are one step).
        assert trio.current_time() - at < 0.3 + 0.25
        assert resumed["reason"] == "no_transcript"
        await client.wait_for("audio_end", within=20)
        await client.drain(1.5)  # the late transcript arrives meanwhile
        assert_paused_then_resumed(client)
        assert audio_of(client, rid) == expected
        assert ("dropped", "Stop, wait, I need something else.") in model.log
        assert client.of_type("user_transcript") == []
