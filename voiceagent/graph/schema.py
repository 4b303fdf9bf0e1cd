"""JSON schemas from Python signatures, and argument validation against them.

`derive_parameters(func)` reads type hints and the Google-style docstring (`Args:`
section) and builds the `parameters` object a Realtime model expects. `coerce_arguments`
checks a model's JSON arguments against the same information and returns the keyword
arguments to call the function with. Both are pure.

Supported annotations: str, int, float, bool, None-able (`X | None`, `Optional[X]`),
`Literal[...]`, `enum.Enum` subclasses, `list[X]`/`tuple[X, ...]`/`set[X]`, `dict[str, X]`
and `Annotated[X, "description"]`. Anything else raises `TypeError` when the tool is
declared, not when the model calls it.
"""

from __future__ import annotations

import enum
import inspect
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_NO_DEFAULT = inspect.Parameter.empty


class ToolArgumentError(ValueError):
    """The model's arguments do not fit the tool's schema (its message is model-readable)."""


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    annotation: Any
    required: bool
    default: Any = None


@dataclass(frozen=True, slots=True)
class Docstring:
    summary: str
    args: dict[str, str]


_SECTION_RE = re.compile(
    r"^\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Examples?|Notes?):\s*$"
)
_ARG_RE = re.compile(r"^\s*(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> Docstring:
    """Summary (everything before the first section) and the `Args:` descriptions."""
    lines = inspect.cleandoc(doc or "").splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section = ""
    current = ""
    arg_indent = -1
    for line in lines:
        heading = _SECTION_RE.match(line)
        if heading:
            section = heading.group(1).lower()
            current, arg_indent = "", -1
            continue
        if not section:
            summary.append(line)
            continue
        if section not in ("args", "arguments", "parameters") or not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        match = _ARG_RE.match(line)
        if match and (arg_indent < 0 or indent <= arg_indent):
            arg_indent = indent
            current = match.group(1).lstrip("*")
            args[current] = match.group(2).strip()
        elif current:
            args[current] = (args[current] + " " + line.strip()).strip()
    text = " ".join(" ".join(summary).split())
    return Docstring(text, args)


def _strip_annotated(annotation: Any) -> tuple[Any, str | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        description = next((e for e in extras if isinstance(e, str)), None)
        return base, description
    return annotation, None


def _is_none_union(annotation: Any) -> tuple[bool, Any]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) < len(typing.get_args(annotation)):
            inner = members[0] if len(members) == 1 else typing.Union[tuple(members)]  # noqa: UP007
            return True, inner
    return False, annotation


def type_schema(annotation: Any, *, where: str) -> dict[str, Any]:
    """The JSON schema for one annotation; `where` names it in error messages."""
    annotation, description = _strip_annotated(annotation)
    schema = _type_schema(annotation, where=where)
    if description:
        schema["description"] = description
    return schema


def _type_schema(annotation: Any, *, where: str) -> dict[str, Any]:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    nullable, inner = _is_none_union(annotation)
    if nullable:
        schema = type_schema(inner, where=where)
        kind = schema.get("type")
        if isinstance(kind, str):
            schema["type"] = [kind, "null"]
        elif schema:
            schema = {"anyOf": [schema, {"type": "null"}]}
        return schema
    if annotation in _PRIMITIVES:
        return {"type": _PRIMITIVES[annotation]}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = [member.value for member in annotation]
        return {"type": _json_type_of(values, where=where), "enum": values}
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = list(typing.get_args(annotation))
        return {"type": _json_type_of(values, where=where), "enum": values}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [type_schema(a, where=where) for a in typing.get_args(annotation)]}
    if annotation in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        schema: dict[str, Any] = {"type": "array"}
        if args:
            schema["items"] = type_schema(args[0], where=where)
        return schema
    if annotation is dict or origin is dict:
        args = typing.get_args(annotation)
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = type_schema(args[1], where=where)
        return schema
    raise TypeError(f"{where}: unsupported type annotation {annotation!r}")


def _json_type_of(values: list[Any], *, where: str) -> str:
    kinds = {_PRIMITIVES.get(type(v)) for v in values}
    if len(kinds) != 1 or None in kinds:
        raise TypeError(f"{where}: enum values must share one JSON type, got {values!r}")
    return kinds.pop() or "string"


