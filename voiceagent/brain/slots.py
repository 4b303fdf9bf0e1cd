"""Tool arguments from an utterance, driven only by the tool's JSON schema.

Each parameter gets a *kind* from its schema type and from the words in its name and
description: numbers and booleans by type, enums by their values, "codes" (confirmation
numbers, seats, ids: spelled letters and digits), "places" (cities) and free text.

Codes are assigned to parameters by evidence, strongest first: a `pattern` in the schema,
the shape of an example in the description ("like 14C" fits "22A", not "ABC123"), a
length stated there, and a parameter word said just before the code ("seat fourteen C").
"""

from __future__ import annotations

import re
from typing import Any, Literal

from voiceagent.brain.spoken import Code, find_codes
from voiceagent.stems import stem, words

# Values are looked for in the first part of a request only (spoken requests are short),
# which bounds the work whatever a client sends; free text keeps the whole request.
MAX_EXTRACT_CHARS = 300
MAX_CODES = 8

Kind = Literal["integer", "number", "boolean", "enum", "code", "place", "text"]

_CODE_HINTS = frozenset(
    "number code id identifier confirmation seat reference booking pnr flight ticket "
    "locator zip postcode phone account order".split()
)
_PLACE_HINTS = frozenset("city location place destination town country airport where".split())
_PLACE_PREPOSITIONS = ("in", "for", "at", "to", "from", "near", "about")
_PLACE_STOP = frozenset(
    "today tonight tomorrow now right please this next weekend week like currently "
    "and or but then at on with is are will be".split()
)
_FILLERS = frozenset(
    "it's its it is i'm im i am the a an my city town place in at for to please "
    "um uh well that's thats".split()
)
_YES = frozenset("yes yeah yep sure true correct right ok okay affirmative".split())
_NO = frozenset("no nope nah false negative wrong".split())


def _hint_words(name: str, schema: dict[str, Any]) -> set[str]:
    text = name.replace("_", " ") + " " + str(schema.get("description", ""))
    return {w.lower() for w in words(text)}


def param_kind(name: str, schema: dict[str, Any]) -> Kind:
    """How to read this parameter out of speech."""
    if "enum" in schema:
        return "enum"
    kind = schema.get("type")
    if isinstance(kind, list):  # nullable: ["string", "null"]
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("integer", "number", "boolean"):
        return kind
    name_words = {w.lower() for w in words(name.replace("_", " "))}
    if name_words & _PLACE_HINTS:
        return "place"
    if name_words & _CODE_HINTS:
        return "code"
    hints = _hint_words(name, schema)
    if hints & _PLACE_HINTS:
        return "place"
    if hints & {"code", "confirmation", "seat", "identifier", "pnr", "locator"}:
        return "code"
    return "text"


def question_for(name: str, schema: dict[str, Any]) -> str:
    """A short question asking for this parameter, from its description.

    "Your confirmation number: six letters or digits." -> "What is your confirmation
    number?"; without a description the parameter name is used.
    """
    description = str(schema.get("description", "")).strip()
    clause = re.split(r"[.,;:(\n]| - ", description, maxsplit=1)[0].strip()
    if not clause:
        clause = name.replace("_", " ")
    first, _, rest = clause.partition(" ")
    if first.lower() in ("the", "your", "a", "an", "which", "what"):
        clause = first.lower() + (" " + rest if rest else "")
        if first.lower() in ("a", "an"):
            clause = "the " + rest
        if first.lower() in ("which", "what"):
            return clause[0].upper() + clause[1:] + "?"
    else:
        clause = "the " + clause[0].lower() + clause[1:]
    return f"What is {clause}?"


def _shape(code: str) -> str:
    return "".join("9" if c.isdigit() else "A" for c in code)


_NUMBER_WORD_VALUES = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "twelve": 12,
}


def _stated_length(description: str) -> int | None:
    match = re.search(r"\b(\w+)\s+(?:letters|characters|digits|chars)\b", description.lower())
    if not match:
        return None
    token = match.group(1)
    if token.isdigit():
        return int(token)
    return _NUMBER_WORD_VALUES.get(token)


def _example_shapes(description: str) -> set[str]:
    shapes = set()
    for word in words(description):
        if len(word) >= 2 and word.isalnum() and any(c.isdigit() for c in word):
            shapes.add(_shape(word.upper()))
    return shapes


