"""Building blocks of client event validation: checks that raise `ClientEventError`.

A check is ``check(value, param)``: it returns when `value` (found at the dotted path
`param` of the event) is acceptable and raises `ClientEventError` otherwise, with the
code, message and param the service uses: ``invalid_type`` ("Invalid type for 'p':
expected a string, but got integer instead."), ``invalid_value``, ``unknown_parameter``
and ``missing_required_parameter``. Objects report missing required fields before
unknown ones, as the service does. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any, str], None]


class ClientEventError(Exception):
    """A client event the service would refuse; becomes an ``error`` server event."""

    def __init__(
        self, code: str, message: str, param: str | None = None, kind: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.kind = kind


_JSON_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def _type_error(param: str, expected: str, value: Any) -> ClientEventError:
    return ClientEventError(
        "invalid_type",
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param,
    )


# ----------------------------------------------------------------------- check builders


def is_str(value: Any, param: str) -> None:
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)


def is_bool(value: Any, param: str) -> None:
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean", value)


def is_int(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(param, "an integer", value)


def is_number(value: Any, param: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(param, "a decimal", value)


def anything(value: Any, param: str) -> None:
    return None


def one_of(*allowed: Any) -> Check:
    def check(value: Any, param: str) -> None:
        if value not in allowed:
            supported = ", ".join(f"'{a}'" for a in allowed)
            raise ClientEventError(
                "invalid_value",
                f"Invalid value: '{value}'. Supported values are: {supported}.",
                param,
            )

    return check


def nullable(check: Check) -> Check:
    def wrapped(value: Any, param: str) -> None:
        if value is not None:
            check(value, param)

    return wrapped


def either(*checks: Check) -> Check:
    """Accept the value when any check accepts it; report the first check's error."""

    def check(value: Any, param: str) -> None:
        first: ClientEventError | None = None
        for candidate in checks:
            try:
                candidate(value, param)
                return
            except ClientEventError as exc:
                first = first or exc
        assert first is not None
        raise first

    return check


def list_of(item: Check, *, min_len: int = 0, max_len: int | None = None) -> Check:
    def check(value: Any, param: str) -> None:
        if not isinstance(value, list):
            raise _type_error(param, "an array", value)
        if len(value) < min_len or (max_len is not None and len(value) > max_len):
            raise ClientEventError(
                "invalid_value", f"Invalid length for '{param}': {len(value)} items.", param
            )
        for i, entry in enumerate(value):
            item(entry, f"{param}[{i}]")

    return check


def obj(fields: Mapping[str, Check], required: tuple[str, ...] = ()) -> Check:
    """A JSON object with exactly these known fields, `required` ones mandatory."""

    def check(value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise _type_error(param, "an object", value)
        check_object(value, fields, required, param)

    return check


def tagged(tags: Mapping[str, Check], param_suffix: str = "type") -> Check:
    """An object discriminated by its ``type`` field."""

    def check(value: Any, param: str) -> None:
        if not isinstance(value, dict):
            raise _type_error(param, "an object", value)
        tag = value.get("type")
        where = f"{param}.{param_suffix}"
        if tag is None:
            raise ClientEventError(
                "missing_required_parameter", f"Missing required parameter: '{where}'.", where
            )
        if tag not in tags:
            one_of(*tags)(tag, where)
        tags[tag](value, param)

    return check


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def check_object(
    value: dict[str, Any], fields: Mapping[str, Check], required: tuple[str, ...], prefix: str
) -> None:
    # Required fields first: a beta-shaped update sent to GA is reported as missing
    # 'session.type' (not as its unknown beta fields), as the service does.
    for key in required:
        if key not in value:
            param = _join(prefix, key)
            raise ClientEventError(
                "missing_required_parameter", f"Missing required parameter: '{param}'.", param
            )
    for key in value:
        if key not in fields:
            param = _join(prefix, key)
            raise ClientEventError("unknown_parameter", f"Unknown parameter: '{param}'.", param)
    for key, entry in value.items():
        fields[key](entry, _join(prefix, key))
