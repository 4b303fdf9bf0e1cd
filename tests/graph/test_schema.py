"""Tool schemas derived from signatures and docstrings, and argument validation."""

from __future__ import annotations

import enum
from typing import Annotated, Literal, Optional

import pytest

from voiceagent.graph import FunctionTool, ToolArgumentError, ToolContext, function_tool
from voiceagent.graph.schema import parse_docstring


class Cabin(enum.Enum):
    ECONOMY = "economy"
    BUSINESS = "business"


@function_tool
def book(
    ctx: ToolContext,
    passenger: str,
    bags: int,
    weight_kg: float,
    window: bool,
    cabin: Cabin,
    meal: Literal["veg", "fish"] = "veg",
    note: str | None = None,
    loyalty: Optional[str] = None,  # noqa: UP045 - the old spelling must work too
    seats: list[str] | None = None,
) -> str:
    """Book a flight for a passenger.

    Longer explanation that continues
    over two lines.

    Args:
        passenger: The passenger's full name,
            as printed on the passport.
        bags (int): How many checked bags.
        weight_kg: Total bag weight.
        window: Whether a window seat is wanted.
        cabin: The cabin class.
        meal: The meal choice.
        note: Anything else.

    Returns:
        A confirmation.
    """
    return "ok"


def test_types_map_to_json_schema_types() -> None:
    props = book.parameters["properties"]
    assert props["passenger"]["type"] == "string"
    assert props["bags"]["type"] == "integer"
    assert props["weight_kg"]["type"] == "number"
    assert props["window"]["type"] == "boolean"
    assert props["seats"] == {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "default": None,
    }


def test_enums_and_literals_list_their_values() -> None:
    props = book.parameters["properties"]
    assert props["cabin"]["enum"] == ["economy", "business"]
    assert props["cabin"]["type"] == "string"
    assert props["meal"]["enum"] == ["veg", "fish"]


def test_optional_parameters_are_nullable_and_not_required() -> None:
    props = book.parameters["properties"]
    assert props["note"]["type"] == ["string", "null"]
    assert props["loyalty"]["type"] == ["string", "null"]
    assert book.parameters["required"] == ["passenger", "bags", "weight_kg", "window", "cabin"]


def test_defaults_appear_in_the_schema() -> None:
    assert book.parameters["properties"]["meal"]["default"] == "veg"


def test_docstring_gives_description_and_parameter_descriptions() -> None:
    assert book.description == (
        "Book a flight for a passenger. Longer explanation that continues over two lines."
    )
    props = book.parameters["properties"]
    assert props["passenger"]["description"] == (
        "The passenger's full name, as printed on the passport."
    )
    assert props["bags"]["description"] == "How many checked bags."
    assert "description" not in props["seats"]


def test_context_parameter_is_injected_not_in_schema() -> None:
    assert "ctx" not in book.parameters["properties"]
    assert book.takes_context


def test_name_description_and_options_can_be_overridden() -> None:
    @function_tool(
        name="lookup",
        description="Look something up.",
        timeout=3,
        cancel_on_interrupt=False,
        examples=("find it",),
    )
    async def _search(query: Annotated[str, "What to look for."]) -> str:
        return query

    assert isinstance(_search, FunctionTool)
    assert (_search.name, _search.description) == ("lookup", "Look something up.")
    assert (_search.timeout, _search.cancel_on_interrupt) == (3, False)
    assert _search.is_async
    assert _search.parameters["properties"]["query"]["description"] == "What to look for."
    spec = _search.spec()
    assert spec.examples == ("find it",)
    assert spec.as_function()["name"] == "lookup"


class Custom:
    pass


def test_unsupported_annotation_fails_at_declaration() -> None:
    def tool(value: Custom) -> str:
        return ""

    with pytest.raises(TypeError, match="unsupported type annotation"):
        function_tool(tool)


def test_unresolvable_annotation_fails_at_declaration() -> None:
    def tool(value: NoSuchType) -> str:  # type: ignore[name-defined]  # noqa: F821
        return ""

    with pytest.raises(TypeError, match="cannot resolve type hints"):
        function_tool(tool)


def test_args_of_star_parameters_are_refused() -> None:
    def tool(*values: str) -> str:
        return ""

    with pytest.raises(TypeError, match="named parameter"):
        function_tool(tool)


def test_docstring_without_args_section() -> None:
    doc = parse_docstring("Just a summary.")
    assert doc.summary == "Just a summary."
    assert doc.args == {}


# -- validation ----------------------------------------------------------------------


def test_valid_arguments_become_keyword_arguments() -> None:
    kwargs = book.parse_arguments(
        '{"passenger": "Ada", "bags": 2.0, "weight_kg": 20, "window": true, "cabin": "business"}'
    )
    assert kwargs == {
        "passenger": "Ada",
        "bags": 2,
        "weight_kg": 20.0,
        "window": True,
        "cabin": Cabin.BUSINESS,
    }


def test_a_number_given_for_a_string_is_accepted_as_text() -> None:
    args = '{"passenger": 123456, "bags": 1, "weight_kg": 1, "window": false, "cabin": "economy"}'
    assert book.parse_arguments(args)["passenger"] == "123456"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"passenger": "Ada"}', "missing required argument 'bags'"),
        (
            '{"passenger": "A", "bags": "two", "weight_kg": 1, "window": true, "cabin": "economy"}',
            "'bags' must be an integer",
        ),
        (
            '{"passenger": "A", "bags": 1, "weight_kg": 1, "window": "yes", "cabin": "economy"}',
            "'window' must be true or false",
        ),
        (
            '{"passenger": "A", "bags": 1, "weight_kg": 1, "window": true, "cabin": "first"}',
            "'cabin' must be one of 'economy', 'business'",
        ),
        (
            '{"passenger": "A", "bags": 1, "weight_kg": 1, "window": true, "cabin": "economy",'
            ' "meal": "steak"}',
            "'meal' must be one of 'veg', 'fish'",
        ),
        (
            '{"passenger": "A", "bags": 1, "weight_kg": 1, "window": true, "cabin": "economy",'
            ' "pet": "cat"}',
            "unexpected argument 'pet'",
        ),
        (
            '{"passenger": null, "bags": 1, "weight_kg": 1, "window": true, "cabin": "economy"}',
            "'passenger' must not be null",
        ),
    ],
)
def test_bad_arguments_are_rejected_with_a_readable_reason(arguments: str, message: str) -> None:
    with pytest.raises(ToolArgumentError, match=message):
        book.parse_arguments(arguments)


def test_empty_arguments_mean_no_arguments() -> None:
    @function_tool
    def ping() -> str:
        """Ping."""
        return "pong"

    assert ping.parse_arguments("") == {}
    assert ping.parameters == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }
