"""FallbackTTS: the local voice takes over when Cartesia fails before any audio."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
from cartesia_helpers import RecordingSink, client_config, speak, start_emulator, words_of

from voiceagent.tts.base import TTS, AudioSink, TTSConnection, TTSError
from voiceagent.tts.cartesia import CartesiaTTS
from voiceagent.tts.fallback import FallbackConnection, FallbackTTS

TEXT = "Let me check that booking for you. One moment, please."


class SpellingTTS(TTS):
    """A tiny voice for tests: one 2-byte sample per character, and it keeps the text."""

    name = "spelling"

    def __init__(self) -> None:
        self.heard: list[str] = []

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[TTSConnection]:
        yield _SpellingConnection(self)


class _SpellingConnection(TTSConnection):
    def __init__(self, tts: SpellingTTS) -> None:
        self._tts = tts

    async def synthesize(
        self, text: trio.MemoryReceiveChannel[str], sink: AudioSink, *, response_id: str
    ) -> None:
        received = []
        async for delta in text:
            received.append(delta)
            await sink.audio(b"\x01\x00" * len(delta))
        self._tts.heard.append("".join(received))


async def test_falls_back_on_429_and_voices_the_whole_text(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, reject_handshakes=-1)
    local = SpellingTTS()
    failures: list[TTSError] = []
    tts = FallbackTTS(CartesiaTTS(client_config(emu.url)), local, on_fallback=failures.append)
    sink = RecordingSink()
    async with tts.connect() as conn:
        await speak(conn, words_of(TEXT), sink, response_id="r", gap_s=0.002)
    assert [e.code for e in failures] == ["rate_limited"]
    assert local.heard == ["".join(words_of(TEXT))]
    assert sink.audio_bytes == 2 * len("".join(words_of(TEXT)))


async def test_no_fallback_once_audio_was_delivered(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, error_after_chunks=2)
    local = SpellingTTS()
    failures: list[TTSError] = []
    tts = FallbackTTS(CartesiaTTS(client_config(emu.url)), local, on_fallback=failures.append)
    sink = RecordingSink()
    async with tts.connect() as conn:
        with pytest.raises(TTSError) as caught:
            await speak(conn, words_of(TEXT), sink, response_id="r")
    assert caught.value.code == "tts_provider_error"
    assert len(sink.chunks) == 2
    assert failures == [] and local.heard == []


async def test_primary_that_works_is_the_only_voice(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    local = SpellingTTS()
    tts = FallbackTTS(CartesiaTTS(client_config(emu.url)), local)
    sink = RecordingSink()
    async with tts.connect() as conn:
        for turn in range(2):
            await speak(conn, words_of(TEXT), sink, response_id=f"r{turn}")
    assert local.heard == []
    assert [t.word for t in sink.timings] == TEXT.split() * 2
    assert emu.log.accepted == 1


async def test_silent_primary_falls_back_after_the_first_audio_timeout(
    nursery: trio.Nursery,
) -> None:
    emu = await start_emulator(nursery, silent_connections=-1)
    local = SpellingTTS()
    failures: list[TTSError] = []
    config = client_config(emu.url, first_audio_timeout_s=0.2)
    tts = FallbackTTS(CartesiaTTS(config), local, on_fallback=failures.append)
    async with tts.connect() as conn:
        await speak(conn, words_of(TEXT), RecordingSink(), response_id="r")
    assert [e.code for e in failures] == ["tts_timeout"]
    assert local.heard == ["".join(words_of(TEXT))]


async def test_barge_in_through_fallback_stops_both_voices(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, realtime_factor=0.2, chunk_ms=20)
    local = SpellingTTS()
    failures: list[TTSError] = []
    tts = FallbackTTS(CartesiaTTS(client_config(emu.url)), local, on_fallback=failures.append)
    async with tts.connect() as conn:
        sink = RecordingSink(stop_after=2)
        with trio.CancelScope() as scope:
            sink.scope = scope
            await speak(conn, words_of(TEXT), sink, response_id="r")
        await trio.sleep(0.2)
    assert scope.cancelled_caught
    assert len(sink.chunks) == 2
    assert failures == [] and local.heard == []
    assert any(r.get("cancel") for _, r in emu.log.requests)


async def test_cooldown_skips_a_failing_primary_for_a_while(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, silent_connections=-1)
    local = SpellingTTS()
    failures: list[TTSError] = []
    config = client_config(emu.url, first_audio_timeout_s=0.2)
    tts = FallbackTTS(
        CartesiaTTS(config), local, on_fallback=failures.append, primary_cooldown_s=60
    )
    async with tts.connect() as conn:
        for turn in range(3):
            await speak(conn, words_of(TEXT), RecordingSink(), response_id=f"r{turn}")
    assert len(failures) == 1  # only the first response waited for the silent primary
    assert local.heard == ["".join(words_of(TEXT))] * 3
    assert emu.log.accepted == 1


async def test_a_session_can_route_fallback_errors_per_connection(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, reject_handshakes=-1)
    tts = FallbackTTS(CartesiaTTS(client_config(emu.url)), SpellingTTS())
    mine: list[str] = []
    async with tts.connect() as conn:
        assert isinstance(conn, FallbackConnection)
        conn.on_fallback = lambda error: mine.append(error.code)
        await speak(conn, words_of(TEXT), RecordingSink(), response_id="r")
    assert mine == ["rate_limited"]
