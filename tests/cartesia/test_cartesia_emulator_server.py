"""The Cartesia emulator's sans-I/O core: routing, refusals, buffering, chunks, failures."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from voiceagent.emulators.cartesia_audio import Rendering
from voiceagent.emulators.cartesia_config import CartesiaEmulatorConfig
from voiceagent.emulators.cartesia_server import (
    CartesiaServer,
    Complete,
    ContextText,
    Feed,
    InjectedFailure,
    Reply,
    StartContext,
    StopContext,
    Voice,
)

VOICE = {"mode": "id", "id": "v-1"}
FORMAT = {"container": "raw", "encoding": "pcm_s16le", "sample_rate": 24000}


def request(context_id: str, transcript: str, *, more: bool = False, **extra: Any) -> bytes:
    msg = {"context_id": context_id, "model_id": "sonic-3", "transcript": transcript}
    return orjson.dumps({**msg, "voice": VOICE, "output_format": FORMAT, "continue": more, **extra})


def errors(outputs: list[Any]) -> list[str]:
    return [o.message["message"] for o in outputs if isinstance(o, Reply)]


def test_a_new_context_starts_a_worker_and_feeds_it_then_refuses_reuse() -> None:
    server = CartesiaServer(CartesiaEmulatorConfig(), number=1)
    start, feed = server.receive(request("c1", "Hi.", more=True))
    assert isinstance(start, StartContext) and isinstance(feed, Feed)
    ctx = start.context
    assert feed.context is ctx and server.contexts == {"c1": ctx}

    stop, *_ = server.receive(orjson.dumps({"context_id": "c1", "cancel": True}))
    assert stop == StopContext(ctx) and ctx.cancelled and not server.contexts
    assert errors(server.receive(request("c1", "again"))) == ["Context has closed"]


def test_refusals_end_the_context_and_answer_one_error() -> None:
    server = CartesiaServer(CartesiaEmulatorConfig(max_contexts_per_socket=1), number=7)
    ctx = server.receive(request("c1", "a", more=True))[0].context
    # Another voice in the same context: locked fields must not change.
    changed = server.receive(request("c1", "b", more=True, language="fr"))
    assert isinstance(changed[0], StopContext) and ctx.cancelled
    assert "must stay the same" in errors(changed)[0]
    assert changed[1].message["request_id"] == "emu-7-1"

    server.receive(request("c2", "a", more=True))
    [full] = server.receive(request("c3", "a", more=True))
    assert full.message["status_code"] == 429 and full.context is None


def test_buffered_text_waits_for_a_sentence_or_the_delay() -> None:
    server = CartesiaServer(CartesiaEmulatorConfig(), number=1)
    start, feed = server.receive(request("c1", "Hello", more=True, max_buffer_delay_ms=200))
    text = ContextText(start.context)
    assert text.add(feed.request, now=10.0) == []
    assert text.deadline() == 10.2
    assert text.expired() == Voice("Hello", None) and text.deadline() == float("inf")

    assert text.add(feed.request, now=11.0) == []
    [last] = server.receive(request("c1", " there.", max_buffer_delay_ms=200))
    voice, done, complete = text.add(last.request, now=11.1)
    assert voice == Voice("Hello there.", None)
    assert done.message["type"] == "done" and isinstance(complete, Complete)


def test_chunks_follow_the_timestamps_and_fail_where_injected() -> None:
    config = CartesiaEmulatorConfig(chunk_ms=100, realtime_factor=0.5, error_after_chunks=2)
    server = CartesiaServer(config, number=1)
    ctx = server.receive(request("c1", "one two", more=True, add_timestamps=True))[0].context
    rendering = Rendering(np.zeros(24_000 * 3 // 10, np.float32), 24_000, ["one"], [0.0], [0.2])
    voicing = server.voicing(ctx, rendering, flush_id=None)
    assert [r.message["type"] for r in voicing.header] == ["timestamps"]
    assert len(voicing.pieces) == 3 and voicing.interval_s == 0.05
    assert ctx.elapsed_s == 0.3  # the next rendering's timestamps start here

    sent = [server.chunk(ctx, voicing, i) for i in range(3)]
    assert [s.message["type"] for s in sent[:2]] == ["chunk", "chunk"]
    assert isinstance(sent[2], InjectedFailure) and sent[2].reply.context is None
    assert sent[2].reply.message["status_code"] == 500 and not ctx.cancelled
