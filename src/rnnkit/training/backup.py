"""``BackupAndRestore``: resume an interrupted ``fit`` exactly where its last backup left it."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import zipfile
from types import FrameType
from typing import Any

import torch

from rnnkit import distributed
from rnnkit.saving.files import atomic_write
from rnnkit.training import rng
from rnnkit.training.callbacks import Callback
from rnnkit.training.metrics import Mean
from rnnkit.training.optimizers import Optimizer

_FORMAT = "rnnkit.BackupAndRestore/1"


class BackupAndRestore(Callback):
    """Back up the training state during ``fit`` and resume from it when ``fit`` runs again.

    Each backup is one file, ``backup_dir/backup.pt``, written atomically (a temporary file in
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
        double_checkpoint: keep the previous backup as ``backup.pt.bkp`` and resume from it
            when the latest cannot be read.
        delete_checkpoint: delete the backup when ``fit`` completes (not when it was
            interrupted by SIGTERM or raised).

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
        self.interrupted = False
        self._every = save_freq if every else None
        self._stop_requested = False
        self._handler_installed = False
        self._previous_handler: Any = None
        self._epoch = 0
        self._batches_seen = 0

    @property
    def backup_path(self) -> str:
        """The backup file, ``backup_dir/backup.pt``."""
        return os.path.join(self.backup_dir, "backup.pt")

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
            "data": model._train_iterator.state(),
        }
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint and os.path.exists(self.backup_path):
            os.replace(self.backup_path, self.backup_path + ".bkp")
        atomic_write(self.backup_path, lambda f: torch.save(state, f))

    def _load(self) -> dict[str, Any] | None:
        paths = [self.backup_path] + ([self.backup_path + ".bkp"] if self.double_checkpoint else [])
        errors = []
        for path in paths:
            if not os.path.exists(path):
                continue
            if not zipfile.is_zipfile(path):  # torch.save writes zip archives
                errors.append(f"{path!r} is not a torch.save archive (truncated?)")
                continue
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
                errors.append(f"{path!r}: {e}")
                continue
            if not isinstance(state, dict) or state.get("format") != _FORMAT:
                raise ValueError(
                    f"BackupAndRestore: {path!r} is not a backup written by this callback; "
                    "use a backup_dir of its own"
                )
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
                f"{saved}, this model has {shapes}; resume with the same model"
            )
        model.load_state_dict(dict(zip(current.keys(), state["model"])))
        _restore_optimizer(model, state["optimizer"])
        if not distributed.is_active():  # rank 0's running mean is not the global one
            tracker: Mean = model._loss_tracker
            tracker._total, tracker._count = state["loss_tracker"]
        model._train_iterator.restore(state["data"])
        rng.set_state(state["rng"])
        model._initial_epoch, model._initial_step = state["epoch"], state["step"]
        self._epoch, self._batches_seen = state["epoch"], state["batches_seen"]


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
