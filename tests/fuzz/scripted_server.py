"""A voiceagent server on the scripted model and voice, for hostile-input tests.

Run as `python -m tests.fuzz.scripted_server PORT_FILE`: serves on 127.0.0.1 (a free
port, written to PORT_FILE once listening) until SIGTERM. Its own process, so that what
the tests measure (a neighbour room's audio) is not disturbed by the test's own CPU.
The error budget is lifted so that every generated message reaches the session.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from tests.conftest import make_services
from voiceagent.app import create_app
from voiceagent.config import Settings
from voiceagent.models.scripted import ScriptedModel, ScriptedReply
from voiceagent.tts.scripted import ScriptedTTS

STORY = " ".join(f"word{i}" for i in range(400))  # ~30 s of paced audio


async def main(port_file: Path) -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = Settings(ws_max_errors=1_000_000)
    model = ScriptedModel(
        default=ScriptedReply("All right."), replies={"story": ScriptedReply(STORY)}
    )
    app = create_app(
        services=make_services(model, ScriptedTTS(realtime_factor=1.0), settings=settings)
    )
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.websocket_ping_interval = None
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

        async def stop() -> None:
            async for _ in signals:
                return

        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                lambda task_status: serve(
                    app, config, shutdown_trigger=stop, task_status=task_status
                )
            )
            await trio.Path(port_file).write_text(binds[0].rsplit(":", 1)[1])


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]))
