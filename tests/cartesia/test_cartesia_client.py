"""CartesiaTTS against the Cartesia emulator over real sockets on 127.0.0.1."""

from __future__ import annotations

import trio
from cartesia_helpers import (
    RecordingSink,
    check_client_event,
    check_server_event,
    client_config,
    speak,
    start_emulator,
    words_of,
)

from tests.task_tree import tasks_below
from voiceagent.tts.base import SAMPLE_RATE
from voiceagent.tts.cartesia import CartesiaTTS

TEXT = "Sure, I can help with that. Your flight to Lisbon leaves at nine, from gate twelve."


def _contexts(log) -> list[str]:
    seen: list[str] = []
    for _, request in log.requests:
        ctx = request.get("context_id")
        if ctx not in seen:
            seen.append(ctx)
    return seen


def _chunk_bytes_sent(log, context_id: str) -> int:
    import base64

    return sum(
        len(base64.b64decode(m["data"]))
        for _, m in log.responses
        if m["type"] == "chunk" and m["context_id"] == context_id
    )


async def test_one_socket_serves_every_response_of_a_session(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    tts = CartesiaTTS(client_config(emu.url))
    sinks = []
    async with tts.connect() as conn:
        for turn in range(3):
            sink = RecordingSink()
            await speak(conn, words_of(TEXT), sink, response_id=f"resp_{turn}")
            sinks.append(sink)
    assert emu.log.accepted == 1
    contexts = _contexts(emu.log)
    assert len(contexts) == 3 and len(set(contexts)) == 3
    assert all(ctx.startswith(f"resp_{i}-") for i, ctx in enumerate(contexts))
    for sink, ctx in zip(sinks, contexts, strict=True):
        assert sink.audio_bytes > 0
        assert sink.audio_bytes == _chunk_bytes_sent(emu.log, ctx)


async def test_no_socket_is_opened_before_there_is_text(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        await speak(conn, [], RecordingSink(), response_id="empty")
    assert emu.log.handshakes == type(emu.log.handshakes)()


async def test_a_retried_response_gets_a_fresh_context(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        await speak(conn, words_of(TEXT), RecordingSink(), response_id="resp_1")
        await speak(conn, words_of(TEXT), RecordingSink(), response_id="resp_1")
    contexts = _contexts(emu.log)
    assert len(contexts) == 2 and contexts[0] != contexts[1]
    errors = [m for _, m in emu.log.responses if m["type"] == "error"]
    assert errors == []


async def test_text_is_pushed_with_continue_then_closed(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        await speak(conn, words_of(TEXT), RecordingSink(), response_id="r", gap_s=0.005)
    (ctx,) = _contexts(emu.log)
    inputs = emu.log.requests_for(ctx)
    assert len(inputs) >= 3
    assert [i["continue"] for i in inputs] == [True] * (len(inputs) - 1) + [False]
    # Joined verbatim, the pushes are the text (trailing spaces kept).
    assert "".join(i["transcript"] for i in inputs) == "".join(words_of(TEXT))
    assert len(inputs[0]["transcript"].split()) >= 4
    assert inputs[0]["transcript"].endswith(" ")
    # Audio for the first phrase came back before the context was closed.
    first_chunk = next(n for n, (_, m) in enumerate(emu.log.responses) if m["type"] == "chunk")
    done = next(n for n, (_, m) in enumerate(emu.log.responses) if m["type"] == "done")
    assert first_chunk < done


async def test_word_timestamps_reach_the_sink(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    sink = RecordingSink()
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        await speak(conn, words_of(TEXT), sink, response_id="r")
    assert [t.word for t in sink.timings] == TEXT.split()
    starts = [t.start for t in sink.timings]
    assert starts == sorted(starts)
    assert all(t.end > t.start for t in sink.timings)
    duration = sink.audio_bytes / 2 / SAMPLE_RATE
    assert sink.timings[-1].end <= duration + 1e-3


async def test_every_message_matches_the_official_types(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    async with CartesiaTTS(client_config(emu.url, max_buffer_delay_ms=200)).connect() as conn:
        await speak(conn, words_of(TEXT), RecordingSink(), response_id="a")
        with trio.move_on_after(0.15):
            await speak(conn, words_of(TEXT * 3), RecordingSink(), response_id="b", gap_s=0.01)
        await speak(conn, words_of(TEXT), RecordingSink(), response_id="c")
    requests = [r for _, r in emu.log.requests]
    assert any("cancel" in r for r in requests)
    for request in requests:
        check_client_event(request)
        assert request.get("output_format", {}).get("encoding", "pcm_s16le") == "pcm_s16le"
    kinds = set()
    for _, response in emu.log.responses:
        check_server_event(response)
        kinds.add(response["type"])
    assert {"chunk", "timestamps", "done"} <= kinds


async def test_cancel_mid_stream_delivers_no_late_audio(nursery: trio.Nursery) -> None:
    # Slow pacing: the emulator is still generating when the cancel lands.
    emu = await start_emulator(nursery, realtime_factor=0.2, chunk_ms=20)
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        sink = RecordingSink(stop_after=2)
        with trio.CancelScope() as scope:
            sink.scope = scope
            await speak(conn, words_of(TEXT), sink, response_id="barged")
        assert scope.cancelled_caught
        await trio.sleep(0.3)  # late chunks would arrive now if they were going to
        assert len(sink.chunks) == 2

        (ctx,) = _contexts(emu.log)
        assert {"context_id": ctx, "cancel": True} in emu.log.requests_for(ctx)
        assert not any(m["type"] == "done" for _, m in emu.log.responses)

        # The next response, on the same socket, carries only its own audio.
        after = RecordingSink()
        await speak(
            conn, words_of("Okay, what else can I do for you today?"), after, response_id="next"
        )
    contexts = _contexts(emu.log)
    assert emu.log.accepted == 1 and len(contexts) == 2
    assert after.audio_bytes == _chunk_bytes_sent(emu.log, contexts[1]) > 0


async def test_server_side_buffer_delay_is_sent_and_honoured(nursery: trio.Nursery) -> None:
    emu = await start_emulator(nursery)
    sink = RecordingSink()
    async with CartesiaTTS(client_config(emu.url, max_buffer_delay_ms=100)).connect() as conn:
        await speak(conn, words_of(TEXT), sink, response_id="r")
    assert all(r["max_buffer_delay_ms"] == 100 for _, r in emu.log.requests)
    assert [t.word for t in sink.timings] == TEXT.split()


async def test_the_socket_costs_one_task_and_responses_follow_each_other_at_once(
    nursery: trio.Nursery,
) -> None:
    # The task that owns the socket reads it between responses and hands the reading to
    # each response: no reader task besides it (voiceagent/provider_socket.py), and a
    # response that starts right after another never waits for a message to arrive.
    emu = await start_emulator(nursery)
    me = trio.lowlevel.current_task()
    fixtures = list(me.child_nurseries)  # the emulator's, if the test's task holds it
    async with CartesiaTTS(client_config(emu.url)).connect() as conn:
        with trio.fail_after(10):
            for turn in range(3):
                sink = RecordingSink()
                await speak(conn, words_of(TEXT), sink, response_id=f"resp_{turn}")
                assert sink.audio_bytes > 0
                assert tasks_below(me, fixtures) == 1
    assert emu.log.accepted == 1
