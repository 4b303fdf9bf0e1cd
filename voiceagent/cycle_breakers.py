"""Reference cycles that dependencies make per connection, broken where they are made.

A closed room must leave nothing for the cyclic garbage collector (docs/memory.md):
the collector's full pass walks every tracked object while every room waits, and the
process can freeze long-lived objects away from it only if closed rooms leave no
cycles. Our own code keeps that rule where the cycle would be made; two cycles live
inside dependencies, on every connection, and no code of ours can reach them:

- Hypercorn's `TCPServer` holds its protocol, whose `send` is the server's own bound
  method (`TCPServer.protocol_send`): a cycle through the whole connection (h11,
  wsproto, the Quart websocket context; ~30 objects). The wrapper below drops
  `protocol` once `run()` has returned, when the connection is over and nothing reads
  it any more.
- Werkzeug's `StateMachineMatcher.match` defines a recursive closure `_match` on every
  call (every request and WebSocket handshake): the function refers to itself through
  its cell. The patched copy is Werkzeug's own source with one addition: `_match` is set
  to None when `match` returns or raises.

Both patches are installed once per process by `install()` (idempotent), called by
`create_app`. They touch internals, so the supported ranges are pinned in
pyproject.toml and tests/test_cycle_breakers.py fails if an upgrade makes a patch a
no-op (or impossible: then `install()` logs a warning and leaves that dependency as it
is; rooms still work, the collector just has the cycle to free again). Neither patch
changes behaviour on cancellation or on error: the wrapper's `finally` runs after the
original's, and the matcher raises what it raised before.
"""

from __future__ import annotations

import ast
import functools
import inspect
import logging
import textwrap
from typing import Any

from hypercorn.trio import tcp_server
from werkzeug.routing import matcher as werkzeug_matcher

log = logging.getLogger("voiceagent.cycle_breakers")

_MARK = "_voiceagent_cycles_broken"


def install() -> None:
    """Install both cycle breakers (once per process)."""
    _drop_protocol_after_run()
    _unlink_recursive_matcher()


def _drop_protocol_after_run() -> None:
    server = tcp_server.TCPServer
    if getattr(server.run, _MARK, False):
        return
    original_run = server.run

    @functools.wraps(original_run)
    async def run(self: Any) -> None:
        try:
            await original_run(self)
        finally:
            self.__dict__.pop("protocol", None)  # protocol.send -> self: the cycle

    setattr(run, _MARK, True)
    server.run = run  # type: ignore[method-assign]


class _UnlinkOnExit(ast.NodeTransformer):
    """Wrap the statements after `def _match` in try/finally: `_match = None`."""

    found = False

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        if node.name != "match":
            return node
        for index, statement in enumerate(node.body):
            if isinstance(statement, ast.FunctionDef) and statement.name == "_match":
                unlink = ast.parse("_match = None").body
                guarded = ast.Try(
                    body=node.body[index + 1 :], handlers=[], orelse=[], finalbody=unlink
                )
                node.body = [*node.body[: index + 1], guarded]
                self.found = True
                break
        return node


def _unlink_recursive_matcher() -> None:
    cls = werkzeug_matcher.StateMachineMatcher
    if getattr(cls.match, _MARK, False):
        return
    try:
        source = textwrap.dedent(inspect.getsource(cls.match))
        tree = ast.parse(source)
        transformer = _UnlinkOnExit()
        tree = ast.fix_missing_locations(transformer.visit(tree))
        if not transformer.found:
            raise LookupError("no nested `_match` in StateMachineMatcher.match")
        namespace: dict[str, Any] = {}
        code = compile(tree, inspect.getsourcefile(cls.match) or "<werkzeug>", "exec")
        exec(code, werkzeug_matcher.__dict__, namespace)  # Werkzeug's own source
    except (OSError, SyntaxError, LookupError, TypeError) as exc:
        log.warning("werkzeug matcher left unpatched (a cycle per request): %r", exc)
        return
    match = namespace["match"]
    match.__qualname__ = cls.match.__qualname__
    setattr(match, _MARK, True)
    cls.match = match  # type: ignore[method-assign]
