"""BackupAndRestore: a run killed at any point (SIGKILL between saves, SIGTERM) and started
again ends with the same weights, bit for bit, as an uninterrupted run."""

from __future__ import annotations

import importlib.util
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.callbacks import BackupAndRestore, Callback
from rnnkit.saving.limits import DEFAULT_LIMITS
from rnnkit.saving.state_file import read_state

# Trains an LSTM with dropout on shuffled data, deterministically on the CPU: 3 epochs of 6
# batches, a backup every 4 batches. `python train.py BACKUP_DIR OUT STALL_AT` stops after
# the STALL_AT-th batch (1-based, over the run; 0: never) until a signal arrives.
SCRIPT = """
import random, sys, time
import numpy as np
import torch
import rnnkit
from rnnkit import layers


class Stall(rnnkit.callbacks.Callback):
    def __init__(self, stall_at, backup):
        super().__init__()
        self.stall_at, self.trained, self.backup = stall_at, 0, backup

    def on_train_batch_end(self, batch, logs=None):
        self.trained += 1
        if self.trained == self.stall_at:
            print("stalled", flush=True)
            # Until SIGKILL, or until BackupAndRestore's SIGTERM handler has run. (Not
            # signal.pause(): a SIGTERM arriving between the print and the pause would be
            # handled before the pause, which would then wait forever.)
            while not self.backup._stop_requested:
                time.sleep(0.01)


def main(backup_dir, stall_at=0):
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 5, 3)).astype("float32")
    y = x.sum(axis=(1, 2))[:, None].astype("float32")
    model = rnnkit.Sequential([
        layers.Input(shape=(5, 3)), layers.LSTM(8, dropout=0.2), layers.Dropout(0.3),
        layers.Dense(1),
    ])
    model.compile(rnnkit.optimizers.Adam(learning_rate=0.01), "mse")
    backup = rnnkit.callbacks.BackupAndRestore(backup_dir, save_freq=4)
    stall = Stall(stall_at, backup)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[stall, backup])
    print("trained", stall.trained, flush=True)
    return model, backup


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    model, backup = main(sys.argv[1], int(sys.argv[3]))
    if backup.interrupted:
        print("interrupted", flush=True)
        sys.exit(0)
    np.savez(sys.argv[2], *model.get_weights())
"""


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("script") / "train.py"
    path.write_text(SCRIPT)
    return path


