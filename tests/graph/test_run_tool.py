"""run_tool: every way a tool call can end, and who decides when it stops."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from voiceagent.graph import ToolContext, ToolError, ToolResult, function_tool, run_tool
from voiceagent.graph.execution import MAX_OUTPUT_CHARS


def ctx() -> ToolContext:
    return ToolContext(session_id="s1")


def limiter() -> trio.CapacityLimiter:
    return trio.CapacityLimiter(2)


@function_tool
def add(a: int, b: int = 1) -> int:
    """Add numbers.

    Args:
        a: First.
        b: Second.
    """
    return a + b


@function_tool
def where_am_i() -> str:
    """The thread this runs in."""
    return threading.current_thread().name


@function_tool
async def remember(ctx: ToolContext, key: str, value: str) -> str:
    """Store a value for this session.

    Args:
        key: Name.
        value: Value.
    """
    ctx.state[key] = value
    return f"{ctx.session_id} stored {key}"


@function_tool
def broken(reason: str) -> str:
    """Always fails.

    Args:
        reason: Why.
    """
    raise RuntimeError(reason)


@function_tool
async def polite_failure() -> str:
    """Fails the way a tool should."""
    raise ToolError("the booking system is closed tonight")


@function_tool(timeout=5)
async def sleepy() -> str:
    """Takes an hour."""
    await trio.sleep(3600)
    return "finally"


async def test_sync_tool_returns_its_output() -> None:
    result = await run_tool(add, '{"a": 2, "b": 3}', ctx(), limiter=limiter())
    assert result == ToolResult(output="5", error=None)


async def test_defaults_apply_when_arguments_are_omitted() -> None:
    assert (await run_tool(add, '{"a": 41}', ctx(), limiter=limiter())).output == "42"


async def test_sync_tool_runs_in_a_worker_thread() -> None:
    result = await run_tool(where_am_i, "{}", ctx(), limiter=limiter())
    assert result.error is None
    assert result.output != threading.current_thread().name
    assert "where_am_i" in result.output  # the thread is named after the tool


async def test_context_is_injected_and_state_persists() -> None:
    context = ctx()
    result = await run_tool(remember, '{"key": "seat", "value": "14C"}', context, limiter=limiter())
    assert result.output == "s1 stored seat"
    assert context.state == {"seat": "14C"}


async def test_bad_json_is_an_error_result_and_the_tool_does_not_run() -> None:
    context = ctx()
    result = await run_tool(remember, "{not json", context, limiter=limiter())
    assert result.output.startswith("error: invalid arguments for remember")
    assert "not valid JSON" in (result.error or "")
    assert context.state == {}


async def test_missing_and_mistyped_arguments_are_error_results() -> None:
    missing = await run_tool(add, "{}", ctx(), limiter=limiter())
    assert missing.output == "error: invalid arguments for add: missing required argument 'a'"
    wrong = await run_tool(add, '{"a": "x"}', ctx(), limiter=limiter())
    assert wrong.error == "invalid arguments for add: argument 'a' must be an integer"


async def test_an_exception_becomes_an_error_result() -> None:
    result = await run_tool(broken, '{"reason": "disk on fire"}', ctx(), limiter=limiter())
    assert result.output == "error: broken failed: RuntimeError: disk on fire"
    assert result.error == "broken failed: RuntimeError: disk on fire"


async def test_tool_error_message_is_passed_through_as_is() -> None:
    result = await run_tool(polite_failure, "", ctx(), limiter=limiter())
    assert result.output == "error: the booking system is closed tonight"


async def test_async_tool_times_out(autojump_clock: trio.testing.MockClock) -> None:
    result = await run_tool(sleepy, "{}", ctx(), limiter=limiter())
    assert result == ToolResult("error: timed out after 5s", "timed out after 5s")


async def test_sync_tool_timeout_abandons_the_thread() -> None:
    release = threading.Event()

    @function_tool(timeout=0.05)
    def stuck() -> str:
        """Blocks until released."""
        release.wait(10)
        return "late"

    try:
        result = await run_tool(stuck, "{}", ctx(), limiter=limiter())
    finally:
        release.set()
    assert result.output == "error: timed out after 0.05s"


async def test_outer_cancellation_propagates_from_an_async_tool(
    autojump_clock: trio.testing.MockClock,
) -> None:
    finished: list[ToolResult] = []
    with trio.move_on_after(1) as scope:
        finished.append(await run_tool(sleepy, "{}", ctx(), limiter=limiter()))
    assert scope.cancelled_caught
    assert finished == []


async def test_outer_cancellation_propagates_from_a_sync_tool() -> None:
    started, release = threading.Event(), threading.Event()

    @function_tool(timeout=None)
    def blocking() -> str:
        """Blocks until released."""
        started.set()
        release.wait(10)
        return "late"

    finished: list[ToolResult] = []
    try:
        async with trio.open_nursery() as nursery:

            async def call() -> None:
                finished.append(await run_tool(blocking, "{}", ctx(), limiter=limiter()))

            nursery.start_soon(call)
            await trio.to_thread.run_sync(started.wait, 10)
            nursery.cancel_scope.cancel()
    finally:
        release.set()
    assert finished == []


async def test_the_limiter_caps_concurrent_sync_tools() -> None:
    lock = threading.Lock()
    running = peak = 0

    @function_tool
    def busy(n: int) -> int:
        """Work a little.

        Args:
            n: Call number.
        """
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        threading.Event().wait(0.02)
        with lock:
            running -= 1
        return n

    one = trio.CapacityLimiter(1)
    results: list[str] = []
    async with trio.open_nursery() as nursery:
        for n in range(4):

            async def call(n: int = n) -> None:
                results.append((await run_tool(busy, f'{{"n": {n}}}', ctx(), limiter=one)).output)

            nursery.start_soon(call)
    assert sorted(results) == ["0", "1", "2", "3"]
    assert peak == 1


@pytest.mark.parametrize(
    ("value", "output"),
    [(None, "done"), ({"seat": "14C"}, '{"seat":"14C"}'), ([1, 2], "[1,2]"), (7, "7")],
)
async def test_outputs_that_are_not_text_are_serialised(value: object, output: str) -> None:
    @function_tool
    async def give() -> object:
        """Give a value."""
        return value

    assert (await run_tool(give, "{}", ctx(), limiter=limiter())).output == output


async def test_huge_outputs_are_truncated() -> None:
    @function_tool
    async def flood() -> str:
        """Too much text."""
        return "x" * (MAX_OUTPUT_CHARS * 3)

    output = (await run_tool(flood, "{}", ctx(), limiter=limiter())).output
    assert len(output) < MAX_OUTPUT_CHARS + 50
    assert output.endswith("(truncated)")
