"""Nested structures (tuples, lists, dicts, namedtuples) on top of `optree`.

Leaves are anything that is not a tuple, list, dict or namedtuple; ``None`` is a leaf too,
so that ``[mask, None, None]`` keeps its length.

>>> from rnnkit import tree
>>> tree.flatten({"b": 1, "a": (2, 3)})
[2, 3, 1]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optree

_NAMESPACE = "rnnkit"


def is_nested(structure: Any) -> bool:
    """True for a tuple, list, dict or namedtuple (at any depth a structure of leaves)."""
    return not optree.tree_is_leaf(structure, none_is_leaf=True, namespace=_NAMESPACE)


def flatten(structure: Any) -> list[Any]:
    """The leaves of ``structure`` in a deterministic order (dicts by sorted key)."""
    return optree.tree_leaves(structure, none_is_leaf=True, namespace=_NAMESPACE)


def map_structure(func: Callable[..., Any], *structures: Any) -> Any:
    """Apply ``func`` to the leaves of one or more structures of the same shape."""
    return optree.tree_map(func, *structures, none_is_leaf=True, namespace=_NAMESPACE)


def pack_sequence_as(structure: Any, flat_sequence: list[Any]) -> Any:
    """Rebuild ``structure`` with the leaves taken, in order, from ``flat_sequence``."""
    treespec = optree.tree_structure(structure, none_is_leaf=True, namespace=_NAMESPACE)
    flat = list(flat_sequence)
    if len(flat) != treespec.num_leaves:
        raise ValueError(
            f"pack_sequence_as: the structure has {treespec.num_leaves} leaves, "
            f"got a flat sequence of {len(flat)}"
        )
    return optree.tree_unflatten(treespec, flat)


def assert_same_structure(a: Any, b: Any) -> None:
    """Raise ``ValueError`` when ``a`` and ``b`` are not nested the same way."""
    sa = optree.tree_structure(a, none_is_leaf=True, namespace=_NAMESPACE)
    sb = optree.tree_structure(b, none_is_leaf=True, namespace=_NAMESPACE)
    if sa.num_leaves != sb.num_leaves or sa != sb:
        raise ValueError(f"structures differ: {sa} vs {sb}")


def map_shape_structure(func: Callable[[Any], Any], structure: Any) -> Any:
    """Like ``map_structure``, but a tuple or list of ints (or None) counts as one leaf: a shape."""

    def is_shape(x: Any) -> bool:
        return isinstance(x, (tuple, list)) and all(d is None or isinstance(d, int) for d in x)

    return optree.tree_map(
        func, structure, is_leaf=is_shape, none_is_leaf=True, namespace=_NAMESPACE
    )
