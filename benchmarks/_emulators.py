"""The Realtime and Cartesia emulators as servers for a benchmark, and the settings
that point a voiceagent server at them (shared by active_rooms, density, room_churn)."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from _common import free_port, server_process, wait_port

HERE = Path(__file__).resolve().parent
CANNED = "Sure. One carry-on and one checked bag are included."


@dataclass(frozen=True)
class Emulators:
    pids: dict[str, int]  # {"realtime": pid, "cartesia": pid}, for CPU accounting
    env: dict[str, str]  # a voiceagent server's settings that use them
    # The Realtime emulator's own time to each answer's first delta (_stamped_realtime.py).
    model_times: Path


@contextlib.contextmanager
def emulators(
    name: str,
    cpus: Sequence[int] | None,
    *,
    canned: str = CANNED,
    ttft: float = 0.1,
    token_rate: float = 50,
    first_chunk_ms: float = 90,
) -> Iterator[Emulators]:
    """Start both emulators (pinned to `cpus`), wait until they listen, stop them on exit.

    The Cartesia side is `_stamped_cartesia.py` (real-time audio with send stamps); the
    Realtime side is `_stamped_realtime.py` (it times its part of each answer), answering
    every turn with `canned` after `ttft` s at `token_rate` deltas/s.
    """
    rt_port, ca_port = free_port(), free_port()
    times = tempfile.TemporaryDirectory(prefix=f"voiceagent-bench-{name}-times-")
    model_times = Path(times.name) / "first_delta.txt"
    rt_argv = [sys.executable, str(HERE / "_stamped_realtime.py"), "--times-file",
               str(model_times), "--port", str(rt_port), "--canned", canned,
               "--ttft", str(ttft), "--token-rate", str(token_rate)]  # fmt: skip
    ca_argv = [sys.executable, str(HERE / "_stamped_cartesia.py"), "--port", str(ca_port),
               "--realtime-factor", "1", "--first-chunk-ms", str(first_chunk_ms),
               "--chunk-ms", "100", "--idle-close-s", "0"]  # fmt: skip
    with (
        times,
        server_process(rt_argv, name=f"{name}_realtime", cpus=cpus) as rt,
        server_process(ca_argv, name=f"{name}_cartesia", cpus=cpus) as ca,
    ):
        wait_port(rt_port, rt)
        wait_port(ca_port, ca)
        yield Emulators(
            pids={"realtime": rt.pid, "cartesia": ca.pid},
            env={
                "AZURE_OPENAI_REALTIME_URL": f"ws://127.0.0.1:{rt_port}/openai/v1/realtime?model=x",
                "AZURE_OPENAI_API_KEY": "k",
                "CARTESIA_WEBSOCKET_URL": f"ws://127.0.0.1:{ca_port}/tts/websocket",
                "CARTESIA_API_KEY": "k",
            },
            model_times=model_times,
        )


def read_times(times_file: Path, t0: float, t1: float) -> list[float]:
    """The first-delta times (ms) of answers whose first delta left within [t0, t1]."""
    if not times_file.exists():
        return []
    values = []
    for line in times_file.read_text().splitlines():
        at, _, ms = line.partition(" ")
        if ms and t0 <= float(at) <= t1:
            values.append(float(ms))
    return values
