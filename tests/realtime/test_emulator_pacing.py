"""The Realtime emulator keeps its own clock: a slow send does not make later deltas later.

A remote model writes at its own pace however busy the client's machine is. The emulator
runs on the test machine, so a send that takes long (a loaded core, a full socket) must
not push every following delta back by as much, or a load benchmark would measure the
emulator's drift as the server's latency.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import trio
import trio.testing

from voiceagent.emulators.realtime_config import EmulatorConfig
from voiceagent.emulators.realtime_generator import ResponseGenerator
from voiceagent.emulators.realtime_parts import CannedBrain
from voiceagent.emulators.realtime_server import RealtimeServer, StartResponse
from voiceagent.emulators.realtime_session import SessionState

SLOW_SEND_S = 0.008  # every send of the emulator takes this long (the gap is 20 ms)


async def _delta_times(modalities: list[str], kind: str, **config: Any) -> list[float]:
    """Run one response with slow sends; when each send of a `kind` delta began."""
    server = RealtimeServer("ga", SessionState(id="sess_1abcd", model="m"))
    create = {"type": "response.create", "response": {"output_modalities": modalities}}
    (response,) = [o for o in server.receive(orjson.dumps(create).decode())
                   if isinstance(o, StartResponse)]  # fmt: skip
    times: list[float] = []

    async def slow_emit(event: dict[str, Any]) -> None:
        if event["type"] == kind:
            times.append(trio.current_time())
        await trio.sleep(SLOW_SEND_S)

    async def never_drop() -> None:
        raise AssertionError("no fault was asked for")

    brain = CannedBrain("one two three four five six seven eight nine ten eleven twelve")
    generator = ResponseGenerator(server, EmulatorConfig(**config), brain, slow_emit, never_drop)
    await generator.run(response.response)
    return times


async def test_text_deltas_keep_their_rate_when_sends_are_slow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    times = await _delta_times(["text"], "response.output_text.delta", tokens_per_s=50)
    assert len(times) == 12
    # Word n is due n/50 s after the output starts, whatever the sends before it cost.
    first = times[0] - 0.02
    due = [first + n * 0.02 for n in range(1, 13)]
    assert max(abs(t - d) for t, d in zip(times, due, strict=True)) < 1e-6
    # The answer ends where 12 words at 50/s end, not 12 slow sends later.
    assert times[-1] - first < 12 * 0.02 + 1e-6


async def test_audio_chunks_keep_real_time_when_sends_are_slow(
    autojump_clock: trio.testing.MockClock,
) -> None:
    times = await _delta_times(
        ["audio"], "response.output_audio.delta", audio_rtf=1.0, audio_chunk_ms=100
    )
    assert len(times) >= 4, "the answer should span several audio chunks"
    # Each chunk is due its own length (100 ms; the last one may be shorter) after the
    # one before: the slow sends of the transcript words between them are absorbed.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(abs(gap - 0.1) for gap in gaps[:-1]) < 1e-6
    assert 0 < gaps[-1] <= 0.1 + 1e-6
