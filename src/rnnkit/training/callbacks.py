"""Callbacks with Keras 3 semantics (public as :mod:`rnnkit.callbacks`).

``fit`` calls, in order: ``on_train_begin``; per epoch ``on_epoch_begin``, per batch
``on_train_batch_begin``/``on_train_batch_end(batch, logs)`` (running epoch means of the
metrics), then validation (``on_test_*``) and ``on_epoch_end(epoch, logs)`` with the epoch's
metrics and ``val_``-prefixed validation metrics; finally ``on_train_end``. A callback stops
training by setting ``self.model.stop_training = True`` (checked after every batch and epoch).

Under data parallelism (:mod:`rnnkit.distributed`) every rank runs the callbacks with the
same logs; only rank 0 prints and writes files.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch

from rnnkit import distributed
from rnnkit.saving.weights_file import check_weights_suffix
from rnnkit.training.optimizers import get_learning_rate, set_learning_rate
from rnnkit.training.progress import ProgressBar

_HOOKS = (
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_train_batch_begin",
    "on_train_batch_end",
    "on_test_begin",
    "on_test_end",
    "on_test_batch_begin",
    "on_test_batch_end",
    "on_predict_begin",
    "on_predict_end",
    "on_predict_batch_begin",
    "on_predict_batch_end",
)


class Callback:
    """Base class; override the ``on_*`` hooks you need. ``self.model`` and ``self.params``
    (``epochs``, ``steps``, ``verbose``) are set by ``fit``."""

    def __init__(self) -> None:
        self.model: Any = None
        self.params: dict[str, Any] = {}

    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def on_train_begin(self, logs: dict | None = None) -> None: ...
    def on_train_end(self, logs: dict | None = None) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_begin(self, logs: dict | None = None) -> None: ...
    def on_test_end(self, logs: dict | None = None) -> None: ...
    def on_test_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_test_batch_end(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_begin(self, logs: dict | None = None) -> None: ...
    def on_predict_end(self, logs: dict | None = None) -> None: ...
    def on_predict_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_predict_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    # Keras 2 aliases
    def on_batch_begin(self, batch: int, logs: dict | None = None) -> None: ...
    def on_batch_end(self, batch: int, logs: dict | None = None) -> None: ...

    def _abort(self) -> None:
        """Called instead of ``on_train_end`` when ``fit`` raises: release what the callback
        holds (not a Keras hook)."""


def _print(message: str) -> None:
    """Print on rank 0 only (see :mod:`rnnkit.distributed`)."""
    if distributed.is_chief():
        print(message, flush=True)


class CallbackList:
    """Calls every callback's hook in order (used by the trainer)."""

    def __init__(self, callbacks: Iterable[Callback], model: Any, params: dict[str, Any]):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks: expected rnnkit.callbacks.Callback objects, received "
                    f"{cb!r} of type {type(cb).__name__}"
                )
            cb.set_model(model)
            cb.set_params(params)

    def call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(*args)
            if hook == "on_train_batch_begin":
                cb.on_batch_begin(*args)
            elif hook == "on_train_batch_end":
                cb.on_batch_end(*args)


class History(Callback):
    """Records ``epoch`` (the list of epoch indices) and ``history`` (``{key: [values]}``)."""

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.epoch = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)
        if self.model is not None:
            self.model.history = self


