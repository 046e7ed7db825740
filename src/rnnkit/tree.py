"""Nested structures (tuples, lists, dicts, namedtuples) on top of `optree`.

Leaves are anything that is not a tuple, list, dict or namedtuple; ``None`` is a leaf too,
so that ``[mask, None, None]`` keeps its length.

Under ``torch.compile`` the same functions run in plain Python (:func:`python_flatten`,
:func:`python_pack`), which the graph capture traces; it cannot trace optree's C++ code and
would break the graph at every call.

>>> from rnnkit import tree
>>> tree.flatten({"b": 1, "a": (2, 3)})
[2, 3, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import optree
import torch

_NAMESPACE = "rnnkit"


def python_flatten(structure: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """:func:`flatten` in plain Python: lists, tuples, namedtuples, dicts by sorted key."""
    if is_leaf is not None and is_leaf(structure):
        return [structure]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in python_flatten(item, is_leaf)]
    if isinstance(structure, dict):
        return [
            leaf for key in sorted(structure) for leaf in python_flatten(structure[key], is_leaf)
        ]
    return [structure]


def python_pack(
    template: Any, leaves: Iterator[Any], is_leaf: Callable[[Any], bool] | None = None
) -> Any:
    """:func:`pack_sequence_as` in plain Python: ``template``'s structure with its leaves
    replaced, in :func:`python_flatten` order, by the items of the iterator ``leaves``."""
    if is_leaf is not None and is_leaf(template):
        return next(leaves)
    if isinstance(template, dict):
        packed = {key: python_pack(template[key], leaves, is_leaf) for key in sorted(template)}
        return type(template)((key, packed[key]) for key in template)
    if isinstance(template, list):
        return [python_pack(item, leaves, is_leaf) for item in template]
    if isinstance(template, tuple):
        items = [python_pack(item, leaves, is_leaf) for item in template]
        return type(template)(*items) if hasattr(template, "_fields") else tuple(items)
    return next(leaves)


def _python_map(func: Callable[..., Any], structures: tuple, is_leaf: Any = None) -> Any:
    columns = [python_flatten(s, is_leaf) for s in structures]
    if any(len(c) != len(columns[0]) for c in columns):
        raise ValueError("map_structure: the structures have different numbers of leaves")
    return python_pack(structures[0], iter([func(*leaves) for leaves in zip(*columns)]), is_leaf)


def is_nested(structure: Any) -> bool:
    """True for a tuple, list, dict or namedtuple (at any depth a structure of leaves)."""
    if torch.compiler.is_compiling():
        return isinstance(structure, (list, tuple, dict))
    return not optree.tree_is_leaf(structure, none_is_leaf=True, namespace=_NAMESPACE)


def flatten(structure: Any) -> list[Any]:
    """The leaves of ``structure`` in a deterministic order (dicts by sorted key)."""
    if torch.compiler.is_compiling():
        return python_flatten(structure)
    return optree.tree_leaves(structure, none_is_leaf=True, namespace=_NAMESPACE)


def map_structure(func: Callable[..., Any], *structures: Any) -> Any:
    """Apply ``func`` to the leaves of one or more structures of the same shape."""
    if torch.compiler.is_compiling():
        return _python_map(func, structures)
    return optree.tree_map(func, *structures, none_is_leaf=True, namespace=_NAMESPACE)


def pack_sequence_as(structure: Any, flat_sequence: list[Any]) -> Any:
    """Rebuild ``structure`` with the leaves taken, in order, from ``flat_sequence``."""
    if torch.compiler.is_compiling():
        flat = list(flat_sequence)
        if len(flat) != len(python_flatten(structure)):
            raise ValueError("pack_sequence_as: the structure and the flat sequence differ in size")
        return python_pack(structure, iter(flat))
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
        # Sizes may be SymInts (torch.export) or 0-d tensors (a TorchScript trace).
        return isinstance(x, torch.Size) or (
            isinstance(x, (tuple, list)) and all(_is_size(d) for d in x)
        )

    if torch.compiler.is_compiling():
        return _python_map(func, (structure,), is_shape)
    return optree.tree_map(
        func, structure, is_leaf=is_shape, none_is_leaf=True, namespace=_NAMESPACE
    )


def _is_size(d: Any) -> bool:
    return (
        d is None
        or isinstance(d, (int, torch.SymInt))
        or (isinstance(d, torch.Tensor) and d.dim() == 0 and not d.is_floating_point())
    )