@pytest.fixture(scope="module")
def reference(script: Path, tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """The weights of an uninterrupted run, trained in this process (same code, same
    deterministic settings as the subprocesses)."""
    spec = importlib.util.spec_from_file_location("backup_train_script", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    try:
        model, _ = module.main(str(tmp_path_factory.mktemp("reference") / "backup"))
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)
    return model.get_weights()


def _start(script: Path, tmp: Path, stall_at: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp / "backup"), str(tmp / "out.npz"), str(stall_at)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(proc: subprocess.Popen, expected: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        line = proc.stdout.readline() if ready else ""
        if line.strip() == expected:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    _, err = proc.communicate()
    pytest.fail(f"the training script did not print {expected!r}; stderr:\n{err}")


def _weights(tmp: Path) -> list[np.ndarray]:
    with np.load(tmp / "out.npz") as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def _backup(tmp: Path) -> dict:
    return read_state(str(tmp / "backup" / "backup.zip"), DEFAULT_LIMITS)


@pytest.fixture(scope="module")
def runs(script: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Two interrupted runs side by side (starting Python and torch takes most of the time),
    then each run started again to completion, side by side:

    - "sigkill": stopped after batch 7 (epoch 2, batch 1; last backup after batch 4), then
      SIGKILLed;
    - "sigterm": stopped after batch 9 (epoch 2, batch 3; backups after 4 and 8), then sent
      SIGTERM, which must make it back up after batch 9 and exit with status 0.
    """
    runs: dict[str, dict] = {}
    try:
        for name, stall_at in (("sigkill", 7), ("sigterm", 9)):
            tmp = tmp_path_factory.mktemp(name)
            runs[name] = {"tmp": tmp, "proc": _start(script, tmp, stall_at)}
        for name, sig in (("sigkill", signal.SIGKILL), ("sigterm", signal.SIGTERM)):
            run = runs[name]
            _wait_for_line(run["proc"], "stalled")
            run["proc"].send_signal(sig)
        for run in runs.values():
            out, err = run["proc"].communicate(timeout=120)
            run.update(returncode=run["proc"].returncode, out=out, err=err)
            run["backup"] = _backup(run["tmp"])
            run["rerun"] = _start(script, run["tmp"], 0)
        for run in runs.values():
            out, err = run["rerun"].communicate(timeout=120)
            assert run["rerun"].returncode == 0, err
            run.update(rerun_out=out, weights=_weights(run["tmp"]))
    finally:  # on any failure, leave no process running and no pipe open
        for run in runs.values():
            for key in ("proc", "rerun"):
                if key in run and run[key].poll() is None:
                    run[key].kill()
                    run[key].communicate()
    return runs


def _assert_bit_identical(weights: list[np.ndarray], reference: list[np.ndarray]) -> None:
    assert len(weights) == len(reference)
    for w, r in zip(weights, reference):
        assert w.dtype == r.dtype and np.array_equal(w, r)


def test_sigkill_between_backups_then_rerun_gives_bit_identical_weights(
    runs: dict[str, dict], reference: list[np.ndarray]
) -> None:
    run = runs["sigkill"]
    assert run["returncode"] == -signal.SIGKILL
    state = run["backup"]  # the backup after batch 4 (epoch 0, step 4), untouched by the kill
    assert (state["epoch"], state["step"], state["batches_seen"]) == (0, 4, 4)
    assert "trained 14" in run["rerun_out"]  # resumed at epoch 1, batch 5: 18 - 4 batches left
    _assert_bit_identical(run["weights"], reference)
    assert not (run["tmp"] / "backup").exists()  # delete_checkpoint=True after completion


def test_sigterm_saves_at_the_batch_boundary_exits_cleanly_and_resumes(
    runs: dict[str, dict], reference: list[np.ndarray]
) -> None:
    run = runs["sigterm"]
    assert run["returncode"] == 0, run["err"]
    assert run["out"].split() == ["trained", "9", "interrupted"]
    state = run["backup"]  # written on SIGTERM after batch 9: epoch 1 (0-based), step 3
    assert (state["epoch"], state["step"], state["batches_seen"]) == (1, 3, 9)
    assert "trained 9" in run["rerun_out"]
    _assert_bit_identical(run["weights"], reference)


# ------------------------------------------------------------------ in-process checks
class _Crashed(Exception):
    pass


class _Crash(Callback):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.seen = at, 0

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.seen += 1
        if self.seen == self.at:
            raise _Crashed


def _small_model() -> rnnkit.Model:
    torch.manual_seed(1)
    model = rnnkit.Sequential(
        [rnnkit.layers.Input(shape=(4,)), rnnkit.layers.Dropout(0.5), rnnkit.layers.Dense(1)]
    )
    model.compile(rnnkit.optimizers.SGD(learning_rate=0.1, momentum=0.9), "mse", metrics=["mae"])
    return model


def _small_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize(
    ("save_freq", "steps_per_epoch", "loader", "left"),
    [
        ("epoch", None, False, 8),  # 16 batches; backups after 4 and 8
        (3, None, False, 7),  # backups after 3, 6 and 9
        # steps_per_epoch=3 over passes of 4 batches: epochs of 3, 1, 3, 1, 3 batches
        ("epoch", 3, False, 3),  # 11 batches; backups after 3, 4, 7 and 8
        (2, 3, False, 1),  # the last backup after batch 10, just before the crash
        (3, None, True, 7),
    ],
    ids=["epoch", "every-3", "epoch-steps3", "every-2-steps3", "every-3-dataloader"],
)
def test_resume_in_process_after_an_exception(
    tmp_path: Path, save_freq, steps_per_epoch: int | None, loader: bool, left: int
) -> None:
    """Crash after the 10th batch (shuffled, with dropout), fit again: the same weights, after
    training only the `left` batches after the last backup. With steps_per_epoch=3 the passes
    over the 4 batches run across epochs; a DataLoader shuffles with its own sampler, seeded
    from torch's generator."""
    x, y = _small_data()
    data = {"x": x, "y": y, "batch_size": 6}
    if loader:
        dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        data = {"x": torch.utils.data.DataLoader(dataset, batch_size=6, shuffle=True)}
    epochs = 4 if steps_per_epoch is None else 5
    fit = {"epochs": epochs, "steps_per_epoch": steps_per_epoch, "verbose": 0, **data}
    expected = _small_model()
    full = expected.fit(**fit)
    model = _small_model()
    backup = BackupAndRestore(tmp_path / "b", save_freq=save_freq)
    with pytest.raises(_Crashed):
        model.fit(**fit, callbacks=[backup, _Crash(10)])
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler was released
    assert os.path.exists(backup.backup_path)
    model = _small_model()
    counter = _Crash(10**9)
    resumed = model.fit(**fit, callbacks=[backup, counter])
    assert counter.seen == left
    _assert_bit_identical(model.get_weights(), expected.get_weights())
    assert resumed.epoch == list(range(epochs - len(resumed.epoch), epochs))
    # the running loss of a resumed epoch includes its batches before the backup
    assert resumed.history["loss"] == full.history["loss"][-len(resumed.epoch) :]
    assert not (tmp_path / "b").exists()


def test_double_checkpoint_falls_back_to_the_previous_backup(tmp_path: Path) -> None:
    x, y = _small_data()
    backup = BackupAndRestore(tmp_path / "b", save_freq=2, double_checkpoint=True)
    with pytest.raises(_Crashed):
        _small_model().fit(x, y, batch_size=6, epochs=4, verbose=0, callbacks=[backup, _Crash(5)])
    Path(backup.backup_path).write_bytes(b"truncated")
    model = _small_model()
    stall = _Crash(10**9)
    model.fit(x, y, batch_size=6, epochs=4, verbose=0, callbacks=[backup, stall])
    assert stall.seen == 16 - 2  # resumed from the backup after batch 2

    assert not (tmp_path / "b").exists()
    (tmp_path / "b").mkdir()
    Path(backup.backup_path).write_bytes(b"truncated")
    with pytest.raises(ValueError, match="cannot read the backup"):
        _small_model().fit(x, y, verbose=0, callbacks=[BackupAndRestore(tmp_path / "b")])


def test_arguments_are_validated() -> None:
    with pytest.raises(ValueError, match="save_freq must be"):
        BackupAndRestore("b", save_freq="batch")
    with pytest.raises(ValueError, match="save_freq must be"):
        BackupAndRestore("b", save_freq=0)
    with pytest.raises(ValueError, match="backup_dir must be a non-empty path"):
        BackupAndRestore("")
