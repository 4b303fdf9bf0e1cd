"""Structured logs carry the session id bound by the session, on every line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import trio
import trio.lowlevel

from voiceagent.logs import bind_session, log_event, setup_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """setup_logging configures the root logger; leave it as other tests expect it."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        root.setLevel(level)
        root.handlers[:] = handlers


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Logger]]:
    stream = io.StringIO()
    handler = setup_logging("debug", "kv", stream=stream)
    try:
        yield stream, logging.getLogger("voiceagent.test")
    finally:
        logging.getLogger().removeHandler(handler)


async def test_tasks_spawned_inside_a_bound_session_log_its_id(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured

    async def worker(name: str) -> None:
        await trio.lowlevel.checkpoint()
        log.info("worker %s ran", name)

    with bind_session("room-7"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker, "reader")
            nursery.start_soon(worker, "writer")
    log.info("outside")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert all("session=room-7" in line for line in lines[:2])
    assert "session=" not in lines[2]


async def test_two_sessions_do_not_mix_ids(captured: tuple[io.StringIO, logging.Logger]) -> None:
    stream, log = captured

    async def session(session_id: str) -> None:
        with bind_session(session_id):
            for _ in range(3):
                await trio.lowlevel.checkpoint()
                log.info("tick")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(session, "a")
        nursery.start_soon(session, "b")

    lines = stream.getvalue().splitlines()
    assert sorted(line.split("session=")[1].split()[0] for line in lines) == ["a"] * 3 + ["b"] * 3


def test_kv_lines_quote_values_so_one_event_is_one_line(
    captured: tuple[io.StringIO, logging.Logger],
) -> None:
    stream, log = captured
    with bind_session("s1"):
        log_event(log, "tool_end", output='two\nlines "quoted"', turn_ms=12.5)

    (line,) = stream.getvalue().splitlines()
    assert 'output="two\\nlines \\"quoted\\""' in line
    assert "msg=tool_end" in line and "turn_ms=12.5" in line and "session=s1" in line


def test_json_format_is_one_object_per_line_with_session() -> None:
    stream = io.StringIO()
    handler = setup_logging("info", "json", stream=stream)
    try:
        log = logging.getLogger("voiceagent.test")
        with bind_session("room1"):
            log_event(log, "turn_done", turn_ms=400)
        log.debug("below the level")
    finally:
        logging.getLogger().removeHandler(handler)

    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["session"] == "room1"
    assert record["msg"] == "turn_done"
    assert record["turn_ms"] == 400
    assert record["level"] == "info"


def test_level_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEAGENT_LOG_LEVEL", "warning")
    stream = io.StringIO()
    handler = setup_logging(stream=stream)
    try:
        log = logging.getLogger("voiceagent.test")
        log.info("hidden")
        log.warning("shown")
    finally:
        logging.getLogger().removeHandler(handler)

    assert stream.getvalue().count("\n") == 1
    assert "msg=shown" in stream.getvalue()


@pytest.mark.parametrize(("level", "fmt"), [("loud", "kv"), ("info", "xml")])
def test_bad_level_or_format_is_a_clear_error(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match=r"log (level|format)"):
        setup_logging(level, fmt)


def test_setup_twice_replaces_its_own_handler() -> None:
    first = setup_logging("info", "kv", stream=io.StringIO())
    second = setup_logging("info", "kv", stream=io.StringIO())
    try:
        handlers = logging.getLogger().handlers
        assert second in handlers and first not in handlers
    finally:
        logging.getLogger().removeHandler(second)
