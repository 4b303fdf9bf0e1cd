"""Running one tool call: validate, bound in time, turn every failure into a readable result.

`run_tool` never raises for anything the tool or the model did wrong; it returns a
`ToolResult` whose `output` the model reads ("error: ..." on failure) and whose `error`
the session puts in the `tool_end` event. Only `trio.Cancelled` propagates: the caller's
cancel scope (an interrupt, the session closing) decides a call's fate, and the call
stops at once.

Sync tools run in a worker thread behind the caller's `CapacityLimiter`. Python cannot
kill a thread, so a sync call that is cancelled or times out is *abandoned*: its result
is dropped and its thread, still holding a limiter token, finishes in the background.
Async tools are cancelled for real.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import trio

from voiceagent.graph.schema import ToolArgumentError
from voiceagent.graph.tools import FunctionTool, ToolContext, ToolError

log = logging.getLogger(__name__)

# A tool output is read by a model and often spoken: anything longer is cut.
MAX_OUTPUT_CHARS = 8000


@dataclass(frozen=True, slots=True)
class ToolResult:
    """`output` is what the model reads; `error` is None on success, else the reason."""

    output: str
    error: str | None = None

    @classmethod
    def failure(cls, reason: str) -> ToolResult:
        return cls(output=f"error: {reason}", error=reason)


def _as_text(value: Any) -> str:
    if value is None:
        text = "done"
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=str).decode()
        except TypeError:
            text = str(value)
    if len(text) > MAX_OUTPUT_CHARS:
        text = text[:MAX_OUTPUT_CHARS] + " ...(truncated)"
    return text


async def _call(
    tool: FunctionTool, kwargs: dict[str, Any], ctx: ToolContext, limiter: trio.CapacityLimiter
) -> Any:
    args = (ctx,) if tool.takes_context else ()
    if tool.is_async:
        return await tool.func(*args, **kwargs)
    call = functools.partial(tool.func, *args, **kwargs)
    return await trio.to_thread.run_sync(
        call, limiter=limiter, abandon_on_cancel=True, thread_name=f"tool {tool.name}"
    )


async def run_tool(
    tool: FunctionTool,
    arguments: str,
    ctx: ToolContext,
    *,
    limiter: trio.CapacityLimiter,
) -> ToolResult:
    """Run one call of `tool` with the model's JSON `arguments`.

    On bad arguments, an exception or the tool's timeout: an error `ToolResult`.
    On cancellation from outside: `trio.Cancelled` propagates (a sync tool's thread is
    abandoned, see the module docstring).
    """
    try:
        kwargs = tool.parse_arguments(arguments)
    except ToolArgumentError as exc:
        return ToolResult.failure(f"invalid arguments for {tool.name}: {exc}")

    deadline = trio.current_time() + tool.timeout if tool.timeout is not None else float("inf")
    with trio.move_on_at(deadline):
        try:
            value = await _call(tool, kwargs, ctx, limiter)
        except ToolError as exc:
            return ToolResult.failure(str(exc) or f"{tool.name} failed")
        except Exception as exc:
            log.warning("session %s: tool %s raised", ctx.session_id, tool.name, exc_info=True)
            return ToolResult.failure(f"{tool.name} failed: {type(exc).__name__}: {exc}")
        return ToolResult(output=_as_text(value))
    # Only the deadline can get us here: an outer cancel would have raised through.
    return ToolResult.failure(f"timed out after {tool.timeout:g}s")
