"""Validation of Realtime client events, as the service does it (sans-I/O).

`validate_client_event(data, flavor)` returns nothing when the event is acceptable and
raises `ClientEventError` (code, message, param) otherwise, worded the way the real
service words it: ``unknown_parameter``, ``missing_required_parameter``,
``invalid_type``, ``invalid_value`` (the checks are built in `realtime_checks`). The
trees follow the GA (`openai.types.realtime`) and beta (`openai.types.beta.realtime`)
types: every field is known, every required field is present, every type and
enumerated value is right. Checking is exhaustive for the fields a voice agent uses and
permissive (any JSON) for a few opaque objects (prompt, reasoning, tracing, metadata).

Why hand-written, when the official `openai` package's pydantic types describe the same
events: (1) the emulator ships in the package and runs without the ``dev`` extra, so it
may not import `openai` at run time; (2) it must answer invalid input with the
service's exact ``error`` events (code, message and dotted ``param``), which pydantic's
errors do not map onto one to one; (3) the SDK types are permissive (unknown fields
are kept as extras, most fields are optional), while the service refuses them. The
tests hold the two together: every frame of the emulator's tests is checked against
the SDK types with no unknown fields (`tests/realtime/conformance.py`), and the
official SDK client runs whole sessions against the emulator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from voiceagent.emulators.realtime_checks import (
    Check,
    ClientEventError,
    anything,
    check_object,
    either,
    is_bool,
    is_int,
    is_number,
    is_str,
    list_of,
    nullable,
    obj,
    one_of,
    tagged,
)

__all__ = ["EVENTS", "ClientEventError", "Flavor", "validate_client_event"]

Flavor = str  # "ga" | "beta"

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
