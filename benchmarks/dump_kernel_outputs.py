"""Dump (or compare) the outputs and gradients of a grid of recurrent layers, to show that a
refactoring changed no bit.

    PYTHONPATH=<old checkout>/src python benchmarks/dump_kernel_outputs.py dump old.pt
    python benchmarks/dump_kernel_outputs.py dump new.pt
    python benchmarks/dump_kernel_outputs.py compare old.pt new.pt

The grid: SimpleRNN / LSTM / GRU with several activations and GRU conventions, ``RNN(LSTMCell)``,
five masks (none, right, left, holes, an empty row), training or not, ``go_backwards``,
``return_sequences``, dropout or not, ``use_cudnn`` "auto" or False; ``Bidirectional`` over
three merge modes; float64. For each: every output and the gradients of the inputs and of every
weight, with seeded weights and dropout. ``compare`` reports the configurations whose tensors
are not bit-identical and the pairs of kernel names (``last_kernel``) seen.
"""

from __future__ import annotations

import collections
import itertools
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rnnkit import layers, tree

X = torch.as_tensor(np.random.default_rng(0).standard_normal((4, 7, 3)).astype("float32"))
_ROWS = {
    "right": [[1] * 7, [1] * 5 + [0] * 2, [1] * 2 + [0] * 5, [1] * 7],
    "left": [[1] * 7, [0] * 2 + [1] * 5, [0] * 6 + [1], [1] * 7],
    "holes": [[1, 0, 1, 0, 1, 1, 1], [1, 1, 0, 1, 1, 0, 1], [0, 1, 1, 0, 1, 1, 0], [1] * 7],
    "empty": [[1] * 7, [0] * 7, [1] * 3 + [0] * 4, [0] * 2 + [1] * 3 + [0] * 2],
}
MASKS: dict[str, torch.Tensor | None] = {"none": None}
MASKS.update({k: torch.tensor(v, dtype=torch.bool) for k, v in _ROWS.items()})
KINDS: dict[str, tuple[type, dict[str, Any]]] = {
    "lstm": (layers.LSTM, {}),
    "lstm_relu": (layers.LSTM, {"activation": "relu"}),
    "lstm_hs": (layers.LSTM, {"recurrent_activation": "hard_sigmoid"}),
    "lstm_relu_rec": (layers.LSTM, {"recurrent_activation": "relu"}),
    "gru": (layers.GRU, {}),
    "gru_ra_false": (layers.GRU, {"reset_after": False}),
    "gru_hs": (layers.GRU, {"recurrent_activation": "hard_sigmoid"}),
    "srnn": (layers.SimpleRNN, {}),
    "srnn_relu": (layers.SimpleRNN, {"activation": "relu"}),
    "srnn_sigmoid": (layers.SimpleRNN, {"activation": "sigmoid"}),
}
DROPOUT = {"dropout": 0.3, "recurrent_dropout": 0.2, "seed": 7}


def _run(make: Callable[[], Any], mask: Any, training: bool, dtype: torch.dtype) -> list:
    torch.manual_seed(1)
    layer = make()
    x = X.to(dtype)
    layer(x)
    torch.manual_seed(2)
    with torch.no_grad():
        for w in layer.weights:
            w.copy_(torch.randn_like(w) * 0.5)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(3)
    flat = tree.flatten(layer(x, mask=mask, training=training))
    grads = torch.autograd.grad(sum((o * o).sum() for o in flat), [x, *layer.trainable_weights])
    return [layer.last_kernel, *[o.detach() for o in flat], *grads]


def _layer(kind: str, **options: Any) -> Callable[[], Any]:
    def make() -> Any:
        if kind == "rnn_lstmcell":
            cell_options = {k: options.pop(k) for k in list(options) if k in DROPOUT}
            options.pop("use_cudnn", None)
            return layers.RNN(layers.LSTMCell(5, **cell_options), **options)
        cls, extra = KINDS[kind]
        return cls(5, **extra, **options)

    return make


def dump(path: str) -> None:
    results: dict[str, list] = {}
    grid = itertools.product(
        [*KINDS, "rnn_lstmcell"], MASKS, (False, True), (False, True), (False, True), (0, 1),
        ("auto", False),
    )  # fmt: skip
    for kind, mask, training, backwards, sequences, drop, cudnn in grid:
        options = dict(go_backwards=backwards, return_sequences=sequences, return_state=True,
                       use_cudnn=cudnn, **(DROPOUT if drop else {}))  # fmt: skip
        key = f"{kind}|{mask}|{training}|{backwards}|{sequences}|{drop}|{cudnn}"
        results[key] = _run(_layer(kind, **options), MASKS[mask], training, torch.float32)
    grid = itertools.product(
        ("lstm", "gru", "srnn_relu", "gru_ra_false", "lstm_relu"), MASKS, (False, True),
        ("concat", "sum", None), (False, True), (0, 1),
    )  # fmt: skip
    for kind, mask, sequences, merge, training, drop in grid:
        options = dict(return_sequences=sequences, return_state=True,
                       **({"dropout": 0.3, "seed": 5} if drop else {}))  # fmt: skip
        inner = _layer(kind, **options)
        results[f"bi|{kind}|{mask}|{sequences}|{merge}|{training}|{drop}"] = _run(
            lambda inner=inner, merge=merge: layers.Bidirectional(inner(), merge_mode=merge),
            MASKS[mask], training, torch.float32,
        )  # fmt: skip
    for kind, mask in itertools.product(("lstm", "gru", "srnn"), ("none", "right", "holes")):
        make = _layer(kind, return_sequences=True, dtype="float64")
        results[f"f64|{kind}|{mask}"] = _run(make, MASKS[mask], True, torch.float64)
    torch.save(results, path)
    print(f"{len(results)} configurations written to {path}")


def compare(old_path: str, new_path: str) -> int:
    old, new = torch.load(old_path), torch.load(new_path)
    if old.keys() != new.keys():
        print("the grids differ:", sorted(set(old) ^ set(new))[:10])
        return 1
    differ = [k for k in old if len(old[k]) != len(new[k])
              or not all(torch.equal(a, b) for a, b in zip(old[k][1:], new[k][1:]))]  # fmt: skip
    names = collections.Counter((old[k][0], new[k][0]) for k in old)
    print(
        f"{len(old)} configurations, {len(old) - len(differ)} bit-identical, {len(differ)} differ"
    )
    for key in differ[:20]:
        print("  differs:", key)
    print("kernel names (old, new):", dict(names))
    return 1 if differ else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["dump"] and len(sys.argv) == 3:
        dump(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
    else:
        sys.exit(__doc__)
