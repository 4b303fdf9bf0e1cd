"""Function tools: plain Python functions the model may call.

    @function_tool(timeout=5, examples=("change my seat",))
    async def update_seat(ctx: ToolContext, confirmation_number: str, new_seat: str) -> str:
        '''Change the seat on a booking.

        Args:
            confirmation_number: Your confirmation number, like ABC123.
            new_seat: The new seat, like 14C.
        '''

The schema comes from the signature and the docstring (see `voiceagent.graph.schema`).
A first parameter annotated `ToolContext` is injected by the runtime and hidden from the
model. A tool reports a failure the caller should hear by raising `ToolError("...")`;
any other exception is reported too, as "<Type>: <message>".
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, overload

import orjson

from voiceagent.conversation import ToolSpec
from voiceagent.graph.schema import (
    ParamInfo,
    ToolArgumentError,
    coerce_arguments,
    derive_parameters,
)

DEFAULT_TOOL_TIMEOUT_S = 10.0


class ToolError(Exception):
    """Raised by a tool for a failure the model should read and say ("seat 99Z is not valid")."""


@dataclass(slots=True)
class ToolContext:
    """Per-session context for tools. `state` survives handoffs and lives as long as the session."""

    session_id: str
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class FunctionTool:
    """A callable tool with its model-facing schema. Build it with `function_tool`."""

    name: str
    description: str
    parameters: dict[str, Any]
    func: Callable[..., Any]
    params: list[ParamInfo]
    timeout: float | None = DEFAULT_TOOL_TIMEOUT_S
    cancel_on_interrupt: bool = True
    examples: tuple[str, ...] = ()
    takes_context: bool = False
    is_async: bool = False

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters, self.examples)

    def parse_arguments(self, arguments: str | bytes | dict[str, Any] | None) -> dict[str, Any]:
        """Keyword arguments from the model's JSON text; `ToolArgumentError` when unusable."""
        if isinstance(arguments, dict):
            value: Any = arguments
        else:
            text = arguments or b"{}"
            if not text.strip():
                text = b"{}"
            try:
                value = orjson.loads(text)
            except orjson.JSONDecodeError:
                raise ToolArgumentError("arguments are not valid JSON") from None
        if not isinstance(value, dict):
            raise ToolArgumentError("arguments must be a JSON object")
        return coerce_arguments(self.params, value)


def _context_param(func: Callable[..., Any]) -> str | None:
    params = list(inspect.signature(func).parameters.values())
    if not params:
        return None
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # a name that is not importable where the function lives
        raise TypeError(f"{func.__qualname__}: cannot resolve type hints: {exc}") from exc
    return params[0].name if hints.get(params[0].name) is ToolContext else None


def _build(
    func: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    timeout: float | None,
    cancel_on_interrupt: bool,
    examples: tuple[str, ...],
) -> FunctionTool:
    if timeout is not None and timeout <= 0:
        raise ValueError(f"tool {func.__name__}: timeout must be positive or None")
    context = _context_param(func)
    skip = frozenset({context}) if context else frozenset()
    parameters, params, doc = derive_parameters(func, skip=skip)
    return FunctionTool(
        name=name or func.__name__,
        description=description if description is not None else doc.summary,
        parameters=parameters,
        func=func,
        params=params,
        timeout=timeout,
        cancel_on_interrupt=cancel_on_interrupt,
        examples=tuple(examples),
        takes_context=context is not None,
        is_async=inspect.iscoroutinefunction(func),
    )


@overload
def function_tool(func: Callable[..., Any], /) -> FunctionTool: ...


@overload
def function_tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT_S,
    cancel_on_interrupt: bool = True,
    examples: tuple[str, ...] | list[str] = (),
) -> Callable[[Callable[..., Any]], FunctionTool]: ...


def function_tool(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TOOL_TIMEOUT_S,
    cancel_on_interrupt: bool = True,
    examples: tuple[str, ...] | list[str] = (),
) -> FunctionTool | Callable[[Callable[..., Any]], FunctionTool]:
    """Turn a sync or async function into a `FunctionTool`.

    Use bare (`@function_tool`) or with options: `name`/`description` override the
    function's name and docstring summary; `timeout` (seconds, None for none) bounds each
    call; `cancel_on_interrupt=False` lets a call finish when the user barges in (use it
    for writes that must not be half-done); `examples` are phrases the offline brain
    matches requests against (cloud models never see them).
    Raises `TypeError` at declaration for annotations that have no JSON schema.
    """

    def wrap(f: Callable[..., Any]) -> FunctionTool:
        return _build(
            f,
            name=name,
            description=description,
            timeout=timeout,
            cancel_on_interrupt=cancel_on_interrupt,
            examples=tuple(examples),
        )

    if func is not None:
        return wrap(func)
    return wrap
