"""The Realtime and Cartesia emulators as servers for a benchmark, and the settings
that point a voiceagent server at them (shared by active_rooms, density, room_churn)."""

from __future__ import annotations

import contextlib
import sys
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
    Realtime side answers every turn with `canned` after `ttft` s at `token_rate` deltas/s.
    """
    rt_port, ca_port = free_port(), free_port()
    rt_argv = [sys.executable, "-m", "voiceagent.emulators", "realtime", "--port", str(rt_port),
               "--canned", canned, "--ttft", str(ttft),
               "--token-rate", str(token_rate)]  # fmt: skip
    ca_argv = [sys.executable, str(HERE / "_stamped_cartesia.py"), "--port", str(ca_port),
               "--realtime-factor", "1", "--first-chunk-ms", str(first_chunk_ms),
               "--chunk-ms", "100", "--idle-close-s", "0"]  # fmt: skip
    with (
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
        )
