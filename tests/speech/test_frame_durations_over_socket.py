"""Protocol version 2 over a real socket: every announced frame duration works end to end.

The offline pipeline (VAD, recogniser, brain, local voice) behind Hypercorn: a client
speaks the question in real time in frames of 10, 20 (the version-1 framing), 100 and
200 ms, the last frame shorter (the tail of the utterance), and must get the
transcript and a spoken answer. A frame over the byte limit gets `frame_too_large`
and the same room then still answers.
"""

from __future__ import annotations

import pytest
import trio

from tests.conftest import Client, connect, make_services, running_app
from tests.speech.sounds import frames, silence
from voiceagent.brain import OfflineBrain
from voiceagent.models.offline import OfflineModel, OfflineModelConfig
from voiceagent.protocol import PROTOCOL_VERSION
from voiceagent.tts.local import LocalVoiceTTS


def offline_services():  # type: ignore[no-untyped-def]
    model = OfflineModel(OfflineModelConfig(delta_interval_s=0.01), brain_factory=OfflineBrain)
    return make_services(model, LocalVoiceTTS())


async def speak(client: Client, pcm: bytes, frame_ms: int) -> None:
    """Send `frame_ms` frames on a real-time schedule, like a microphone."""
    deadline = trio.current_time()
    for frame in frames(pcm, frame_ms):
        await client.send_audio(frame)
        deadline += len(frame) / 48_000
        await trio.sleep_until(deadline)


async def spoken_exchange(client: Client, turn: bytes, frame_ms: int) -> None:
    """The question in `frame_ms` frames; the transcript and a voiced answer come back."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(speak, client, turn, frame_ms)
        transcript = await client.wait_for("user_transcript", within=30)
        assert "baggage" in transcript["text"].lower()
        done = await client.wait_for("text_done", within=30)
        end = await client.wait_for("audio_end", within=30)
    assert end["response_id"] == done["response_id"] and done["text"]
    reply = b"".join(frame for owner, frame in client.audio if owner == done["response_id"])
    assert len(reply) > 24_000  # at least half a second of voice


@pytest.mark.parametrize("frame_ms", [10, 20, 100, 200])
async def test_a_spoken_turn_works_in_every_announced_framing(
    spoken_turn: bytes, frame_ms: int
) -> None:
    # Silence up to a whole 200 ms (every framing divides it; the voice's length varies
    # from run to run), then 13 ms more: the last frame is shorter than the others.
    whole = 200 * 48
    turn = spoken_turn + bytes(-len(spoken_turn) % whole) + silence(0.013)
    sent = frames(turn, frame_ms)
    assert len(sent[-1]) < len(sent[0]) == frame_ms * 48
    async with running_app(offline_services()) as address, connect(address) as client:
        started = await client.wait_for("session_started")
        assert started["protocol"] == PROTOCOL_VERSION == 2
        limits = started["limits"]
        assert limits["min_audio_frame_ms"] <= frame_ms <= limits["max_audio_frame_ms"]
        assert limits["preferred_audio_frame_ms"] == 100
        await spoken_exchange(client, turn, frame_ms)
        assert client.of_type("error") == []


async def test_an_over_long_frame_gets_the_typed_error_and_the_room_goes_on(
    spoken_turn: bytes,
) -> None:
    async with running_app(offline_services()) as address, connect(address) as client:
        started = await client.wait_for("session_started")
        too_long = started["limits"]["max_audio_frame_bytes"] + 2  # 683 ms
        await client.send_audio(bytes(too_long))
        error = await client.wait_for("error")
        assert error["code"] == "frame_too_large"
        assert str(too_long) in error["message"]
        await spoken_exchange(client, spoken_turn, 100)
        assert [e["code"] for e in client.of_type("error")] == ["frame_too_large"]
