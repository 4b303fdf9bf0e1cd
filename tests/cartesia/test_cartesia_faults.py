"""Every injected fault surfaces as a typed TTSError, and the next response recovers."""

from __future__ import annotations

from functools import partial

import pytest
import trio
from cartesia_helpers import RecordingSink, client_config, speak, start_emulator, words_of

from voiceagent.emulators import cartesia as cartesia_emulator
from voiceagent.tts.base import TTSError
from voiceagent.tts.cartesia import CartesiaTTS

TEXT = words_of("Your seat is confirmed, row fourteen by the window. Anything else?")


async def test_refused_handshake_429_is_rate_limited(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, reject_handshakes=1)
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        with pytest.raises(TTSError) as caught:
            await speak(conn, TEXT, RecordingSink(), response_id="r1")
        assert caught.value.code == "rate_limited"
        sink = RecordingSink()
        await speak(conn, TEXT, sink, response_id="r2")
    assert sink.audio_bytes > 0
    assert emu.log.refused == 1 and emu.log.accepted == 1


async def test_wrong_key_is_unauthorized(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, api_key="the-right-key")
    async with CartesiaTTS(client_config(emu.url, api_key="a-wrong-key")).connect() as conn:
        with pytest.raises(TTSError) as caught:
            await speak(conn, TEXT, RecordingSink(), response_id="r")
    assert caught.value.code == "tts_unauthorized"


async def test_error_message_raises_with_no_audio(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, error_after_chunks=0)
    sink = RecordingSink()
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        with pytest.raises(TTSError) as caught:
            await speak(conn, TEXT, sink, response_id="r")
    assert caught.value.code == "tts_provider_error"
    assert "injected failure" in str(caught.value)
    assert sink.chunks == []


async def test_idle_close_by_server_reconnects_on_next_use(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, idle_close_s=0.2)
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        await speak(conn, TEXT, RecordingSink(), response_id="before")
        await trio.sleep(0.5)
        assert emu.log.idle_closed == 1
        sink = RecordingSink()
        await speak(conn, TEXT, sink, response_id="after")
    assert sink.audio_bytes > 0
    assert emu.log.accepted == 2


async def test_silent_socket_times_out_and_is_replaced(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, silent_connections=1)
    config = client_config(emu.url, first_audio_timeout_s=0.3)
    async with CartesiaTTS(config).connect() as conn:
        sink = RecordingSink()
        with pytest.raises(TTSError) as caught:
            await speak(conn, TEXT, sink, response_id="r1")
        assert caught.value.code == "tts_timeout"
        assert sink.chunks == []
        again = RecordingSink()
        await speak(conn, TEXT, again, response_id="r2")
    assert again.audio_bytes > 0
    assert emu.log.accepted == 2


async def test_unreachable_server_fails_after_bounded_retries() -> None:
    # Bind then close a port so nothing listens there.
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"ws://127.0.0.1:{port}/tts/websocket"
    async with CartesiaTTS(client_config(url, connect_attempts=2)).connect() as conn:
        with pytest.raises(TTSError) as caught:
            await speak(conn, TEXT, RecordingSink(), response_id="r")
    assert caught.value.code == "tts_unavailable"


class SlowSink(RecordingSink):
    """A client that cannot keep up: every delivery takes a while."""

    async def audio(self, pcm: bytes) -> None:
        self.chunks.append(pcm)
        await trio.sleep(0.15)


async def test_a_slow_client_is_not_mistaken_for_a_dead_server(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery, chunk_ms=500)
    sink = SlowSink()
    async with CartesiaTTS(client_config(emu.url, first_audio_timeout_s=0.1)).connect() as conn:
        await speak(conn, TEXT, sink, response_id="r")
    assert len(sink.chunks) > 3
    assert [t.word for t in sink.timings] == "".join(TEXT).split()


async def test_an_unreachable_server_error_shows_no_url_and_logs_it_redacted() -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"ws://127.0.0.1:{port}/tts/websocket?api_key=SECRETVALUE123"
    async with CartesiaTTS(client_config(url, connect_attempts=1)).connect() as conn:
        with pytest.raises(TTSError) as caught:
            await speak(conn, TEXT, RecordingSink(), response_id="r")
    message, detail = str(caught.value), caught.value.detail or ""
    assert f"127.0.0.1:{port}" not in message and "api_key" not in message
    assert detail.startswith(f"ws://127.0.0.1:{port}/tts/websocket?api_key=***: ")
    assert "SECRETVALUE123" not in detail


async def test_the_handshake_is_bounded_but_the_socket_is_not(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cartesia_emulator, "HANDSHAKE_TIMEOUT_S", 0.2)
    emu = await start_emulator(nursery)
    port = int(emu.url.split(":")[2].split("/")[0])
    silent = await trio.open_tcp_stream("127.0.0.1", port)
    with trio.fail_after(2):
        assert await silent.receive_some(100) == b""  # no upgrade asked: let go
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        await speak(conn, TEXT, RecordingSink(), response_id="r1")
        await trio.sleep(0.4)
        sink = RecordingSink()
        await speak(conn, TEXT, sink, response_id="r2")
    assert sink.audio_bytes > 0
    assert emu.log.accepted == 1  # the same socket served both


async def test_a_response_cut_while_waiting_for_the_socket_leaves_it_watched(
    nursery: trio.Nursery,
) -> None:
    # A barge-in can cancel a response that still waits for the previous one to finish
    # with the socket. The socket's own task must then read it again between responses:
    # here it has to see the server's idle close, or the next response would fail on it.
    emu = await start_emulator(nursery, idle_close_s=0.3)
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        await speak(conn, TEXT, RecordingSink(), response_id="warm")
        cut = RecordingSink()
        async with trio.open_nursery() as responses:
            long = partial(speak, conn, TEXT, RecordingSink(), response_id="long", gap_s=0.05)
            responses.start_soon(long)  # its text trickles in: it holds the socket ~0.6 s
            await trio.sleep(0.05)
            with trio.move_on_after(0.05) as barge_in:
                await speak(conn, TEXT, cut, response_id="cut")
            assert barge_in.cancelled_caught
        await trio.sleep(0.6)
        assert emu.log.idle_closed == 1
        after = RecordingSink()
        await speak(conn, TEXT, after, response_id="after")
    assert cut.chunks == []
    assert not any(r.get("context_id", "").startswith("cut-") for _, r in emu.log.requests)
    assert after.audio_bytes > 0
    assert emu.log.accepted == 2
