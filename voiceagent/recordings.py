"""Recordings on disk (`VOICEAGENT_RECORD=1`): one writer task per process.

Each connection's recording is a 16-bit stereo WAV at 24 kHz (user left, agent
right; session/recorder.py decides what goes where) in
`VOICEAGENT_DATA_DIR/recordings/<session_id>/<connection_id>.wav`.

Rules:
1. Rooms never touch the disk: they hand blocks (bytes at a file offset) to a bounded
   channel (`send_nowait`); the writer task writes them from a worker thread with
   `os.pwrite`, so a dropped block (channel full, counted in
   `voiceagent_recording_blocks_dropped_total`) leaves silence and never shifts the
   audio after it.
2. A disk-full or permission fault stops that recording (logged once, with its path)
   and never the room or the other recordings.
3. The header is written with unknown sizes when the file is created and fixed when
   the recording finishes; a recording cut short by a crash still plays in common
   tools (they read to the end of the file), and its data is all there but the last
   second.
4. On shutdown the writer finishes what is queued (app.py closes it after the rooms).
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import trio
from prometheus_client import Counter

from voiceagent.logs import log_event
from voiceagent.metrics import REGISTRY
from voiceagent.pcm import SAMPLE_RATE

log = logging.getLogger("voiceagent.recordings")

HEADER_BYTES = 44
CHANNELS = 2
QUEUE_BLOCKS = 2048  # 200 ms blocks: ~40 MB at most, for every room of the process
BATCH = 64

DROPPED = Counter(
    "voiceagent_recording_blocks_dropped",
    "Recording blocks not written (writer queue full): silence in that recording",
    registry=REGISTRY,
)
FAILED = Counter(
    "voiceagent_recordings_failed",
    "Recordings stopped by a disk fault (disk full, permission)",
    registry=REGISTRY,
)


def wav_header(data_bytes: int) -> bytes:
    block_align = CHANNELS * 2
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        min(0xFFFFFFFF, 36 + data_bytes),
        b"WAVE",
        b"fmt ",
        16,
        1,  # PCM
        CHANNELS,
        SAMPLE_RATE,
        SAMPLE_RATE * block_align,
        block_align,
        16,
        b"data",
        min(0xFFFFFFFF, data_bytes),
    )


@dataclass(eq=False, slots=True)
class RecordingFile:
    path: Path
    fd: int | None = None
    failed: bool = False
    finished: bool = False


@dataclass(frozen=True, slots=True)
class _Block:
    file: RecordingFile
    offset: int  # from the start of the data
    data: bytes


@dataclass(frozen=True, slots=True)
class _Finish:
    file: RecordingFile
    data_bytes: int


class RecordingWriter:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._tx, self._rx = trio.open_memory_channel[_Block | _Finish](QUEUE_BLOCKS)
        self._limiter = trio.CapacityLimiter(1)
        self.finished = trio.Event()

    def path_for(self, session_id: str, connection_id: str) -> Path:
        return self.folder / session_id / f"{connection_id}.wav"

    # -- the rooms' side (rule 1) -------------------------------------------------------------

    def open(self, path: Path) -> RecordingFile:
        return RecordingFile(path)

    def block(self, file: RecordingFile, offset: int, data: bytes) -> None:
        if file.failed:
            return
        try:
            self._tx.send_nowait(_Block(file, offset, data))
        except (trio.WouldBlock, trio.ClosedResourceError):
            DROPPED.inc()

    def finish(self, file: RecordingFile, data_bytes: int) -> None:
        try:
            self._tx.send_nowait(_Finish(file, data_bytes))
        except trio.WouldBlock:
            # The header keeps its "unknown" sizes (rule 3); the audio is there.
            log_event(log, "recording_not_finished", level=logging.WARNING, path=str(file.path))
        except trio.ClosedResourceError:
            pass

    # -- the writer ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                try:
                    batch = [await self._rx.receive()]
                except trio.EndOfChannel:
                    return
                while len(batch) < BATCH:
                    try:
                        batch.append(self._rx.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                await trio.to_thread.run_sync(self._write, batch, limiter=self._limiter)
        finally:
            self.finished.set()

    async def aclose(self, timeout_s: float) -> None:
        """Rule 4."""
        await self._tx.aclose()
        with trio.move_on_after(timeout_s):
            await self.finished.wait()

    def _write(self, batch: list[_Block | _Finish]) -> None:
        for item in batch:
            file = item.file
            if file.failed or file.finished:
                continue
            try:
                if file.fd is None:
                    file.path.parent.mkdir(parents=True, exist_ok=True)
                    file.fd = os.open(file.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
                    os.pwrite(file.fd, wav_header(0xFFFFFFFF - 36), 0)
                if isinstance(item, _Block):
                    os.pwrite(file.fd, item.data, HEADER_BYTES + item.offset)
                else:
                    os.pwrite(file.fd, wav_header(item.data_bytes), 0)
                    os.close(file.fd)
                    file.fd, file.finished = None, True
            except OSError as exc:
                file.failed = True
                FAILED.inc()
                log_event(
                    log,
                    "recording_failed",
                    level=logging.ERROR,
                    path=str(file.path),
                    error=repr(exc),
                )
                if file.fd is not None:
                    try:
                        os.close(file.fd)
                    except OSError:
                        pass
                    file.fd = None
