"""Validation of Realtime client events, as the service does it (sans-I/O).

`validate_client_event(data, flavor)` returns nothing when the event is acceptable and
raises `ClientEventError` (code, message, param) otherwise, worded the way the real
service words it (PROTOCOLS.md §1.1): ``unknown_parameter``, ``missing_required_parameter``,
``invalid_type``, ``invalid_value``. The checks follow the GA (`openai.types.realtime`)
and beta (`openai.types.beta.realtime`) type trees: every field is known, every
required field is present, every type and enumerated value is right. Checking is
exhaustive for the fields a voice agent uses and permissive (any JSON) for a few
opaque objects (prompt, reasoning, tracing, metadata).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Flavor = str  # "ga" | "beta"
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


# ----------------------------------------------------------------------- shared pieces

max_tokens = nullable(either(is_int, one_of("inf")))
tool_choice = either(
    one_of("none", "auto", "required"),
    obj({"type": one_of("function"), "name": is_str}, ("type", "name")),
    obj({"type": one_of("mcp"), "server_label": is_str, "name": nullable(is_str)}, ("type",)),
)
function_tool = obj(
    {
        "type": one_of("function"),
        "name": is_str,
        "description": is_str,
        "parameters": anything,
    },
    ("type", "name"),
)
tools = list_of(function_tool)
modalities_one = list_of(one_of("text", "audio"), min_len=1, max_len=1)
modalities_beta = list_of(one_of("text", "audio"), min_len=1, max_len=2)
transcription = nullable(
    obj(
        {
            "model": is_str,
            "language": nullable(is_str),
            "prompt": nullable(is_str),
            "delay": anything,
            "keywords": anything,
            "languages": anything,
        }
    )
)
noise_reduction = nullable(obj({"type": one_of("near_field", "far_field")}))
_vad_flags = {"create_response": nullable(is_bool), "interrupt_response": nullable(is_bool)}
server_vad = obj(
    {
        "type": one_of("server_vad"),
        "threshold": nullable(is_number),
        "prefix_padding_ms": nullable(is_int),
        "silence_duration_ms": nullable(is_int),
        "idle_timeout_ms": nullable(is_int),
        **_vad_flags,
    }
)
semantic_vad = obj(
    {
        "type": one_of("semantic_vad"),
        "eagerness": nullable(one_of("low", "medium", "high", "auto")),
        **_vad_flags,
    }
)
turn_detection_ga = nullable(tagged({"server_vad": server_vad, "semantic_vad": semantic_vad}))
turn_detection_beta = nullable(
    obj(
        {
            "type": one_of("server_vad", "semantic_vad"),
            "threshold": nullable(is_number),
            "prefix_padding_ms": nullable(is_int),
            "silence_duration_ms": nullable(is_int),
            "eagerness": nullable(one_of("low", "medium", "high", "auto")),
            **_vad_flags,
        }
    )
)
audio_format = tagged(
    {
        "audio/pcm": obj({"type": one_of("audio/pcm"), "rate": one_of(24000)}),
        "audio/pcmu": obj({"type": one_of("audio/pcmu")}),
        "audio/pcma": obj({"type": one_of("audio/pcma")}),
    }
)
voice = either(is_str, obj({"id": is_str}, ("id",)))
audio_config = obj(
    {
        "input": obj(
            {
                "format": audio_format,
                "noise_reduction": noise_reduction,
                "transcription": transcription,
                "turn_detection": turn_detection_ga,
            }
        ),
        "output": obj({"format": audio_format, "voice": voice, "speed": nullable(is_number)}),
    }
)
_session_ga_fields: dict[str, Check] = {
    "type": one_of("realtime"),
    "model": is_str,
    "instructions": is_str,
    "output_modalities": modalities_one,
    "audio": audio_config,
    "include": nullable(list_of(is_str)),
    "max_output_tokens": max_tokens,
    "parallel_tool_calls": nullable(is_bool),
    "prompt": anything,
    "reasoning": anything,
    "tool_choice": tool_choice,
    "tools": tools,
    "tracing": anything,
    "truncation": anything,
}
session_ga = obj(_session_ga_fields, ("type",))
g711 = one_of("pcm16", "g711_ulaw", "g711_alaw")
session_beta = obj(
    {
        "model": is_str,
        "instructions": is_str,
        "modalities": modalities_beta,
        "voice": voice,
        "speed": nullable(is_number),
        "temperature": nullable(is_number),
        "input_audio_format": g711,
        "output_audio_format": g711,
        "input_audio_transcription": transcription,
        "input_audio_noise_reduction": noise_reduction,
        "turn_detection": turn_detection_beta,
        "tools": tools,
        "tool_choice": tool_choice,
        "max_response_output_tokens": max_tokens,
        "tracing": anything,
        "include": nullable(list_of(is_str)),
        "client_secret": anything,
    }
)

# ----------------------------------------------------------------------- items

_item_meta = {"id": is_str, "object": one_of("realtime.item"), "status": anything}


def _message(content_tags: Mapping[str, Mapping[str, Check]]) -> Check:
    def content_for(role: str) -> Check:
        allowed = {
            name: obj({"type": one_of(name), **fields})
            for name, fields in content_tags[role].items()
        }
        return list_of(tagged(allowed))

    by_role = {role: content_for(role) for role in content_tags}

    def check(value: Any, param: str) -> None:
        role = value.get("role")
        if role is None:
            raise ClientEventError(
                "missing_required_parameter",
                f"Missing required parameter: '{param}.role'.",
                f"{param}.role",
            )
        if role not in by_role:
            one_of(*by_role)(role, f"{param}.role")
        fields = {
            **_item_meta,
            "type": one_of("message"),
            "role": anything,
            "content": by_role[role],
        }
        check_object(value, fields, ("type", "role", "content"), param)

    return check


_input_audio = {"audio": is_str, "transcript": nullable(is_str)}
_image = {"image_url": is_str, "detail": nullable(one_of("auto", "low", "high"))}
_GA_CONTENT = {
    "user": {"input_text": {"text": is_str}, "input_audio": _input_audio, "input_image": _image},
    "system": {"input_text": {"text": is_str}},
    "assistant": {
        "output_text": {"text": is_str},
        "output_audio": {"audio": is_str, "transcript": nullable(is_str)},
    },
}
_BETA_CONTENT = {
    "user": {
        "input_text": {"text": is_str},
        "input_audio": _input_audio,
        "item_reference": {"id": is_str},
    },
    "system": {"input_text": {"text": is_str}},
    "assistant": {"text": {"text": is_str}, "audio": {"audio": is_str, "transcript": is_str}},
}
_function_call = obj(
    {
        **_item_meta,
        "type": one_of("function_call"),
        "name": is_str,
        "arguments": is_str,
        "call_id": is_str,
    },
    ("type", "name", "arguments"),
)
_function_call_output = obj(
    {**_item_meta, "type": one_of("function_call_output"), "call_id": is_str, "output": is_str},
    ("type", "call_id", "output"),
)


def _item(content: Mapping[str, Mapping[str, Check]]) -> Check:
    return tagged(
        {
            "message": _message(content),
            "function_call": _function_call,
            "function_call_output": _function_call_output,
        }
    )


item_ga = _item(_GA_CONTENT)
item_beta = _item(_BETA_CONTENT)

response_ga = obj(
    {
        "output_modalities": modalities_one,
        "instructions": is_str,
        "tools": tools,
        "tool_choice": tool_choice,
        "max_output_tokens": max_tokens,
        "audio": obj({"output": obj({"format": audio_format, "voice": voice})}),
        "conversation": nullable(is_str),
        "input": list_of(anything),
        "metadata": nullable(anything),
        "prompt": anything,
        "reasoning": anything,
        "parallel_tool_calls": nullable(is_bool),
    }
)
response_beta = obj(
    {
        "modalities": modalities_beta,
        "instructions": is_str,
        "voice": voice,
        "output_audio_format": g711,
        "tools": tools,
        "tool_choice": tool_choice,
        "temperature": nullable(is_number),
        "max_response_output_tokens": max_tokens,
        "conversation": nullable(is_str),
        "input": list_of(anything),
        "metadata": nullable(anything),
    }
)


def _events(
    session: Check, item: Check, response: Check
) -> dict[str, tuple[dict[str, Check], tuple[str, ...]]]:
    return {
        "session.update": ({"session": session}, ("session",)),
        "input_audio_buffer.append": ({"audio": is_str}, ("audio",)),
        "input_audio_buffer.commit": ({}, ()),
        "input_audio_buffer.clear": ({}, ()),
        "output_audio_buffer.clear": ({}, ()),
        "conversation.item.create": (
            {"item": item, "previous_item_id": nullable(is_str)},
            ("item",),
        ),
        "conversation.item.truncate": (
            {"item_id": is_str, "content_index": is_int, "audio_end_ms": is_int},
            ("item_id", "content_index", "audio_end_ms"),
        ),
        "conversation.item.delete": ({"item_id": is_str}, ("item_id",)),
        "conversation.item.retrieve": ({"item_id": is_str}, ("item_id",)),
        "response.create": ({"response": response}, ()),
        "response.cancel": ({"response_id": is_str}, ()),
    }


EVENTS: dict[str, dict[str, tuple[dict[str, Check], tuple[str, ...]]]] = {
    "ga": _events(session_ga, item_ga, response_ga),
    "beta": _events(session_beta, item_beta, response_beta),
}


def validate_client_event(data: Any, flavor: Flavor) -> None:
    """Raise `ClientEventError` unless `data` is a valid client event of `flavor`."""
    if not isinstance(data, dict):
        raise ClientEventError("invalid_type", "Expected an object as the event.", None)
    kind = data.get("type")
    events = EVENTS[flavor]
    if kind is None:
        raise ClientEventError(
            "missing_required_parameter", "Missing required parameter: 'type'.", "type"
        )
    if not isinstance(kind, str) or kind not in events:
        one_of(*events)(kind, "type")
    fields, required = events[kind]
    check_object(
        data,
        {**fields, "type": anything, "event_id": is_str},
        required,
        "",
    )
