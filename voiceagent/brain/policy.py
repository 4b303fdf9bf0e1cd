"""The offline demo brain: a deterministic dialogue policy, not a language model.

It drives any agent graph from what the graph declares (tool names, descriptions,
parameter schemas, example phrases); nothing here knows about airlines.

Rules:
- The conversation (`history`) is the truth. The brain keeps only one piece of state of
  its own: the tool call it is collecting arguments for (`_Pending`). One brain serves
  one conversation.
- Last item a user message -> pick the best-matching tool or `transfer_to_*` handoff.
  Arguments come out of the utterance by the schema; a missing required one is first
  looked up among earlier calls in the conversation, otherwise asked for with a question
  made from its description, and the next user turn fills it.
- Last items tool outputs -> speak them. An "error: ..." output is read back as an
  apology; when it names a parameter ("seat ... is not valid") that parameter is asked
  for again with the other arguments kept.
- Last item a handoff's output -> the *new* agent's setup is passed in, and the user's
  last request is answered with the new agent's tools. Agents already visited since that
  request are not handed to again and at most `MAX_HANDOFFS_PER_TURN` handoffs happen per
  request, so two agents can never bounce a caller between them.
- Nothing matches -> say what the current agent can do, built from its tools'
  descriptions (their first sentences, which the graph writes as verb phrases).

Cost: a reply is word matching over a handful of tools, 30-200 µs for a spoken request
and about 1 ms for a 4 000-character pasted one (matching reads the first few hundred
characters only), so it runs on the event loop. It never raises: odd input gets "Sorry,
I didn't catch that", a graph it cannot read gets an apology and a log line.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voiceagent.brain.matching import MATCH_THRESHOLD, ToolMatcher
from voiceagent.brain.slots import extract_arguments, param_kind, question_for
from voiceagent.conversation import AgentSetup, BrainReply, ConversationItem, ToolSpec
from voiceagent.handoffs import is_transfer, transfer_tool_name
from voiceagent.stems import content_stems, stem, words

log = logging.getLogger(__name__)

MAX_HANDOFFS_PER_TURN = 3
MAX_SPOKEN_CHARS = 600

_GREETINGS = frozenset("hi hello hey morning afternoon evening good there".split())
_THANKS = frozenset("thanks thank you cheers great perfect".split())
_GOODBYE = frozenset("bye goodbye later see you that's all".split())
_HELP = frozenset("help what can you do options main menu back start over the".split())
_CANCEL = frozenset("cancel never mind nevermind forget stop".split())


@dataclass(slots=True)
class _Pending:
    """A tool call waiting for arguments: `asking` is the one the last question named."""

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    asking: str = ""
    misses: int = 0  # answers that did not contain the value asked for


def _first_sentence(text: str) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0].rstrip(".!? ")
    if sentence[:2].isupper():  # an acronym ("FAQ ...") keeps its case
        return sentence
    return sentence[:1].lower() + sentence[1:]


def _join_choices(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return "; ".join(phrases[:-1]) + "; or " + phrases[-1]


def _clip(text: str) -> str:
    """Keep a spoken reply short: cut at a sentence end before `MAX_SPOKEN_CHARS`."""
    text = " ".join(text.split())
    if len(text) <= MAX_SPOKEN_CHARS:
        return text
    cut = text[:MAX_SPOKEN_CHARS]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return cut[: end + 1] if end > 0 else cut.rstrip() + "..."


def _speakable(output: str) -> str:
    """A tool output as a sentence: JSON objects become "key: value" pairs."""
    stripped = output.strip()
    if stripped[:1] in "{[":
        try:
            value = json.loads(stripped)
        except ValueError:
            return stripped
        if isinstance(value, dict):
            return ". ".join(f"{str(k).replace('_', ' ')}: {v}" for k, v in value.items())
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
    return stripped


def _only_words(text: str, vocabulary: frozenset[str]) -> bool:
    said = [w.lower() for w in words(text[:200])]
    return bool(said) and all(w in vocabulary or len(w) <= 2 for w in said)


class OfflineBrain:
    """One conversation's dialogue policy. See the module docstring."""

    def __init__(self) -> None:
        self._pending: _Pending | None = None
        self._matchers: dict[tuple[str, tuple[str, ...]], ToolMatcher] = {}
        self._agent_at_request = ""

    # -- entry point -------------------------------------------------------------

    def respond(self, setup: AgentSetup, history: Sequence[ConversationItem]) -> BrainReply:
        """What to do next: function calls, or text to say.

        Never raises: a graph whose schemas it cannot read gets an apology and a log line.
        """
        try:
            return self._respond(setup, history)
        except Exception:
            log.exception("offline brain could not answer (agent %s)", setup.agent_name)
            self._pending = None
            return BrainReply(text="Sorry, something went wrong on my side. Please try again.")

    def _respond(self, setup: AgentSetup, history: Sequence[ConversationItem]) -> BrainReply:
        last = history[-1] if history else None
        if last is None:
            return BrainReply(text=self._introduce(setup, greeting=True))
        if last.type == "function_call_output":
            return self._after_tools(setup, history)
        if last.type == "message" and last.role == "user":
            self._agent_at_request = setup.agent_name
            return self._on_request(setup, history, last.text)
        if last.type == "function_call":
            return BrainReply(text="One moment, please.")
        return BrainReply(text=self._introduce(setup, greeting=False))

    # -- user requests -------------------------------------------------------------

    def _matcher(self, setup: AgentSetup) -> ToolMatcher:
        key = (setup.agent_name, tuple(t.name for t in setup.tools))
        matcher = self._matchers.get(key)
        if matcher is None:
            if len(self._matchers) > 32:  # bounded: graphs have a handful of agents
                self._matchers.clear()
            matcher = self._matchers[key] = ToolMatcher(setup.tools)
        return matcher

    def _on_request(
        self,
        setup: AgentSetup,
        history: Sequence[ConversationItem],
        text: str,
        *,
        excluded: frozenset[str] = frozenset(),
        after_handoff: bool = False,
    ) -> BrainReply:
        if not words(text[:200]):
            return BrainReply(text="Sorry, I didn't catch that. Could you say it again?")
        tools = {spec.name: spec for spec in setup.tools}
        matcher = self._matcher(setup)

        pending = self._pending
        if pending is not None and (after_handoff or pending.tool not in tools):
            pending = self._pending = None
        if pending is not None:
            if _only_words(text, _CANCEL):
                self._pending = None
                return BrainReply(text="Okay, never mind. What else can I do for you?")
            spec = tools[pending.tool]
            found = extract_arguments(spec.parameters, text, answering=pending.asking)
            if pending.asking in found:
                for name, value in found.items():
                    pending.arguments.setdefault(name, value)
                return self._call_or_ask(spec, pending.arguments, history)
            other = matcher.best(text, exclude={pending.tool, *excluded})
            if other is None:
                pending.misses += 1
                question = question_for(pending.asking, self._schema(spec, pending.asking))
                if pending.misses == 1:
                    return BrainReply(text=f"Sorry, I didn't catch that. {question}")
                return BrainReply(
                    text=f"Sorry, I still didn't catch that. {question} Or say never mind."
                )
            self._pending = None

        match = matcher.best(text, exclude=excluded)
        if match is None:
            return BrainReply(text=self._no_match(setup, text, after_handoff=after_handoff))
        spec = tools[match[0]]
        if is_transfer(spec.name):
            return BrainReply(calls=((spec.name, "{}"),))
        arguments = extract_arguments(spec.parameters, text)
        return self._call_or_ask(spec, arguments, history, reuse=bool(arguments))

    @staticmethod
    def _schema(spec: ToolSpec, name: str) -> dict[str, Any]:
        schema = spec.parameters.get("properties", {}).get(name, {})
        return schema if isinstance(schema, dict) else {}

    def _call_or_ask(
        self,
        spec: ToolSpec,
        arguments: dict[str, Any],
        history: Sequence[ConversationItem],
        *,
        reuse: bool = True,
    ) -> BrainReply:
        """Call `spec` when every required argument is known, else ask for the first gap.

        With `reuse`, a gap may be filled from an earlier call ("make it 22A" keeps the
        confirmation number). A bare request that gave no argument at all ("I want to
        change my seat") starts from scratch instead, so nothing is done unasked.
        """
        properties = spec.parameters.get("properties", {})
        for name in spec.parameters.get("required", []):
            if name in arguments:
                continue
            remembered = _remembered(history, name, self._schema(spec, name)) if reuse else None
            if remembered is not None:
                arguments[name] = remembered
                continue
            self._pending = _Pending(spec.name, arguments, asking=name)
            return BrainReply(text=question_for(name, properties.get(name, {})))
        self._pending = None
        known = {k: v for k, v in arguments.items() if k in properties}
        return BrainReply(calls=((spec.name, json.dumps(known)),))

    def _no_match(self, setup: AgentSetup, text: str, *, after_handoff: bool) -> str:
        if after_handoff:
            return self._introduce(setup, greeting=False)
        if _only_words(text, _GREETINGS):
            return self._introduce(setup, greeting=True)
        if _only_words(text, _THANKS):
            return "You're welcome. Anything else?"
        if _only_words(text, _GOODBYE):
            return "Goodbye!"
        if _only_words(text, _HELP):
            return self._introduce(setup, greeting=False)
        can = self._capabilities(setup)
        if not can:
            return "Sorry, I can't help with that."
        return f"Sorry, I can't help with that. I can {can}."

    def _capabilities(self, setup: AgentSetup) -> str:
        return _join_choices([_first_sentence(t.description) for t in setup.tools if t.description])

    def _introduce(self, setup: AgentSetup, *, greeting: bool) -> str:
        hello = "Hello! " if greeting else ""
        can = self._capabilities(setup)
        if not can:
            return f"{hello}This is the {setup.agent_name}."
        return f"{hello}This is the {setup.agent_name}. I can {can}."

    # -- after tool calls ----------------------------------------------------------

    def _after_tools(self, setup: AgentSetup, history: Sequence[ConversationItem]) -> BrainReply:
        request_index = _last_user_index(history)
        segment = history[request_index + 1 :]
        calls = {item.call_id: item for item in segment if item.type == "function_call"}
        outputs = [item for item in segment if item.type == "function_call_output"]
        names = [_call_name(item, calls) for item in outputs]
        if names and is_transfer(names[-1]):
            transfers = [item.name or "" for item in segment if item.type == "function_call"]
            transfers = [name for name in transfers if is_transfer(name)]
            visited = {transfer_tool_name(self._agent_at_request), *transfers}
            visited.add(transfer_tool_name(setup.agent_name))
            if len(transfers) >= MAX_HANDOFFS_PER_TURN:
                visited |= {t.name for t in setup.tools if is_transfer(t.name)}
            request = history[request_index].text if request_index >= 0 else ""
            if not request:
                return BrainReply(text=self._introduce(setup, greeting=False))
            return self._on_request(
                setup, history, request, excluded=frozenset(visited), after_handoff=True
            )
        # Speak what came back since the last handoff (or since the request).
        last_transfer = max((i for i, n in enumerate(names) if is_transfer(n)), default=-1)
        batch = list(zip(outputs, names, strict=True))[last_transfer + 1 :]

        spoken: list[str] = []
        for item, name in batch:
            spoken.append(self._speak_output(setup, item, name, calls))
        return BrainReply(text=_clip(" ".join(s for s in spoken if s)) or "Done.")

    def _speak_output(
        self,
        setup: AgentSetup,
        item: ConversationItem,
        name: str,
        calls: dict[str | None, ConversationItem],
    ) -> str:
        output = (item.output or "").strip()
        if not output.lower().startswith("error:"):
            return _speakable(output)
        message = output[6:].strip() or "something went wrong"
        message = re.sub(r"\b(\d+(?:\.\d+)?)s\b", r"\1 seconds", message)  # "5s" is not speech
        apology = f"Sorry, {message[:1].lower()}{message[1:]}".rstrip(".") + "."
        spec = next((t for t in setup.tools if t.name == name), None)
        call = calls.get(item.call_id)
        if spec is None or call is None:
            return apology
        arguments = _arguments(call.arguments)
        blamed = _blamed_parameter(spec, arguments, message)
        if blamed is None:
            return apology
        arguments.pop(blamed)
        self._pending = _Pending(spec.name, arguments, asking=blamed)
        return f"{apology} {question_for(blamed, self._schema(spec, blamed))}"


