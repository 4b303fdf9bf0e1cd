"""Recordings over a real socket: a stereo WAV, user left, agent right as heard."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import trio

from tests.conftest import Client, connect, make_services, running_app
from tests.session.helpers import front_desk
from voiceagent.metrics import REGISTRY
from voiceagent.models.scripted import ScriptedModel, ScriptedReply, tone
from voiceagent.pcm import SAMPLE_RATE
from voiceagent.recordings import RecordingWriter
from voiceagent.session.services import Services
from voiceagent.tts.scripted import ScriptedTTS

FRAME_MS = 20
WINDOW = SAMPLE_RATE * 5 // 1000  # 5 ms envelope windows
LONG_REPLY = " ".join(f"word{i}" for i in range(60))


def services_recording_to(folder: Path) -> Services:
    model = ScriptedModel(default=ScriptedReply(LONG_REPLY), delta_delay=0.002)
    services = make_services(model, ScriptedTTS(realtime_factor=0.25), agent=front_desk)
    services.recordings = RecordingWriter(folder)
    return services


def loud_runs(channel: np.ndarray) -> list[tuple[float, float]]:
    """(start_ms, end_ms) of each stretch of sound, from a 5 ms envelope."""
    count = len(channel) // WINDOW
    envelope = np.abs(channel[: count * WINDOW].astype(np.int32)).reshape(count, WINDOW).max(1)
    loud = np.concatenate(([False], envelope > 500, [False]))
    edges = np.flatnonzero(np.diff(loud.astype(np.int8)))
    return [(s * 5.0, e * 5.0) for s, e in zip(edges[0::2], edges[1::2], strict=True)]


async def speak_then_barge_in(client: Client) -> tuple[float, float]:
    """600 ms of tone paced like a microphone, then silence, until the reply has played
    700 ms; then a barge-in. Returns (first frame's start, audio_start's arrival)."""
    await client.wait_for("session_started")
    speech = tone(600, amplitude=6000)
    silence = bytes(2 * SAMPLE_RATE * FRAME_MS // 1000)
    began = trio.current_time()

    async def microphone() -> None:
        for sent in range(1000):
            # A microphone sends a frame once it has captured it.
            await trio.sleep_until(began + (sent + 1) * FRAME_MS / 1000)
            offset = sent * len(silence)
            await client.send_audio(speech[offset : offset + len(silence)] or silence)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(microphone)
        start = await client.wait_for("audio_start", within=20)
        audio_at = trio.current_time()
        with trio.move_on_at(audio_at + 0.7):
            while True:
                await client.receive()  # a page plays what it reads
        await client.send(type="playback", response_id=start["response_id"], played_ms=700)
        await client.send(type="interrupt")
        await client.wait_for("audio_interrupted")
        await client.drain(0.3)
        nursery.cancel_scope.cancel()
    return began, audio_at


async def test_stereo_wav_as_the_user_heard_it(tmp_path: Path) -> None:
    services = services_recording_to(tmp_path / "rec")
    async with running_app(services) as address:
        async with connect(address, "rec-room") as client:
            began, audio_at = await speak_then_barge_in(client)
    (path,) = (tmp_path / "rec" / "rec-room").glob("*.wav")
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (2, 2, SAMPLE_RATE)
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    (user,) = loud_runs(samples[:, 0])
    (agent,) = loud_runs(samples[:, 1])
    assert abs((user[1] - user[0]) - 600) <= 20
    # The reply is cut where the user stopped it: 700 ms heard.
    assert abs((agent[1] - agent[0]) - 700) <= 20
    # The two channels keep the real distance between the user's speech and the reply.
    assert abs((agent[0] - user[0]) - (audio_at - began) * 1000) <= 20


async def test_a_disk_fault_stops_the_recording_not_the_room(tmp_path: Path) -> None:
    (tmp_path / "rec").write_text("a file where the folder should be")
    failed = REGISTRY.get_sample_value("voiceagent_recordings_failed_total") or 0.0
    services = services_recording_to(tmp_path / "rec")
    async with running_app(services) as address:
        async with connect(address, "rec-room") as client:
            await speak_then_barge_in(client)
            await client.send(type="text", text="still there?")
            assert (await client.wait_for("text_done"))["text"] == LONG_REPLY
    assert (REGISTRY.get_sample_value("voiceagent_recordings_failed_total") or 0.0) > failed
