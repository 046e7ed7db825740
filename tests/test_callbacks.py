"""Callbacks: EarlyStopping, TerminateOnNaN, CSVLogger, ReduceLROnPlateau, ModelCheckpoint,
LambdaCallback, History and the progress output (verbose 0/1/2)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import Layer
from rnnkit.training import Trainer
from rnnkit.training.callbacks import (
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    ModelCheckpoint,
    ReduceLROnPlateau,
    TerminateOnNaN,
)


class Lin(Layer):
    def __init__(self, units, **kwargs):
        self.units = units
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")

    def call(self, x):
        return x @ self.kernel


class Net(Trainer, Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.d = Lin(2)

    def call(self, x):
        return self.d(x)


def _model(lr=0.05):
    model = Net()
    model.compile(rnnkit.optimizers.SGD(learning_rate=lr), "mse", metrics=["mae"])
    return model


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3)).astype("float32")
    return x, x @ rng.standard_normal((3, 2)).astype("float32")


def test_early_stopping_stops_and_restores_best_weights():
    x, y = _data()
    model = _model(lr=0.0)  # nothing improves: stops after `patience` more epochs
    stopper = EarlyStopping(monitor="loss", patience=2, min_delta=1e-4)
    history = model.fit(x, y, epochs=20, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) == 3
    assert stopper.stopped_epoch == 2

    model = _model(lr=0.05)
    history = model.fit(
        x, y, epochs=30, verbose=0, validation_data=(x, y), callbacks=[EarlyStopping(patience=1)]
    )
    assert len(history.history["loss"]) == 30  # keeps improving: no early stop

    # Diverging training (lr too large): the best weights are those of the first epoch.
    model = _model(lr=3.0)
    snapshots = []
    keep = LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(model.get_weights()))
    stopper = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(
        x, y, epochs=20, batch_size=32, verbose=0, validation_data=(x, y), callbacks=[keep, stopper]
    )
    best = int(np.argmin(history.history["val_loss"]))
    assert len(history.history["loss"]) == best + 3
    np.testing.assert_array_equal(model.get_weights()[0], snapshots[best][0])


def test_early_stopping_baseline_and_mode():
    x, y = _data()
    model = _model(lr=0.0)
    stopper = EarlyStopping(monitor="loss", baseline=-1.0, patience=2, min_delta=1e-4)
    history = model.fit(x, y, epochs=10, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) == 2  # the first epoch does not beat the baseline
    stopper = EarlyStopping(monitor="mae", mode="max", patience=1, min_delta=1e-4)
    history = _model(lr=0.05).fit(x, y, epochs=10, verbose=0, callbacks=[stopper])
    assert len(history.history["loss"]) == 2  # mae falls: in "max" mode that is no progress
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="maximum")
    with pytest.warns(UserWarning, match="'val_loss' is not in the logs"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[EarlyStopping()])


def test_terminate_on_nan_stops_at_the_first_bad_batch(capsys):
    x, y = _data()
    y = y.copy()
    y[0] = np.nan
    model = Net()  # nan_policy="ignore": train on NaN as Keras does, so TerminateOnNaN acts
    model.compile(rnnkit.optimizers.SGD(learning_rate=0.05), "mse", nan_policy="ignore")
    seen = []
    history = model.fit(
        x,
        y,
        epochs=5,
        batch_size=8,
        shuffle=False,
        verbose=0,
        callbacks=[
            TerminateOnNaN(),
            LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch)),
        ],
    )
    assert seen == [0]
    assert len(history.history["loss"]) == 1 and np.isnan(history.history["loss"][0])
    assert "Invalid loss" in capsys.readouterr().out


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    model = _model()
    history = model.fit(
        x, y, epochs=3, verbose=0, validation_split=0.25, callbacks=[CSVLogger(path)]
    )
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    np.testing.assert_allclose([float(r["val_loss"]) for r in rows], history.history["val_loss"])
    model.fit(x, y, epochs=2, verbose=0, callbacks=[CSVLogger(path, append=True)])
    with open(path) as f:
        assert len(f.read().strip().splitlines()) == 1 + 3 + 2


def test_reduce_lr_on_plateau():
    x, y = _data()
    model = _model(lr=0.0)  # a plateau from the start
    history = model.fit(
        x,
        y,
        epochs=6,
        verbose=0,
        callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2, min_lr=0.0)],
    )
    assert history.history["learning_rate"] == [0.0] * 6

    model = _model(lr=0.01)
    model.compile(rnnkit.optimizers.SGD(learning_rate=1e-7), "mse")  # too small to improve
    history = model.fit(
        x,
        y,
        epochs=5,
        verbose=0,
        callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=1.0)],
    )
    # The logged rate is the one the epoch trained with (Keras logs it before reducing).
    np.testing.assert_allclose(
        history.history["learning_rate"], [1e-7, 1e-7, 5e-8, 2.5e-8, 1.25e-8]
    )
    assert model.optimizer.torch_optimizer.param_groups[0]["lr"] == pytest.approx(6.25e-9)


def test_model_checkpoint_saves_weights(tmp_path):
    x, y = _data()
    model = _model()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{loss:.3f}.pt")
    history = model.fit(
        x, y, epochs=2, verbose=0, callbacks=[ModelCheckpoint(pattern, save_weights_only=True)]
    )
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"ckpt-{e + 1:02d}-{history.history['loss'][e]:.3f}.pt" for e in range(2)]
    restored = Net()
    restored(x[:1])
    restored.load_state_dict(torch.load(tmp_path / files[-1]))
    np.testing.assert_array_equal(restored.get_weights()[0], model.get_weights()[0])

    best = tmp_path / "best.pt"
    model = _model(lr=3.0)  # diverges: only the first epoch is saved
    checkpoint = ModelCheckpoint(best, monitor="loss", save_best_only=True, save_weights_only=True)
    saved = []
    spy = LambdaCallback(on_epoch_end=lambda e, logs: saved.append(best.stat().st_mtime_ns))
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[checkpoint, spy])
    assert len(set(saved)) == 1
    plain = Net()
    plain.compile("sgd", "mse")
    with pytest.raises(ValueError, match="save_weights_only=True"):
        plain.fit(x, y, verbose=0, callbacks=[ModelCheckpoint(best)])


def test_lambda_callback_hooks_and_history():
    x, y = _data()
    events = []
    cb = LambdaCallback(
        on_train_begin=lambda logs: events.append("train_begin"),
        on_epoch_begin=lambda epoch, logs: events.append(f"epoch_begin {epoch}"),
        on_batch_end=lambda batch, logs: events.append(f"batch {batch}"),
        on_epoch_end=lambda epoch, logs: events.append(f"epoch_end {epoch} {sorted(logs)}"),
        on_train_end=lambda logs: events.append("train_end"),
    )
    model = _model()
    history = model.fit(x, y, epochs=2, batch_size=16, initial_epoch=0, verbose=0, callbacks=[cb])
    assert events == [
        "train_begin",
        "epoch_begin 0",
        "batch 0",
        "batch 1",
        "epoch_end 0 ['loss', 'mae']",
        "epoch_begin 1",
        "batch 0",
        "batch 1",
        "epoch_end 1 ['loss', 'mae']",
        "train_end",
    ]
    assert history.epoch == [0, 1] and model.history is history
    history = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0)
    assert history.epoch == [1, 2]
    with pytest.raises(ValueError, match="unknown hook 'on_epoch_ends'"):
        LambdaCallback(on_epoch_ends=print)


def test_progress_output(capsys):
    x, y = _data()
    model = _model()
    model.fit(x, y, epochs=2, batch_size=8, verbose=2, validation_split=0.25)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "Epoch 1/2" and lines[2] == "Epoch 2/2" and len(lines) == 4
    assert lines[1].startswith("3/3 - ") and "step - loss: " in lines[1]
    assert lines[1].split(" - ")[3:] == [
        f"{k}: {v[0]:.4f}" for k, v in model.history.history.items()
    ]

    model.fit(x, y, epochs=1, batch_size=8, verbose=1)
    out = capsys.readouterr().out
    assert out.startswith("Epoch 1/1") and "4/4" in out and "━" in out and "loss:" in out

    model.fit(x, y, epochs=1, verbose=0)
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    model.evaluate(x, y, verbose=2)
    assert capsys.readouterr().out.startswith("1/1 - ")


def test_verbose_auto_follows_the_terminal(monkeypatch, capsys):
    from rnnkit.training.progress import resolve_verbose

    assert resolve_verbose("auto") == 2  # pytest captures stdout: not a terminal
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert resolve_verbose("auto") == 1
    monkeypatch.undo()
    x, y = _data()
    _model().fit(x, y, epochs=1, batch_size=16)  # verbose="auto": one line per epoch
    assert capsys.readouterr().out.splitlines()[1].startswith("2/2 - ")
