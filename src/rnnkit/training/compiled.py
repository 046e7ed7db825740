"""What ``compile(loss=..., loss_weights=..., metrics=...)`` turns into, per model output.

Outputs are matched by position in the flattened output structure and named like Keras:
dict outputs by their keys, functional models by the layer that produced each output; a
repeated name gets ``_1``, ``_2``, ... appended (the guide's NestedCell model logs
``rnn_1_loss`` and ``rnn_1_1_loss``). Log keys for several outputs are ``<name>_loss`` and
``<name>_<metric>``; for one output, just ``loss`` and ``<metric>``.

- ``loss``: one loss for every output, a list (one per output, ``None`` to skip one) or a
  dict by output name.
- ``loss_weights``: None (all 1), a number (one output), a list or a dict by name. The total
  loss is ``sum_k loss_weights[k] * loss_k`` (per-output losses are logged unweighted).
- ``metrics``: a list applied to every output (the guide's behaviour; Keras 3 rejects a flat
  list for several outputs), a list with one list per output, or a dict by output name.
  ``weighted_metrics`` likewise, updated with the ``sample_weight`` of each batch.
"""

from __future__ import annotations

from typing import Any

import torch

from rnnkit import tree
from rnnkit.training import losses as losses_module
from rnnkit.training import metrics as metrics_module