def derive_parameters(
    func: Callable[..., Any], *, skip: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], list[ParamInfo], Docstring]:
    """The `parameters` schema of `func` (minus the names in `skip`) and what it was built from."""
    where = getattr(func, "__qualname__", repr(func))
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # a name that is not importable where the function lives
        raise TypeError(f"{where}: cannot resolve type hints: {exc}") from exc
    doc = parse_docstring(func.__doc__)
    properties: dict[str, Any] = {}
    required: list[str] = []
    params: list[ParamInfo] = []
    for param in inspect.signature(func).parameters.values():
        if param.name in skip:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            raise TypeError(f"{where}: parameter {param.name!r} must be a named parameter")
        annotation = hints.get(param.name, inspect.Parameter.empty)
        schema = type_schema(annotation, where=f"{where}({param.name})")
        if param.name in doc.args and "description" not in schema:
            schema["description"] = doc.args[param.name]
        has_default = param.default is not _NO_DEFAULT
        if has_default and _jsonable(param.default):
            schema["default"] = _plain(param.default)
        properties[param.name] = schema
        if not has_default:
            required.append(param.name)
        params.append(ParamInfo(param.name, annotation, not has_default, param.default))
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    parameters["required"] = required
    parameters["additionalProperties"] = False
    return parameters, params, doc


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _jsonable(value: Any) -> bool:
    value = _plain(value)
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_jsonable(v) for v in value)
    return False


# -- validation ------------------------------------------------------------------------


def coerce_arguments(params: list[ParamInfo], arguments: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for the function, or `ToolArgumentError` saying what is wrong.

    Lenient where models commonly are sloppy and nothing is lost: a number given for a
    string becomes its text ("123456"), an integral float counts as an integer.
    """
    known = {p.name: p for p in params}
    unexpected = sorted(set(arguments) - set(known))
    if unexpected:
        raise ToolArgumentError(f"unexpected argument {unexpected[0]!r}")
    kwargs: dict[str, Any] = {}
    for param in params:
        if param.name not in arguments:
            if param.required:
                raise ToolArgumentError(f"missing required argument {param.name!r}")
            continue
        kwargs[param.name] = _coerce(param.annotation, arguments[param.name], param.name)
    return kwargs


def _coerce(annotation: Any, value: Any, path: str) -> Any:
    annotation, _ = _strip_annotated(annotation)
    if annotation is inspect.Parameter.empty or annotation is Any:
        return value
    nullable, inner = _is_none_union(annotation)
    if nullable:
        return None if value is None else _coerce(inner, value, path)
    if value is None:
        raise ToolArgumentError(f"argument {path!r} must not be null")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ToolArgumentError(f"argument {path!r} must be true or false")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ToolArgumentError(f"argument {path!r} must be an integer")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ToolArgumentError(f"argument {path!r} must be a number")
    if annotation is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ToolArgumentError(f"argument {path!r} must be a string")
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in annotation)
            raise ToolArgumentError(f"argument {path!r} must be one of {allowed}") from None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        if value in args:
            return value
        allowed = ", ".join(repr(a) for a in args)
        raise ToolArgumentError(f"argument {path!r} must be one of {allowed}")
    if origin in (typing.Union, types.UnionType):
        for member in args:
            try:
                return _coerce(member, value, path)
            except ToolArgumentError:
                continue
        raise ToolArgumentError(f"argument {path!r} has the wrong type")
    if annotation in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset):
        if not isinstance(value, list):
            raise ToolArgumentError(f"argument {path!r} must be a list")
        item_type = next((a for a in args if a is not Ellipsis), Any)
        items = [_coerce(item_type, v, f"{path}[{i}]") for i, v in enumerate(value)]
        container = origin or annotation
        return items if container is list else container(items)
    if annotation is dict or origin is dict:
        if not isinstance(value, dict):
            raise ToolArgumentError(f"argument {path!r} must be an object")
        value_type = args[1] if len(args) == 2 else Any
        return {k: _coerce(value_type, v, f"{path}.{k}") for k, v in value.items()}
    return value
