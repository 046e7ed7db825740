"""``BackupAndRestore``: resume an interrupted ``fit`` exactly where its last backup left it."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

import torch

from rnnkit import distributed
from rnnkit.saving.files import atomic_write
from rnnkit.saving.limits import LoadLimits, check_limits
from rnnkit.saving.state_file import read_state, state_to_bytes
from rnnkit.training import rng
from rnnkit.training.callbacks import Callback
from rnnkit.training.metrics import Mean
from rnnkit.training.optimizers import Optimizer

_FORMAT = "rnnkit.BackupAndRestore/2"


class BackupAndRestore(Callback):
    """Back up the training state during ``fit`` and resume from it when ``fit`` runs again.

    Each backup is one file, ``backup_dir/backup.zip``, written atomically (a temporary file in
    the same folder, flushed, fsync-ed, then ``os.replace``-d), so a process killed at any
    moment (even by SIGKILL during a save) leaves the previous backup intact. It holds the
    model's weights (``state_dict``), the optimizer's state, the position (epoch and batch),
    the loss tracker's running mean, the states of the torch (CPU and CUDA), numpy and Python
    random generators, and the data position: the generators' states from just before the
    current pass over the data began (which fixed its shuffled order) and the number of
    batches taken from it.

    When ``fit`` starts and a backup exists, the weights, optimizer and generators are
    restored and training continues with the next batch of the interrupted epoch, in the
    same order: running the same script again after a kill ends with the same weights, bit
    for bit on the CPU with ``torch.use_deterministic_algorithms(True)``, as an uninterrupted
    run. The model must be built (created with an ``Input``) and compiled as before. The
    state of other callbacks (e.g. ``EarlyStopping``'s patience) is not saved, and the
    running metrics of a resumed epoch, other than ``loss``, cover only its resumed part.

    SIGTERM (sent by schedulers before they stop a job): while ``fit`` runs in the main
    thread, a SIGTERM makes the callback save a backup at the end of the current batch (or
    epoch) and stop training as ``model.stop_training`` does; ``fit`` then returns normally
    and :attr:`interrupted` is True. The backup is kept; run the script again to resume. After
    ``fit`` the previous SIGTERM handler is back.

    Under data parallelism (:mod:`rnnkit.distributed`) rank 0 writes the backup, every rank
    restores it (``backup_dir`` must be on a shared file system) and a SIGTERM on any rank
    stops every rank at the same batch.

    Args:
        backup_dir: the folder of the backup file; use one folder per training run.
        save_freq: ``"epoch"`` (at the end of every epoch), an int ``N`` (every ``N`` batches,
            counted over the whole run) or False (only on SIGTERM).
        double_checkpoint: keep the previous backup as ``backup.zip.bkp`` and resume from it
            when the latest cannot be read.
        delete_checkpoint: delete the backup when ``fit`` completes (not when it was
            interrupted by SIGTERM or raised).
        limits: the :class:`~rnnkit.saving.LoadLimits` a backup is read within (it is a
            file like any other: JSON and tensors, no pickle, checked before use).

    Example::

        backup = rnnkit.callbacks.BackupAndRestore("ckpt/run1", save_freq=100)
        model.fit(x, y, epochs=10, callbacks=[backup])
        if backup.interrupted:
            sys.exit(0)  # preempted: the next run resumes from ckpt/run1
    """

    def __init__(
        self,
        backup_dir: str | os.PathLike,
        save_freq: str | int | bool = "epoch",
        double_checkpoint: bool = False,
        delete_checkpoint: bool = True,
        limits: LoadLimits | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
            raise ValueError(
                f"BackupAndRestore: backup_dir must be a non-empty path, received {backup_dir!r}"
            )
        every = isinstance(save_freq, int) and not isinstance(save_freq, bool) and save_freq > 0
        if save_freq != "epoch" and save_freq is not False and not every:
            raise ValueError(
                'BackupAndRestore: save_freq must be "epoch", a positive number of batches or '
                f"False, received {save_freq!r}"
            )
        self.backup_dir = os.fspath(backup_dir)
        self.save_freq = save_freq
        self.double_checkpoint = bool(double_checkpoint)
        self.delete_checkpoint = bool(delete_checkpoint)
        self.limits = check_limits(limits, "BackupAndRestore")
        self.interrupted = False
        self._every = save_freq if every else None
        self._stop_requested = False
        self._handler_installed = False
        self._previous_handler: Any = None
        self._epoch = 0
        self._batches_seen = 0

    @property
    def backup_path(self) -> str:
        """The backup file, ``backup_dir/backup.zip``."""
        return os.path.join(self.backup_dir, "backup.zip")

    # ------------------------------------------------------------------------- hooks
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.interrupted = False
        self._stop_requested = False
        self._epoch, self._batches_seen = 0, 0
        self._install_handler()
        state = self._load()
        if state is not None:
            self._restore(state)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches_seen += 1
        if distributed.any_rank(self._stop_requested):
            self._save(self._epoch, batch + 1)
            self._stop()
        elif self._every is not None and self._batches_seen % self._every == 0:
            self._save(self._epoch, batch + 1)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.interrupted:  # the interrupted epoch is not over: keep its mid-epoch backup
            return
        if distributed.any_rank(self._stop_requested):
            self._save(epoch + 1, 0)
            self._stop()
        elif self.save_freq == "epoch":
            self._save(epoch + 1, 0)

    def on_train_end(self, logs: dict | None = None) -> None:
        self._uninstall_handler()
        if self.delete_checkpoint and not self.interrupted and distributed.is_chief():
            for path in (self.backup_path, self.backup_path + ".bkp"):
                if os.path.exists(path):
                    os.remove(path)
            if os.path.isdir(self.backup_dir) and not os.listdir(self.backup_dir):
                os.rmdir(self.backup_dir)

    def _abort(self) -> None:
        self._uninstall_handler()

    # ----------------------------------------------------------------------- SIGTERM
    def _install_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        self._previous_handler = signal.signal(signal.SIGTERM, self._request_stop)
        self._handler_installed = True

    def _uninstall_handler(self) -> None:
        if self._handler_installed:
            previous = self._previous_handler
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
            self._handler_installed = False

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self._stop_requested = True

    def _stop(self) -> None:
        self.interrupted = True
        self.model.stop_training = True

    # ------------------------------------------------------------------ save / load
    def _save(self, epoch: int, step: int) -> None:
        if not distributed.is_chief():
            return
        model = self.model
        state = {
            "format": _FORMAT,
            "epoch": epoch,
            "step": step,
            "batches_seen": self._batches_seen,
            "model": list(model.state_dict().values()),  # by position: names vary
            "optimizer": _optimizer_state(model.optimizer),
            "loss_tracker": (model._loss_tracker._total, model._loss_tracker._count),
            "rng": rng.get_state(),
            "data": model.train_iterator.state(),
        }
        data = state_to_bytes(state)
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self.backup_path):
            os.replace(self.backup_path, self.backup_path + ".bkp")
        atomic_write(self.backup_path, lambda f: f.write(data))

    def _load(self) -> dict[str, Any] | None:
        legacy = os.path.join(self.backup_dir, "backup.pt")
        if os.path.exists(legacy):
            raise ValueError(
                f"BackupAndRestore: {legacy!r} is a backup in the old torch.save (pickle) "
                "format; pickles can hold code, so it is not loaded. Delete it to start over"
            )
        paths = [self.backup_path] + ([self.backup_path + ".bkp"] if self.double_checkpoint else [])
        errors = []
        for path in paths:
            if not os.path.exists(path):
                continue
            try:
                state = read_state(path, self.limits)
            except ValueError as e:
                errors.append(str(e))
                continue
            _check_state(state, path)
            return state
        if errors:
            raise ValueError(
                f"BackupAndRestore: cannot read the backup ({'; '.join(errors)}); delete it to "
                "start over"
            )
        return None

    def _restore(self, state: dict[str, Any]) -> None:
        model = self.model
        if not getattr(model, "built", True):
            raise ValueError(
                "BackupAndRestore: the model must be built before fit() to restore a backup; "
                "create it with an Input (or call it on a batch first)"
            )
        current = model.state_dict()
        shapes = [tuple(t.shape) for t in current.values()]
        saved = [tuple(t.shape) for t in state["model"]]
        if shapes != saved:
            raise ValueError(
                f"BackupAndRestore: the backup in {self.backup_dir!r} holds weights of shapes "
                f"{saved[:8]}, this model has {shapes[:8]}; resume with the same model"
            )
        model.load_state_dict(dict(zip(current.keys(), state["model"])))
        try:
            _restore_optimizer(model, state["optimizer"])
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(
                f"BackupAndRestore: the optimizer state in {self.backup_path!r} does not fit "
                f"this model's optimizer ({e!r}); resume with the same model and optimizer"
            ) from e
        if not distributed.is_active():  # rank 0's running mean is not the global one
            tracker: Mean = model._loss_tracker
            tracker._total, tracker._count = state["loss_tracker"]
        model.train_iterator.restore(state["data"])
        rng.set_state(state["rng"])
        model.resume_at(state["epoch"], state["step"])
        self._epoch, self._batches_seen = state["epoch"], state["batches_seen"]


_COUNT = 2**40  # epochs, batches: far beyond any run, small enough to loop over safely


def _check_state(state: Any, path: str) -> None:
    """``ValueError`` naming ``path`` unless ``state`` has the layout :meth:`_save` writes:
    the keys, the types, the counts in range and the generator states of the right sizes."""

    def fail(what: str) -> None:
        raise ValueError(f"BackupAndRestore: {path!r}: {what}; delete the backup to start over")

    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _COUNT

    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        fail("not a backup written by this callback (use a backup_dir of its own)")
    missing = sorted(
        {"epoch", "step", "batches_seen", "model", "optimizer", "loss_tracker", "rng", "data"}
        - set(state)
    )
    if missing:
        fail(f"the backup lacks {missing}")
    for key in ("epoch", "step", "batches_seen"):
        if not count(state[key]):
            fail(f"{key} must be a count, received {str(state[key])[:40]}")
    if not (
        isinstance(state["model"], list)
        and all(isinstance(t, torch.Tensor) for t in state["model"])
    ):
        fail("the weights must be a list of tensors")
    tracker = state["loss_tracker"]
    if not (isinstance(tracker, tuple) and len(tracker) == 2 and all(map(_number, tracker))):
        fail("the loss tracker must hold two numbers")
    optimizer = state["optimizer"]
    if not (isinstance(optimizer, dict) and set(optimizer) == {"torch", "iterations"}):
        fail("the optimizer state must hold 'torch' and 'iterations'")
    if optimizer["iterations"] is not None and not count(optimizer["iterations"]):
        fail("the optimizer's iterations must be a count")
    torch_state = optimizer["torch"]
    if torch_state is not None and not (
        isinstance(torch_state, dict)
        and isinstance(torch_state.get("state"), dict)
        and isinstance(torch_state.get("param_groups"), list)
    ):
        fail("the torch optimizer state must hold 'state' and 'param_groups'")
    _check_rng(state["rng"], fail)
    data = state["data"]
    if data is not None:
        if not (
            isinstance(data, dict) and set(data) == {"rng", "batches"} and count(data["batches"])
        ):
            fail("the data position must hold 'rng' and a count of 'batches'")
        _check_rng(data["rng"], fail)


def _number(value: Any) -> bool:
    """A number, or a one-element floating tensor (a running total kept on the device)."""
    if isinstance(value, torch.Tensor):
        return value.numel() == 1 and value.dtype.is_floating_point
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_rng(state: Any, fail: Any) -> None:
    """The generator states of :func:`rnnkit.training.rng.get_state`, sizes included."""
    if not (isinstance(state, dict) and {"torch", "numpy", "python"} <= set(state)):
        fail("the generator states must hold 'torch', 'numpy' and 'python'")
    reference = rng.get_state()
    own = state["torch"]
    if not (
        isinstance(own, torch.Tensor)
        and own.dtype == torch.uint8
        and own.shape == reference["torch"].shape
    ):
        fail("torch's generator state has the wrong type or size")
    numpy_state = state["numpy"]
    if not (
        isinstance(numpy_state, tuple)
        and len(numpy_state) == 5
        and numpy_state[0] == "MT19937"
        and isinstance(numpy_state[1], torch.Tensor)
        and numpy_state[1].shape == reference["numpy"][1].shape
        and isinstance(numpy_state[2], int)
        and 0 <= numpy_state[2] <= 624
    ):
        fail("numpy's generator state has the wrong layout")
    python = state["python"]
    if not (
        isinstance(python, tuple)
        and len(python) == 3
        and isinstance(python[1], tuple)
        and len(python[1]) == len(reference["python"][1])
        and all(isinstance(v, int) and 0 <= v <= 2**32 for v in python[1])
    ):
        fail("Python's generator state has the wrong layout")
    cuda = state.get("cuda")
    if cuda is not None and not (
        isinstance(cuda, list)
        and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in cuda)
    ):
        fail("the CUDA generator states have the wrong type")


def _optimizer_state(optimizer: Any) -> dict[str, Any]:
    if isinstance(optimizer, Optimizer):
        torch_state = optimizer.state_dict() if optimizer.built else None
        return {"torch": torch_state, "iterations": optimizer.iterations}
    return {"torch": optimizer.state_dict(), "iterations": None}


def _restore_optimizer(model: Any, state: dict[str, Any]) -> None:
    optimizer = model.optimizer
    if isinstance(optimizer, Optimizer):
        optimizer.iterations = state["iterations"]
        if state["torch"] is None:
            return
        if not optimizer.built:
            optimizer.build(model._trainable_parameters())
    optimizer.load_state_dict(state["torch"])
