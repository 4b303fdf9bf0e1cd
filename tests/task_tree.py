"""Counting a task's descendants: what a connection costs in tasks, asserted by tests."""

from __future__ import annotations

from collections.abc import Collection

import trio


def tasks_below(task: trio.lowlevel.Task, besides: Collection[trio.Nursery] = ()) -> int:
    """Tasks under `task`'s nurseries, except those under the nurseries in `besides`
    (a fixture's, when the test's own task holds it)."""
    return sum(
        1 + tasks_below(child)
        for nursery in task.child_nurseries
        if nursery not in besides
        for child in nursery.child_tasks
    )