# -- history helpers ------------------------------------------------------------------


def _last_user_index(history: Sequence[ConversationItem]) -> int:
    for index in range(len(history) - 1, -1, -1):
        item = history[index]
        if item.type == "message" and item.role == "user":
            return index
    return -1


def _call_name(output: ConversationItem, calls: dict[str | None, ConversationItem]) -> str:
    call = calls.get(output.call_id)
    if call is not None and call.name:
        return call.name
    return output.name or ""


def _arguments(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _remembered(
    history: Sequence[ConversationItem], name: str, schema: dict[str, Any]
) -> Any | None:
    """The value given for parameter `name` in the latest successful earlier call.

    Only codes (confirmation numbers, ids) are reused: a question or a city asked about
    earlier is not necessarily the one meant now.
    """
    if param_kind(name, schema) != "code":
        return None
    failed = {
        item.call_id
        for item in history
        if item.type == "function_call_output"
        and (item.output or "").strip().lower().startswith("error:")
    }
    for item in reversed(history):
        if item.type != "function_call" or item.call_id in failed:
            continue
        value = _arguments(item.arguments).get(name)
        if value not in (None, ""):
            return value
    return None


def _blamed_parameter(spec: ToolSpec, arguments: dict[str, Any], message: str) -> str | None:
    """The argument an error message complains about ("seat 99Z is not valid" -> new_seat)."""
    said = set(content_stems(message)) | {stem(w) for w in words(message)}
    best: tuple[int, str] | None = None
    for name in spec.parameters.get("properties", {}):
        if name not in arguments:
            continue
        overlap = len(({stem(w) for w in words(name.replace("_", " "))} - {"new"}) & said)
        if overlap and (best is None or overlap > best[0]):
            best = (overlap, name)
    return best[1] if best else None


__all__ = ["MATCH_THRESHOLD", "OfflineBrain"]
