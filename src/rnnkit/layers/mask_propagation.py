"""How masks travel between layers: as a ``_keras_mask`` attribute on tensors, as in Keras.

A layer reads the masks of its inputs (:func:`collect_masks`) and, when it supports masking,
attaches the mask it computes to its outputs (:func:`attach_masks`). A mask is a ``(N, T)``
bool tensor, True for the steps to use.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import tree


def collect_masks(inputs: Any) -> Any:
    """The ``_keras_mask`` of ``inputs`` (nested like them), or None when no input has one."""
    if isinstance(inputs, torch.Tensor):
        return getattr(inputs, "_keras_mask", None)
    if not tree.is_nested(inputs):
        return None
    masks = tree.map_structure(lambda x: getattr(x, "_keras_mask", None), inputs)
    return None if all(m is None for m in tree.flatten(masks)) else masks


def attach_masks(outputs: Any, masks: Any) -> None:
    """Attach ``masks`` (one, or nested like ``outputs``) to the output tensors as
    ``_keras_mask``; a structure that does not match is left unmasked."""
    if masks is None:
        return
    if isinstance(outputs, torch.Tensor):
        if isinstance(masks, torch.Tensor):
            outputs._keras_mask = masks
        return
    flat_out = tree.flatten(outputs)
    flat_masks = tree.flatten(masks) if tree.is_nested(masks) else [masks] * len(flat_out)
    if len(flat_masks) != len(flat_out):
        return
    for out, m in zip(flat_out, flat_masks):
        if isinstance(out, torch.Tensor) and isinstance(m, torch.Tensor):
            out._keras_mask = m