def dedupe_names(names: list[str]) -> list[str]:
    """``["rnn_1", "rnn_1"]`` -> ``["rnn_1", "rnn_1_1"]``."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        count = seen.get(name, 0)
        seen[name] = count + 1
        out.append(name if count == 0 else f"{name}_{count}")
    return out


def _per_output(spec: Any, names: list[str], argument: str, broadcast_list: bool) -> list[Any]:
    """``spec`` spread over the outputs: a dict by name, a list per output, or one value."""
    n = len(names)
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ValueError(
                f"compile: {argument} has keys {unknown} that are not output names; the model's "
                f"outputs are {names}"
            )
        return [spec.get(name) for name in names]
    if isinstance(spec, (list, tuple)) and not broadcast_list:
        if len(spec) != n:
            raise ValueError(
                f"compile: {argument} is a list of {len(spec)} entries but the model has {n} "
                f"output(s) {names}; pass one entry per output, a dict by output name, or a "
                "single value for all outputs"
            )
        return list(spec)
    return [spec] * n


class CompiledLoss:
    """The weighted sum of per-output losses, with one ``Mean`` tracker per output."""

    def __init__(self, loss: Any, loss_weights: Any) -> None:
        self.loss = loss
        self.loss_weights = loss_weights
        self.built = False
        self.losses: list[Any] = []
        self.weights: list[float] = []
        self.trackers: list[metrics_module.Mean | None] = []

    def build(self, names: list[str]) -> None:
        single = len(names) == 1
        specs = _per_output(self.loss, names, "loss", broadcast_list=False)
        if single and isinstance(self.loss, (list, tuple)) and len(self.loss) == 1:
            specs = list(self.loss)
        self.losses = [losses_module.get(s) for s in specs]
        if self.loss_weights is None:
            weights = [1.0] * len(names)
        elif isinstance(self.loss_weights, (int, float)):
            weights = [float(self.loss_weights)] * len(names)
        else:
            weights = _per_output(self.loss_weights, names, "loss_weights", broadcast_list=False)
            weights = [1.0 if w is None else float(w) for w in weights]
        self.weights = weights
        with_loss = sum(loss is not None for loss in self.losses)
        self.trackers = [
            metrics_module.Mean(name=f"{name}_loss") if loss is not None and with_loss > 1 else None
            for name, loss in zip(names, self.losses)
        ]
        self.built = True

    def __call__(
        self, flat_true: list[Any], flat_pred: list[Any], sample_weight: Any
    ) -> torch.Tensor | None:
        weights = (
            tree.flatten(sample_weight)
            if sample_weight is not None and tree.is_nested(sample_weight)
            else [sample_weight] * len(flat_pred)
        )
        total = None
        for loss, w, tracker, y_t, y_p, sw in zip(
            self.losses, self.weights, self.trackers, flat_true, flat_pred, weights
        ):
            if loss is None:
                continue
            if y_t is None:
                raise ValueError(
                    "fit: a target (y) is missing for an output that has a loss; pass y or "
                    "set that output's loss to None"
                )
            value = loss(y_t, y_p, sw)
            if tracker is not None:
                tracker.update_state(value.detach(), sample_weight=y_p.shape[0])
            if w != 1.0:  # a weight of 1 (the default) costs no op forward or backward
                value = value * w
            total = value if total is None else total + value
        return total

    @property
    def metrics(self) -> list[metrics_module.Mean]:
        return [t for t in self.trackers if t is not None]


class CompiledMetrics:
    """The metrics of every output, resolved (``"accuracy"`` by shapes) on the first batch.

    ``weighted=True`` (``compile(weighted_metrics=...)``) updates them with the batch's
    ``sample_weight``; a name already taken gets ``weighted_`` in front, as in Keras 3.
    """

    def __init__(self, metrics: Any, weighted: bool = False) -> None:
        self.spec = metrics
        self.weighted = weighted
        self.built = False
        self.per_output: list[list[Any]] = []

    def build(
        self,
        names: list[str],
        flat_true: list[Any],
        flat_pred: list[Any],
        taken: set[str] | None = None,
    ) -> None:
        single = len(names) == 1
        spec = self.spec
        if spec is None:
            specs: list[Any] = [None] * len(names)
        elif isinstance(spec, dict):
            specs = _per_output(spec, names, "metrics", broadcast_list=False)
        elif (
            isinstance(spec, (list, tuple))
            and not single
            and len(spec) == len(names)
            and all(s is None or isinstance(s, (list, tuple)) for s in spec)
        ):
            specs = list(spec)
        else:
            specs = [spec] * len(names)
        self.per_output = []
        used: set[int] = set()
        for name, s, y_t, y_p in zip(names, specs, flat_true, flat_pred):
            items = [] if s is None else (list(s) if isinstance(s, (list, tuple)) else [s])
            resolved = []
            for item in items:
                if y_t is None:
                    continue
                metric = metrics_module.get_metric(item, y_t, y_p)
                # the name it was given, kept across renames (a second compile, a saved and
                # reloaded compile config) so that prefixes are not added twice
                base = getattr(metric, "_compile_base_name", metric.name)
                if id(metric) in used:  # one metric object listed for several outputs
                    metric = metrics_module.clone_metric(metric)
                used.add(id(metric))
                metric._compile_base_name = base
                prefix = "" if single else f"{name}_"
                full = f"{prefix}{base}"
                if taken is not None and full in taken and self.weighted:
                    full = f"{prefix}weighted_{base}"
                if taken is not None:
                    base, i = full, 0
                    while full in taken:
                        i += 1
                        full = f"{base}_{i}"
                    taken.add(full)
                metric.name = full
                resolved.append(metric)
            self.per_output.append(resolved)
        self.built = True

    def update_state(
        self, flat_true: list[Any], flat_pred: list[Any], sample_weight: Any = None
    ) -> None:
        if not self.weighted or sample_weight is None:
            weights = [None] * len(flat_pred)
        elif tree.is_nested(sample_weight):
            weights = tree.flatten(sample_weight)
        else:
            weights = [sample_weight] * len(flat_pred)
        for metrics, y_t, y_p, sw in zip(self.per_output, flat_true, flat_pred, weights):
            for metric in metrics:
                if sw is None:
                    metric.update_state(y_t, y_p)
                else:
                    metric.update_state(y_t, y_p, sample_weight=sw)

    @property
    def metrics(self) -> list[Any]:
        return [m for ms in self.per_output for m in ms]
