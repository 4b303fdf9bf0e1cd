"""With `use_recognizer` (`--stt`) the emulator loads the recogniser once, when it starts.

The cold start was measured at 11 s on a loaded machine, longer than a response waits
for its transcript (10 s): paid on the first turn, it could make that turn empty.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from tests.realtime.conftest import KEY
from voiceagent.emulators.realtime import EmulatorConfig, serve_realtime
from voiceagent.emulators.realtime_parts import RecognizerTranscriber
from voiceagent.speech import stt

LOAD_S = 2.0  # the stand-in recogniser's cold start
TRANSCRIPTION = {
    "type": "session.update",
    "session": {
        "type": "realtime",
        "audio": {"input": {"transcription": {"model": "whisper-1"}, "turn_detection": None}},
    },
}


class ColdRecognizer:
    """Stands in for `stt.Recognizer`: loading takes `LOAD_S`; a cold transcription loads."""

    made: list[ColdRecognizer] = []

    def __init__(self) -> None:
        self.loads: list[float] = []
        self.transcribed_at: list[float] = []
        self.loaded = False
        self.closed = False
        ColdRecognizer.made.append(self)

    async def warm_up(self) -> None:
        self.loads.append(trio.current_time())
        await trio.sleep(LOAD_S)
        self.loaded = True

    async def transcribe(self, pcm: bytes, sample_rate: int = 24_000) -> str:
        if not self.loaded:
            await self.warm_up()
        self.transcribed_at.append(trio.current_time())
        return "hello"

    async def aclose(self) -> None:
        self.closed = True


async def send(ws: WebSocketConnection, event: dict[str, Any]) -> None:
    await ws.send_message(orjson.dumps(event).decode())


async def next_event(ws: WebSocketConnection, kind: str, timeout_s: float) -> dict[str, Any]:
    with trio.fail_after(timeout_s):
        while True:
            event = orjson.loads(await ws.get_message())
            assert event["type"] != "error", event
            if event["type"] == kind:
                return event


async def commit_silence(ws: WebSocketConnection) -> float:
    """Enable transcription, append 0.5 s of silence and commit: the time of the commit."""
    await send(ws, TRANSCRIPTION)
    await next_event(ws, "session.updated", 10)
    audio = base64.b64encode(bytes(24_000)).decode()  # 0.5 s of PCM16 at 24 kHz
    await send(ws, {"type": "input_audio_buffer.append", "audio": audio})
    committed_at = trio.current_time()
    await send(ws, {"type": "input_audio_buffer.commit"})
    return committed_at


async def test_the_recogniser_loads_once_at_start_and_the_first_turn_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(stt, "Recognizer", ColdRecognizer)
    monkeypatch.setattr(ColdRecognizer, "made", [])
    config = EmulatorConfig(api_keys=(KEY,), use_recognizer=True)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)
        url = f"ws://127.0.0.1:{port}/openai/v1/realtime?model=m"
        async with open_websocket_url(url, extra_headers=[(b"api-key", KEY.encode())]) as ws:
            await next_event(ws, "session.created", 5)
            [recognizer] = ColdRecognizer.made
            # Accepted at once: the warm-up runs in the background.
            assert len(recognizer.loads) == 1 and not recognizer.loaded
            committed_at = await commit_silence(ws)
            done = await next_event(ws, "conversation.item.input_audio_transcription.completed", 10)
        nursery.cancel_scope.cancel()
    assert done["transcript"] == "hello"
    # Loaded once, before the first request; the first transcription waited for it.
    assert len(recognizer.loads) == 1 and recognizer.loads[0] < committed_at
    assert recognizer.transcribed_at[0] >= recognizer.loads[0] + LOAD_S
    assert recognizer.closed  # the server stopped the recogniser it made


async def test_the_offline_recogniser_starts_its_workers_before_the_first_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("pocketsphinx")
    starts: list[float] = []
    start_worker = stt._Worker.start

    async def counted(cls: type[stt._Worker]) -> stt._Worker:
        starts.append(trio.current_time())
        return await start_worker()

    monkeypatch.setattr(stt._Worker, "start", classmethod(counted))
    config = EmulatorConfig(api_keys=(KEY,), use_recognizer=True)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve_realtime, "127.0.0.1", 0, config)
        url = f"ws://127.0.0.1:{port}/openai/v1/realtime?model=m"
        async with open_websocket_url(url, extra_headers=[(b"api-key", KEY.encode())]) as ws:
            await next_event(ws, "session.created", 10)
            committed_at = await commit_silence(ws)
            # Generous: a cold start was measured at 11 s on a loaded machine.
            await next_event(ws, "conversation.item.input_audio_transcription.completed", 90)
        nursery.cancel_scope.cancel()
    # One worker per concurrent decode, all started by the warm-up: none by the request.
    assert len(starts) == stt.Recognizer().max_concurrency
    assert max(starts) < committed_at


async def test_a_failed_warm_up_is_logged_and_transcriptions_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class NoModel(ColdRecognizer):
        async def warm_up(self) -> None:
            raise stt.SpeechRecognitionError("cannot start a recognition worker")

        async def transcribe(self, pcm: bytes, sample_rate: int = 24_000) -> str:
            return "started on demand"

    transcriber = RecognizerTranscriber(NoModel())  # type: ignore[arg-type]
    await transcriber.warm_up()
    assert await transcriber(bytes(4800), 24_000) == "started on demand"
    assert "warm-up failed: cannot start a recognition worker" in caplog.text
