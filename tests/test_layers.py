"""The layers of the package: which parts may import which (read from the source by `ast`).

    conversation, pcm, close_codes, events, handoffs, stems   the shared values: import
                                                              nothing else of the package
    brain        the offline demo brain: the shared values only
    graph        agent graphs: never a model, the brain or a session
    models, tts, speech   providers: never a session, the graph or the brain (a model
                          is given its brain, see providers.py)
    protocol.py modules   sans-IO: no sockets, however deep in the package they look
    emulators    stand-ins for remote services: never a session or the graph

Every import counts, lazy ones and type-only ones included, unless a rule says otherwise.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "voiceagent"

BASE = {
    "voiceagent.conversation",
    "voiceagent.pcm",
    "voiceagent.close_codes",
    "voiceagent.events",
    "voiceagent.handoffs",
    "voiceagent.stems",
}
# Modules that open, wrap or serve network connections.
SOCKET_MODULES = {
    "socket",
    "ssl",
    "selectors",
    "asyncio",
    "trio",
    "trio_websocket",
    "websockets",
    "wsproto",
    "h11",
    "httpx",
    "quart",
    "quart_trio",
    "hypercorn",
    "voiceagent.transport",
    "voiceagent.quart_websocket",
    "voiceagent.provider_socket",
}


@dataclass(frozen=True, slots=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (a package's module when `from pkg import mod`)
    line: int
    lazy: bool  # inside a function: runs only when called

    def __str__(self) -> str:
        return f"{self.source} imports {self.target} (line {self.line})"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(module: str) -> list[Import]:
    path = MODULES[module]
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend(Import(module, a.name, child.lineno, lazy) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    target = sub if sub in MODULES else base
                    found.append(Import(module, target, child.lineno, lazy))
            visit(child, inner)

    visit(tree, False)
    return found


ALL_IMPORTS = [imp for module in MODULES for imp in _imports(module)]


def _within(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _layer(*prefixes: str) -> list[Import]:
    return [imp for imp in ALL_IMPORTS if _within(imp.source, *prefixes)]


def _package_imports(imports: list[Import]) -> list[Import]:
    return [imp for imp in imports if _within(imp.target, "voiceagent")]


def test_the_imports_are_read() -> None:
    # Guards the rules below against passing vacuously.
    pairs = {(i.source, i.target, i.lazy) for i in ALL_IMPORTS}
    assert ("voiceagent.providers", "voiceagent.brain", True) in pairs
    assert any(i.target == "voiceagent.handoffs" for i in _layer("voiceagent.graph"))


def test_the_shared_values_import_only_each_other() -> None:
    wrong = [imp for imp in _package_imports(_layer(*BASE)) if imp.target not in BASE]
    assert not wrong, "\n".join(map(str, wrong))


def test_the_brain_imports_only_the_shared_values() -> None:
    wrong = [
        imp
        for imp in _package_imports(_layer("voiceagent.brain"))
        if not (imp.target in BASE or _within(imp.target, "voiceagent.brain"))
    ]
    assert not wrong, "\n".join(map(str, wrong))


def test_the_graph_imports_no_model_no_session_and_not_the_brain() -> None:
    forbidden = ("voiceagent.models", "voiceagent.session", "voiceagent.brain")
    wrong = [imp for imp in _layer("voiceagent.graph") if _within(imp.target, *forbidden)]
    assert not wrong, "\n".join(map(str, wrong))


@pytest.mark.parametrize("layer", ["voiceagent.models", "voiceagent.tts", "voiceagent.speech"])
def test_providers_import_no_session_no_graph_and_no_brain(layer: str) -> None:
    forbidden = ("voiceagent.session", "voiceagent.graph", "voiceagent.brain")
    wrong = [imp for imp in _layer(layer) if _within(imp.target, *forbidden)]
    assert not wrong, "\n".join(map(str, wrong))


def test_the_emulators_import_no_session_and_no_graph() -> None:
    wrong = [
        imp
        for imp in _layer("voiceagent.emulators")
        if _within(imp.target, "voiceagent.session", "voiceagent.graph")
        # Allowed: the Realtime emulator's default brain is the offline brain, imported
        # lazily (in a function) so the emulator runs without it.
        or (_within(imp.target, "voiceagent.brain") and not imp.lazy)
    ]
    assert not wrong, "\n".join(map(str, wrong))


def _loaded_by(module: str) -> set[str]:
    """What importing `module` imports at module level, following the package's modules."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        for imp in _imports(current):
            if imp.lazy or imp.target in seen:
                continue
            seen.add(imp.target)
            if imp.target in MODULES:
                todo.append(imp.target)
    return seen


PROTOCOL_MODULES = [name for name, path in MODULES.items() if path.name == "protocol.py"]


def test_there_are_protocol_modules() -> None:
    assert {
        "voiceagent.protocol",
        "voiceagent.models.realtime.protocol",
        "voiceagent.tts.cartesia.protocol",
    } <= set(PROTOCOL_MODULES)


@pytest.mark.parametrize("module", PROTOCOL_MODULES)
def test_protocol_code_imports_no_sockets(module: str) -> None:
    loaded = _loaded_by(module)
    wrong = sorted(name for name in loaded if _within(name, *SOCKET_MODULES))
    assert not wrong, f"{module} loads {wrong}"