class ProgbarLogger(Callback):
    """Prints ``Epoch i/n`` and a progress bar (verbose=1) or one line (verbose=2) per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self._bar: ProgressBar | None = None
        self._seen = 0

    def _verbose(self) -> int:
        return int(self.params.get("verbose", 0))

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self._verbose():
            print(f"Epoch {epoch + 1}/{self.params['epochs']}", flush=True)
            self._bar = ProgressBar(self.params.get("steps"), self._verbose())
            self._seen = 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._seen = batch + 1
        if self._bar is not None and self._verbose() == 1:
            self._bar.update(self._seen, logs)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.update(self._seen, logs, finalize=True)
            self._bar = None

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _abort(self) -> None:
        self.on_train_end(None)  # leave the terminal clean: stop a live progress bar


# ------------------------------------------------------------------------ monitoring helpers
def _monitor_op(monitor: str, mode: str, owner: str) -> Callable[[float, float], bool]:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f'{owner}: mode must be "auto", "min" or "max", received {mode!r}')
    if mode == "auto":
        name = monitor.removeprefix("val_")
        mode = "max" if ("acc" in name or name in ("auc", "precision", "recall")) else "min"
    return np.greater if mode == "max" else np.less


class _Monitor(Callback):
    def __init__(self, monitor: str, mode: str, min_delta: float) -> None:
        super().__init__()
        self.monitor = monitor
        self.monitor_op = _monitor_op(monitor, mode, type(self).__name__)
        self.min_delta = abs(min_delta) if self.monitor_op is np.greater else -abs(min_delta)

    def _current(self, logs: dict | None) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__}: the monitored metric {self.monitor!r} is not in the "
                f"logs; available: {sorted(logs or {})}",
                UserWarning,
                stacklevel=3,
            )
        return value

    def _improved(self, current: float, reference: float | None) -> bool:
        if reference is None:
            return True
        return bool(self.monitor_op(current - self.min_delta, reference))


class EarlyStopping(_Monitor):
    """Stop training when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        monitor: the log key watched (default ``"val_loss"``).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracies, min otherwise).
        baseline: a value the monitored quantity must beat; until it does, epochs count as
            not improving.
        restore_best_weights: at the end of training, set the weights of the best epoch.
        start_from_epoch: epochs to wait before monitoring.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        min_delta: float = 0.0,
        patience: int = 0,
        verbose: int = 0,
        mode: str = "auto",
        baseline: float | None = None,
        restore_best_weights: bool = False,
        start_from_epoch: int = 0,
    ) -> None:
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = baseline
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = int(start_from_epoch)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait = 0
        self.stopped_epoch = 0
        self.best: float | None = None
        self.best_weights: list[np.ndarray] | None = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = self._current(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self._improved(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improved(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.stopped_epoch > 0 and self.verbose > 0:
            _print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                _print(
                    f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement
    of ``monitor`` (by more than ``min_delta``), then wait ``cooldown`` epochs; never below
    ``min_lr``. Adds ``learning_rate`` to the epoch logs."""

    def __init__(
        self,
        monitor: str = "val_loss",
        factor: float = 0.1,
        patience: int = 10,
        verbose: int = 0,
        mode: str = "auto",
        min_delta: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be < 1, received {factor}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = float(factor), int(patience), verbose
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.wait = 0
        self.cooldown_counter = 0
        self.best: float | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = get_learning_rate(optimizer)
        current = self._current(logs)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(current, self.best):
            self.best = current
            self.wait = 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = get_learning_rate(optimizer)
                if old > self.min_lr:
                    new = max(old * self.factor, self.min_lr)
                    set_learning_rate(optimizer, new)
                    if self.verbose > 0:
                        _print(
                            f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}."
                        )
                    self.cooldown_counter = self.cooldown
                    self.wait = 0


class TerminateOnNaN(Callback):
    """Stop training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            _print(f"Batch {batch}: Invalid loss, terminating training")
            self.model.stop_training = True


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_begin(epoch, logs)``, ``on_epoch_end(epoch,
    logs)``, ``on_train_begin(logs)``, ``on_train_end(logs)``, ``on_batch_begin(batch, logs)``,
    ``on_batch_end(batch, logs)``, and any other hook by its name."""

    def __init__(self, **hooks: Callable[..., Any] | None) -> None:
        super().__init__()
        for name, fn in hooks.items():
            if name not in _HOOKS and name not in ("on_batch_begin", "on_batch_end"):
                raise ValueError(
                    f"LambdaCallback: unknown hook {name!r}; valid: "
                    f"{', '.join(sorted((*_HOOKS, 'on_batch_begin', 'on_batch_end')))}"
                )
            if fn is not None:
                setattr(self, name, fn)


class CSVLogger(Callback):
    """Write each epoch's logs as a CSV row: ``epoch`` then the log keys (sorted); on rank 0
    only under data parallelism.

    Args:
        filename: the CSV file.
        separator: the field separator.
        append: append to an existing file instead of overwriting it.
    """

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.sep = separator
        self.append = append
        self.keys: list[str] | None = None
        self._file: Any = None
        self._writer: Any = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if not distributed.is_chief():
            return
        has_header = self.append and os.path.exists(self.filename)
        if has_header:
            with open(self.filename) as f:
                has_header = bool(f.readline().strip())
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._has_header = has_header
        self.keys = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._file is None:  # not rank 0
            return
        logs = dict(logs or {})
        if self.keys is None:
            self.keys = sorted(logs)
            self._writer = csv.DictWriter(
                self._file, fieldnames=["epoch", *self.keys], delimiter=self.sep
            )
            if not self._has_header:
                self._writer.writeheader()
        row = {"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}}
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


class ModelCheckpoint(_Monitor):
    """Save the model (or its weights) after every epoch, or only when ``monitor`` improved.

    ``filepath`` may hold ``{epoch}`` (1-based) and log keys, e.g.
    ``"ckpt-{epoch:02d}-{val_loss:.2f}.keras"``. Weights are saved with the model's
    ``save_weights(path)`` when it has one (an rnnkit model: ``path`` must end in
    ``.weights.h5``, Keras 3's layout, or ``.weights.safetensors``), otherwise as
    ``torch.save(model.state_dict(), path)`` (load with
    ``model.load_state_dict(torch.load(path))``). A full model is saved with
    ``model.save(path)``, which the model must provide (else use ``save_weights_only=True``);
    for an rnnkit model ``path`` must end in ``.keras``. A wrong suffix is refused when
    ``fit`` starts, before the first epoch. Under data parallelism only rank 0 saves.
    """

    def __init__(
        self,
        filepath: str | os.PathLike,
        monitor: str = "val_loss",
        verbose: int = 0,
        save_best_only: bool = False,
        save_weights_only: bool = False,
        mode: str = "auto",
        save_freq: str = "epoch",
        initial_value_threshold: float | None = None,
    ) -> None:
        super().__init__(monitor, mode, 0.0)
        if save_freq != "epoch":
            raise ValueError(
                f'ModelCheckpoint: only save_freq="epoch" is supported, received {save_freq!r}'
            )
        self.filepath = os.fspath(filepath)
        self.verbose = verbose
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.best: float | None = initial_value_threshold

    def set_model(self, model: Any) -> None:
        if not self.save_weights_only and not hasattr(model, "save"):
            raise ValueError(
                f"ModelCheckpoint: {type(model).__name__} has no save() method to save the full "
                "model; pass save_weights_only=True"
            )
        # an rnnkit model (save and save_weights) refuses other suffixes: say so before training
        rnnkit_model = hasattr(model, "save_weights")
        if self.save_weights_only and rnnkit_model:
            check_weights_suffix(self.filepath, "ModelCheckpoint")
        elif not self.save_weights_only and rnnkit_model and not self.filepath.endswith(".keras"):
            raise ValueError(
                f"ModelCheckpoint: filepath must end in '.keras' to save the full model, "
                f"received {self.filepath!r}; to save only the weights pass "
                "save_weights_only=True and a '.weights.h5' or '.weights.safetensors' path"
            )
        super().set_model(model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            current = self._current(logs)
            if current is None or not self._improved(current, self.best):
                return
            if self.verbose > 0:
                _print(
                    f"Epoch {epoch + 1}: {self.monitor} improved to {current:.5f}, saving {path}"
                )
            self.best = current
        if not distributed.is_chief():
            return
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if not self.save_weights_only:
            self.model.save(path)
        elif hasattr(self.model, "save_weights"):
            self.model.save_weights(path)
        else:
            torch.save(self.model.state_dict(), path)


def __getattr__(name: str) -> Any:
    """``BackupAndRestore`` from its former place, with a ``DeprecationWarning``."""
    if name != "BackupAndRestore":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        "rnnkit.training.callbacks.BackupAndRestore moved: import it from rnnkit.callbacks",
        DeprecationWarning,
        stacklevel=2,
    )
    # Lazy: rnnkit.training.backup imports Callback from this module.
    from rnnkit.training.backup import BackupAndRestore

    return BackupAndRestore
