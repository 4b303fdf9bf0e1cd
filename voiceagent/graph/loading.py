"""Find the starting agent of a graph from a dotted path (`VOICEAGENT_AGENT`)."""

from __future__ import annotations

import importlib

from voiceagent.graph.agent import Agent

# The demo graph. Its one source file is the repository's `agents/airline.py`; the package
# ships it as `voiceagent.demo` (pyproject.toml maps that package to the `agents/` folder),
# so this path works from a checkout (editable install) and from an installed wheel, and
# never collides with other distributions' top-level `agents` package.
DEFAULT_AGENT_PATH = "voiceagent.demo.airline:triage_agent"


def load_agent(dotted: str) -> Agent:
    """The `Agent` at "package.module:name" or "package.module.name".

    Raises `ValueError` naming the path when the module cannot be imported, has no such
    attribute, or the attribute is not an `Agent`. Errors raised *inside* the module
    while importing it are chained, so their traceback is kept.
    """
    path = dotted.strip()
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute or not attribute.isidentifier():
        raise ValueError(f"agent path {dotted!r} must look like 'package.module:agent_name'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ValueError(f"agent path {dotted!r}: no module named {module_name!r}") from exc
        raise ValueError(f"agent path {dotted!r}: importing {module_name!r} failed: {exc}") from exc
    except Exception as exc:
        raise ValueError(f"agent path {dotted!r}: importing {module_name!r} failed: {exc}") from exc
    try:
        agent = getattr(module, attribute)
    except AttributeError:
        raise ValueError(
            f"agent path {dotted!r}: module {module_name!r} has no attribute {attribute!r}"
        ) from None
    if not isinstance(agent, Agent):
        raise ValueError(
            f"agent path {dotted!r} names a {type(agent).__name__}, not a voiceagent Agent"
        )
    return agent
