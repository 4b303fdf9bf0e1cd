"""The Realtime emulator, timing its own part of every answer (benchmarks only).

`python benchmarks/_stamped_realtime.py --times-file PATH [realtime emulator options]`
runs `voiceagent.emulators.realtime` unchanged except that each connection notes when a
`response.create` arrives and, at the answer's first text delta, appends a line
"<wall clock s> <ms>" to PATH: the emulator's share of the server's model stage (its
first-token delay, its own event loop and its core). A benchmark reads the lines of its
window (`_emulators.read_times`); the server's `metrics` events give the whole model stage.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import raise_nofile

from voiceagent.emulators import realtime, realtime_connection

_Connection = realtime_connection.RealtimeEmulatorConnection


def stamp_responses(times_file: Path) -> None:
    """Wrap the emulator's connection so that each answer's first delta is timed."""
    out = open(times_file, "a", buffering=1)  # open for the process's life
    handle, emit = _Connection.handle, _Connection.emit
    asked: dict[int, float] = {}  # connection id -> when its response.create arrived

    async def timed_handle(self: Any, message: str | bytes) -> None:
        if isinstance(message, str) and '"response.create"' in message:
            asked[id(self)] = time.monotonic()
        await handle(self, message)

    async def timed_emit(self: Any, event: dict[str, Any]) -> None:
        if event.get("type", "").endswith("text.delta"):
            since = asked.pop(id(self), None)
            if since is not None:
                out.write(f"{time.time():.4f} {(time.monotonic() - since) * 1000:.2f}\n")
        await emit(self, event)

    _Connection.handle = timed_handle  # type: ignore[method-assign]
    _Connection.emit = timed_emit  # type: ignore[method-assign]


if __name__ == "__main__":
    raise_nofile()
    argv = sys.argv[1:]
    at = argv.index("--times-file")
    stamp_responses(Path(argv[at + 1]))
    raise SystemExit(realtime.main(argv[:at] + argv[at + 2 :]))
