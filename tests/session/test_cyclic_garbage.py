"""A closed room leaves nothing for the cyclic garbage collector, however it closed.

Over real sockets: the server (Hypercorn on 127.0.0.1, in this process) against the
Realtime and Cartesia emulators run as separate processes (so their own objects never
count here), and against the offline default. Each test opens a warm-up room first
(lazily built module state does not count), then, with the automatic collector off,
runs one room to its end and asserts that `gc.collect()` finds nothing once the room
and its connection are gone. On failure the message lists what was collected.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from tests.conftest import Client, connect, eventually, running_app
from tests.infra import emulator_process
from voiceagent.config import Settings
from voiceagent.providers import build_services
from voiceagent.session.services import Services

QUESTION = "hello there, tell me about your services"
# The policy's ticks would collect and freeze what these tests measure.
NO_GC_POLICY = {"VOICEAGENT_GC_FREEZE_INTERVAL_S": "0"}


@asynccontextmanager
async def emulator(directory: Path, kind: str, *args: str) -> AsyncIterator[int]:
    """`python -m voiceagent.emulators KIND` in its own process; yields its port."""
    async with emulator_process(directory, kind, *args) as (port, _):
        yield port


@asynccontextmanager
async def cloud(
    directory: Path,
    *realtime_args: str,
    cartesia_args: tuple[str, ...] = (),
    fallback: bool = False,
) -> AsyncIterator[tuple[str, Services]]:
    async with (
        emulator(directory, "cartesia", "--realtime-factor", "1.0", *cartesia_args) as cartesia,
        emulator(directory, "realtime", "--audio-rtf", "0.25", *realtime_args) as realtime,
    ):
        settings = Settings.from_env(
            {
                "AZURE_OPENAI_API_KEY": "test-key",
                "AZURE_OPENAI_REALTIME_URL": (
                    f"ws://127.0.0.1:{realtime}/openai/v1/realtime?model=voice-demo"
                ),
                "CARTESIA_API_KEY": "test-key",
                "CARTESIA_WEBSOCKET_URL": f"ws://127.0.0.1:{cartesia}/tts/websocket",
                "VOICEAGENT_TTS": "cartesia",
                "VOICEAGENT_TTS_FALLBACK": "true" if fallback else "false",
                **NO_GC_POLICY,
            }
        )
        services = build_services(settings)
        async with running_app(services) as address:
            yield address, services


@asynccontextmanager
async def offline(directory: Path) -> AsyncIterator[tuple[str, Services]]:
    services = build_services(Settings.from_env(NO_GC_POLICY))
    async with running_app(services) as address:
        yield address, services


# -- how a room ends ------------------------------------------------------------------


async def after_the_answer(client: Client) -> None:
    await client.send(type="text", text=QUESTION)
    await client.wait_for("response_done", within=20)


async def leaving_mid_answer(client: Client) -> None:
    await client.send(type="text", text=QUESTION)
    await client.wait_for("audio_start", within=20)
    await client.receive()


async def interrupting_then_leaving(client: Client) -> None:
    await client.send(type="text", text=QUESTION)
    start = await client.wait_for("audio_start", within=20)
    with trio.fail_after(10):
        while len([o for o, _ in client.audio if o == start["response_id"]]) < 2:
            await client.receive()
    await client.send(type="interrupt")
    await client.wait_for("audio_interrupted")


async def after_a_provider_drop(client: Client) -> None:
    await client.send(type="text", text=QUESTION)
    assert (await client.wait_for("error", within=20))["code"] == "model_dropped"
    await client.wait_for("response_done", within=20)


async def after_a_voice_failure(client: Client) -> None:
    await client.send(type="text", text=QUESTION)
    await client.wait_for("audio_end", within=30)  # after the voice's error (or fallback)


async def leaving_while_the_voice_connects(client: Client) -> None:
    # The emulator holds every Cartesia handshake far longer than this room lives.
    await client.send(type="text", text=QUESTION)
    await client.wait_for("text_delta", within=20)  # the voice is asked for now
    await client.drain(0.5)


Ending = Callable[[Client], Awaitable[None]]


def server_tasks() -> int:
    """Live tasks of this run other than the test's clients (trio-websocket's)."""
    count = 0
    stack = [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if "trio_websocket" not in task.name:
            count += 1
        stack.extend(c for n in task.child_nurseries for c in n.child_tasks)
    return count


async def settled_task_count() -> int:
    """The server's task count once it has not changed for 0.3 s (within 10 s)."""
    last, since = server_tasks(), trio.current_time()
    with trio.fail_after(10):
        while trio.current_time() - since < 0.3:
            await trio.sleep(0.05)
            now = server_tasks()
            if now != last:
                last, since = now, trio.current_time()
    return last


def collected() -> tuple[int, list[tuple[str, int]]]:
    """Run the collector once; (how many objects it found, the commonest types)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        kinds = Counter(type(o).__qualname__ for o in gc.garbage).most_common(12)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    gc.collect()  # what DEBUG_SAVEALL kept is still cyclic: free it for real
    return found, kinds


async def garbage_of_one_room(address: str, services: Services, ending: Ending) -> int:
    async def room(name: str) -> None:
        async with connect(address, name) as client:
            await client.wait_for("session_started")
            await ending(client)

    await room("warm-up")  # lazily built module state does not count
    await eventually(lambda: not len(services.registry))
    baseline = await settled_task_count()
    collected()
    gc.disable()
    try:
        await room("measured")
        await eventually(lambda: not len(services.registry) and server_tasks() <= baseline)
        found, kinds = collected()
    finally:
        gc.enable()
    assert found == 0, f"a closed room left {found} objects in reference cycles: {kinds}"
    return found


@pytest.mark.parametrize(
    "ending", [after_the_answer, leaving_mid_answer, interrupting_then_leaving]
)
async def test_a_closed_cloud_room_leaves_no_cyclic_garbage(tmp_path: Path, ending: Ending) -> None:
    async with cloud(tmp_path) as (address, services):
        await garbage_of_one_room(address, services, ending)


async def test_a_room_whose_model_dropped_leaves_no_cyclic_garbage(tmp_path: Path) -> None:
    # Every connection's first response is dropped after two deltas.
    drop = ("--drop-on-response", "1", "--after-deltas", "2")
    async with cloud(tmp_path, *drop) as (address, services):
        await garbage_of_one_room(address, services, after_a_provider_drop)


async def test_a_room_left_while_its_voice_connects_leaves_no_cyclic_garbage(
    tmp_path: Path,
) -> None:
    slow = ("--handshake-delay-ms", "60000")
    async with cloud(tmp_path, cartesia_args=slow) as (address, services):
        await garbage_of_one_room(address, services, leaving_while_the_voice_connects)


@pytest.mark.parametrize("fallback", [False, True])
async def test_a_room_whose_voice_failed_leaves_no_cyclic_garbage(
    tmp_path: Path, fallback: bool
) -> None:
    # Cartesia fails every stream after its first chunk (then the local voice takes
    # over when the fallback is on).
    failing = ("--error-after-chunks", "1")
    async with cloud(tmp_path, cartesia_args=failing, fallback=fallback) as (address, services):
        await garbage_of_one_room(address, services, after_a_voice_failure)


@pytest.mark.parametrize(
    "ending", [after_the_answer, leaving_mid_answer, interrupting_then_leaving]
)
async def test_a_closed_offline_room_leaves_no_cyclic_garbage(
    tmp_path: Path, ending: Ending
) -> None:
    async with offline(tmp_path) as (address, services):
        await garbage_of_one_room(address, services, ending)
