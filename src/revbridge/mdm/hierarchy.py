"""Customer hierarchies: parents before children, and cycles refused with the cycle named.

A hierarchy is a mapping ``child -> parent`` (``None`` for a root). Events arrive one at a
time, so a cycle can be built across several of them (A under B, B under C, C under A): each
re-parenting is checked against the hierarchy as it stands before it is accepted.
"""

from __future__ import annotations

from collections.abc import Mapping


def find_cycle(
    parents: Mapping[str, str | None], child: str, new_parent: str | None
) -> tuple[str, ...] | None:
    """The cycle that putting ``child`` under ``new_parent`` would close, else ``None``.

    The cycle is returned as the path from ``child`` back to itself: ``(A, B, C, A)``.
    """
    if new_parent is None:
        return None
    path = [child]
    seen = {child}
    node: str | None = new_parent
    while node is not None:
        path.append(node)
        if node == child:
            return tuple(path)
        if node in seen:  # an older cycle not through ``child``: not this change's doing
            return None
        seen.add(node)
        node = parents.get(node)
    return None


def describe_cycle(cycle: tuple[str, ...]) -> str:
    return " -> ".join(cycle)


def depth_of(parents: Mapping[str, str | None], node: str) -> int:
    """How many ancestors ``node`` has (0 for a root); cycles count each member once."""
    depth, seen = 0, {node}
    parent = parents.get(node)
    while parent is not None and parent not in seen:
        seen.add(parent)
        depth += 1
        parent = parents.get(parent)
    return depth


def parents_first(parents: Mapping[str, str | None]) -> list[str]:
    """Every customer, each after its parent (roots first); ties in name order."""
    return sorted(parents, key=lambda n: (depth_of(parents, n), n))