def _code_fit(name: str, schema: dict[str, Any], code: Code, utterance_words: list[str]) -> float:
    """How strongly the evidence says `code` is the value of this parameter."""
    description = str(schema.get("description", ""))
    score = 0.0
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            if re.fullmatch(pattern, code.text, flags=re.IGNORECASE):
                score += 4.0
            else:
                return -1.0
        except re.error:
            pass
    shapes = _example_shapes(description)
    if shapes and _shape(code.text) in shapes:
        score += 2.0
    length = _stated_length(description)
    if length is not None:
        score += 1.0 if len(code.text) == length else -0.5
    name_stems = {stem(w) for w in words(name.replace("_", " "))} - {"new"}
    before = [stem(w) for w in utterance_words[max(0, code.start - 4) : code.start]]
    if name_stems & set(before):
        score += 2.0
    return score


def _place(utterance: str, *, answering: bool) -> str | None:
    tokens = words(utterance)
    lowered = [t.lower() for t in tokens]
    start = None
    for index in range(len(lowered) - 1, -1, -1):
        if lowered[index] in _PLACE_PREPOSITIONS and index + 1 < len(lowered):
            start = index + 1
            break
    if start is None:
        if not answering:
            return None
        picked = [t for t in tokens if t.lower() not in _FILLERS]
    else:
        picked = []
        for token in tokens[start:]:
            if token.lower() in _PLACE_STOP or len(picked) >= 4:
                break
            if token.lower() in ("the",) and not picked:
                continue
            picked.append(token)
    picked = [t for t in picked if not t.isdigit()]
    if not picked:
        return None
    return " ".join(t[:1].upper() + t[1:] for t in picked)


def _enum(schema: dict[str, Any], utterance: str) -> Any | None:
    said = " " + " ".join(w.lower() for w in words(utterance)) + " "
    for value in schema["enum"]:
        spoken = " " + " ".join(w.lower() for w in words(str(value).replace("_", " "))) + " "
        if spoken.strip() and spoken in said:
            return value
    return None


def _boolean(utterance: str) -> bool | None:
    said = {w.lower() for w in words(utterance)}
    if said & _NO:
        return False
    if said & _YES:
        return True
    return None


def extract_arguments(
    parameters: dict[str, Any], utterance: str, *, answering: str | None = None
) -> dict[str, Any]:
    """Every argument of the schema that `utterance` supplies.

    `answering` names the parameter the user was just asked for: its value may be the
    whole reply ("Paris", "A B C one two three"), not only a phrase inside a request.
    """
    properties: dict[str, Any] = parameters.get("properties", {}) or {}
    found: dict[str, Any] = {}
    full_text, utterance = utterance, utterance[:MAX_EXTRACT_CHARS]
    utterance_words = words(utterance)
    codes = find_codes(utterance)[:MAX_CODES]
    taken: set[int] = set()

    code_params = [n for n, s in properties.items() if param_kind(n, s) == "code"]
    # Best-evidence assignment of codes to code parameters.
    fits = sorted(
        (
            (_code_fit(n, properties[n], c, utterance_words) + (3.0 * (n == answering)), i, n)
            for n in code_params
            for i, c in enumerate(codes)
        ),
        key=lambda item: -item[0],
    )
    for score, index, name in fits:
        if name in found or index in taken:
            continue
        alone = len(code_params) == 1 and len(codes) >= 1
        if score > 0 or alone:
            found[name] = codes[index].text
            taken.add(index)

    number_codes = [c for i, c in enumerate(codes) if i not in taken and c.text.isdigit()]
    for name, schema in properties.items():
        if name in found or not isinstance(schema, dict):
            continue
        kind = param_kind(name, schema)
        if kind in ("integer", "number") and number_codes:
            found[name] = int(number_codes.pop(0).text)
        elif kind == "boolean":
            value = _boolean(utterance)
            if value is not None and (answering == name or len(properties) == 1):
                found[name] = value
        elif kind == "enum":
            value = _enum(schema, utterance)
            if value is not None:
                found[name] = value
        elif kind == "place":
            value = _place(utterance, answering=answering == name)
            if value:
                found[name] = value
        elif kind == "text":
            text = full_text.strip()
            if text:
                found[name] = text
    return found
