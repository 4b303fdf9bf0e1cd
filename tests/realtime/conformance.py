"""Validate Realtime JSON events against the official `openai` package's pydantic types.

Strict on two counts the SDK itself is not: the union is re-wrapped with
`Field(discriminator="type")` (one precise error per bad event), and every validated
model is walked for `model_extra`, so a field the types do not know is a failure.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

from openai.types.beta.realtime import RealtimeClientEvent as BetaClientEvent
from openai.types.beta.realtime import RealtimeServerEvent as BetaServerEvent
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, Field, TypeAdapter


def _adapter(union: Any) -> TypeAdapter[Any]:
    return TypeAdapter(Annotated[get_args(union)[0], Field(discriminator="type")])


ADAPTERS: dict[tuple[str, str], TypeAdapter[Any]] = {
    ("ga", "client"): _adapter(RealtimeClientEvent),
    ("ga", "server"): _adapter(RealtimeServerEvent),
    ("beta", "client"): _adapter(BetaClientEvent),
    ("beta", "server"): _adapter(BetaServerEvent),
}

# The service adds these to the session object; the SDK types leave them out (their
# models accept extra fields, which is how real traffic still validates).
ALLOWED_EXTRAS = {"session.id", "session.object", "session.expires_at"}


def unknown_fields(value: Any, path: str = "") -> list[str]:
    """Dotted paths of every field no model declares."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            found.append(f"{path}.{key}" if path else key)
        for name in type(value).model_fields:
            found.extend(unknown_fields(getattr(value, name), f"{path}.{name}" if path else name))
    elif isinstance(value, list | tuple):
        for i, entry in enumerate(value):
            found.extend(unknown_fields(entry, f"{path}[{i}]"))
    elif isinstance(value, dict):
        for key, entry in value.items():
            found.extend(unknown_fields(entry, f"{path}.{key}"))
    return found


def check_event(flavor: str, side: str, text: str | bytes) -> None:
    """Raise AssertionError (or pydantic's ValidationError) unless `text` conforms."""
    model = ADAPTERS[(flavor, side)].validate_json(text)
    extras = [p for p in unknown_fields(model) if p not in ALLOWED_EXTRAS]
    assert not extras, f"{flavor} {side} event has unknown fields {extras}: {text[:300]!r}"
