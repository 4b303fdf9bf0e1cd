"""The dependency patches of cycle_breakers.py are installed and still needed.

Each test fails if an upgrade of Hypercorn or Werkzeug makes a patch a no-op (the
patch could not be applied, or the code it breaks a cycle in has changed): then read
the new code and adapt or drop the patch. tests/session/test_cyclic_garbage.py checks
the result over real sockets.
"""

from __future__ import annotations

import gc
import inspect

from hypercorn.trio import tcp_server
from werkzeug.routing import Map, Rule
from werkzeug.routing import matcher as werkzeug_matcher

from voiceagent import cycle_breakers


def cycles_made_by(action: object) -> int:
    gc.collect()
    gc.disable()
    try:
        action()  # type: ignore[operator]
        return gc.collect()
    finally:
        gc.enable()


ROUTES = Map([Rule("/ws/<session_id>", endpoint="ws", websocket=True)])  # built once


def match_a_websocket_route() -> None:
    adapter = ROUTES.bind("localhost", path_info="/ws/room-1", url_scheme="ws")
    assert adapter.match() == ("ws", {"session_id": "room-1"})


def test_werkzeug_matcher_patch_is_installed_and_leaves_no_cycle() -> None:
    original = werkzeug_matcher.StateMachineMatcher.match
    was_patched = getattr(original, cycle_breakers._MARK, False)
    cycle_breakers.install()
    patched = werkzeug_matcher.StateMachineMatcher.match
    assert getattr(patched, cycle_breakers._MARK, False), "the matcher could not be patched"
    match_a_websocket_route()  # warm-up: the map compiles its state machine once
    assert cycles_made_by(match_a_websocket_route) == 0
    if not was_patched:  # the unpatched matcher still makes the cycle the patch breaks
        werkzeug_matcher.StateMachineMatcher.match = original  # type: ignore[method-assign]
        try:
            assert cycles_made_by(match_a_websocket_route) > 0
        finally:
            werkzeug_matcher.StateMachineMatcher.match = patched  # type: ignore[method-assign]


def test_hypercorn_tcp_server_still_holds_its_protocol_through_its_own_send() -> None:
    cycle_breakers.install()
    run = tcp_server.TCPServer.run
    assert getattr(run, cycle_breakers._MARK, False)
    source = inspect.getsource(run.__wrapped__)  # type: ignore[attr-defined]
    # The cycle the wrapper breaks: self.protocol = ProtocolWrapper(..., self.protocol_send)
    assert "self.protocol = ProtocolWrapper(" in source
    assert "self.protocol_send," in source
