"""The training step reads nothing back from the device (issue: zero framework overhead).

A read-back is any call that copies a tensor's value to the host: ``Tensor.item``,
``__bool__``, ``__float__``, ``__int__``, ``tolist`` and ``.cpu()``. On a GPU each one waits
for every queued kernel. (``.numpy()`` is not one: it refuses tensors that are not already
on the host; rnnkit uses it to check host data before it moves to the device.) The tests count them (on the CPU, where the same
calls are made) during ``train_on_batch``, a ``fit`` epoch and ``evaluate``; the nan policy's
step guard (rnnkit.training.step_guard) keeps non-finite steps away from the weights without
them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import layers
from rnnkit.training import progress

READ_BACKS = ("item", "__bool__", "__float__", "__int__", "tolist", "cpu")


@contextlib.contextmanager
def count_read_backs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    """Count the read-back calls made on tensors inside the block."""
    counts: Counter = Counter()
    with monkeypatch.context() as patch:
        for name in READ_BACKS:
            original = getattr(torch.Tensor, name)

            def counted(self, *args, __name=name, __original=original, **kwargs):
                if not _inside[0]:
                    counts[__name] += 1
                _inside[0] += 1
                try:
                    return __original(self, *args, **kwargs)
                finally:
                    _inside[0] -= 1

            patch.setattr(torch.Tensor, name, counted)
        yield counts


_inside = [0]  # a read-back calling another counts once


def _guide_model(optimizer: object = "sgd") -> rnnkit.Model:
    """The guide's MNIST model (LSTM, BatchNormalization, Dense) with accuracy."""
    model = rnnkit.Sequential(
        [
            layers.Input((None, 28)),
            layers.LSTM(16),
            layers.BatchNormalization(),
            layers.Dense(10),
        ]
    )
    model.compile(
        loss=rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer=optimizer,
        metrics=["accuracy"],
    )
    return model


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 7, 28)).astype("float32"), rng.integers(0, 10, n)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_train_on_batch_reads_back_once(monkeypatch, optimizer):
    x, y = _data(16)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model = _guide_model(optimizer)
    model.train_on_batch(xt, yt)  # the first step creates the metrics and optimizer slots
    with count_read_backs(monkeypatch) as counts:
        loss, accuracy = model.train_on_batch(xt, yt)
    assert counts == Counter(tolist=1), counts  # the returned logs, nan flags included
    assert np.isfinite(loss) and 0.0 <= accuracy <= 1.0
    with count_read_backs(monkeypatch) as counts:
        logs = model.train_on_batch(x, y, return_dict=True)  # numpy in: checked on the host
    assert counts == Counter(tolist=1), counts
    assert set(logs) == {"loss", "accuracy"}


def test_a_fit_epoch_reads_back_once_without_a_progress_bar(monkeypatch):
    x, y = _data(160)
    model = _guide_model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    with count_read_backs(monkeypatch) as counts:
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0)  # 10 batches an epoch
    assert counts == Counter(tolist=2), counts  # one per epoch: its logs
    assert len(history.history["loss"]) == 2


def test_the_progress_bar_reads_back_once_per_redraw(monkeypatch, capsys):
    x, y = _data(160)
    model = _guide_model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 3600.0)  # only the first and last redraw
    with count_read_backs(monkeypatch) as counts:
        model.fit(x, y, batch_size=16, epochs=1, verbose=1)
    assert counts == Counter(tolist=2), counts  # the bar's first redraw, then the epoch's logs
    monkeypatch.setattr(progress, "REFRESH_SECONDS", 0.0)  # a redraw every batch
    with count_read_backs(monkeypatch) as counts:
        model.fit(x, y, batch_size=16, epochs=1, verbose=1)
    assert counts == Counter(tolist=10), counts  # ten redraws; the epoch end reuses the last
    assert "10/10" in capsys.readouterr().out


def test_evaluate_and_validation_read_back_once(monkeypatch):
    x, y = _data(160)
    model = _guide_model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    with count_read_backs(monkeypatch) as counts:
        model.evaluate(x, y, batch_size=16, verbose=0)
    assert counts == Counter(tolist=1), counts
    with count_read_backs(monkeypatch) as counts:
        model.fit(x, y, batch_size=16, epochs=1, verbose=0, validation_data=(x, y))
    assert counts == Counter(tolist=2), counts  # the epoch's logs and the validation logs


def test_a_callback_that_reads_the_batch_logs_reads_them_back():
    x, y = _data(64)
    model = _guide_model()
    seen = []
    reader = rnnkit.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: seen.append(logs["loss"])
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[reader])
    assert len(seen) == 4 and all(isinstance(v, float) for v in seen)


# ----------------------------------------------------------------- the device-side nan guard
def _regression(optimizer: object = "adam", nan_policy: str = "raise") -> rnnkit.Model:
    model = rnnkit.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer, "mse", metrics=["mae"], nan_policy=nan_policy)
    return model


def _batches() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((48, 3)).astype("float32")
    return x, x @ rng.standard_normal((3, 2)).astype("float32")


@pytest.mark.parametrize("optimizer", ["adam", "nadam", "sgd"])
def test_a_bad_step_and_the_steps_after_it_are_undone_on_the_device(optimizer):
    """Batch 3 of 6 has an infinite loss; the host sees it at the end of the epoch, after
    batches 4-6 ran: the weights, the optimizer's slots and count are those after batch 2."""
    x, y = _batches()
    y[20] = 1e30  # batch 3 (batches of 8, in order): its squared error overflows
    model = _regression(optimizer)
    twin = _regression(optimizer)
    twin.set_weights(model.get_weights())
    with pytest.raises(
        FloatingPointError,
        match=r"fit \(epoch 1/2, batch 3/6\): the loss is inf; the weights were not updated "
        r"by this batch nor by the 3 batch\(es\) run after it",
    ):
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    twin.fit(x[:16], y[:16], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights()))
    assert model.optimizer.iterations == twin.optimizer.iterations == 2
    ours = model.optimizer.torch_optimizer.state_dict()["state"]
    theirs = twin.optimizer.torch_optimizer.state_dict()["state"]
    for index in theirs:
        for name, value in theirs[index].items():
            assert torch.equal(ours[index][name], value), (index, name)
    # the guard forgets the bad step once reported: training goes on from there
    model.fit(x[24:], y[24:], batch_size=8, epochs=1, shuffle=False, verbose=0)
    twin.fit(x[24:], y[24:], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert all(np.allclose(a, b) for a, b in zip(model.get_weights(), twin.get_weights()))


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_the_logs_leave_a_bad_step_and_the_steps_after_it_out(optimizer):
    """The metrics count a bad step until the host sees it; then they go back to their states
    before it: the epoch's logs are those of the good batches, and batch logs a callback kept
    from before the bad step keep their values."""
    x, y = _batches()
    y[20] = 1e30  # batch 3 of 6
    model = _regression(optimizer, nan_policy="warn")
    twin, third = _regression(optimizer), _regression(optimizer)
    twin.set_weights(model.get_weights())
    third.set_weights(model.get_weights())
    kept = {}
    keeper = rnnkit.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: kept.setdefault(batch, logs)  # read later
    )
    with pytest.warns(RuntimeWarning, match=r"batch 3/6\): the loss is inf.*training stops"):
        history = model.fit(
            x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[keeper]
        )
    expected = twin.fit(x[:16], y[:16], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert history.history.keys() == expected.history.keys()
    for name, values in expected.history.items():
        assert history.history[name] == pytest.approx(values, rel=1e-6), name
    assert np.isfinite(kept[5]["loss"]) and kept[5]["loss"] == history.history["loss"][0]
    first = third.fit(x[:8], y[:8], batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert kept[0]["loss"] == pytest.approx(first.history["loss"][0], rel=1e-6)


def test_the_guard_with_a_torch_optimizer_and_the_warn_policy():
    x, y = _batches()
    y[36] = np.float32(1e30)  # batch 5 of 6
    model = rnnkit.Sequential([layers.Input((3,)), layers.Dense(2)])
    model.build((None, 3))
    model.compile(torch.optim.Adam(model.parameters(), lr=0.01), "mse", nan_policy="warn")
    with pytest.warns(RuntimeWarning, match=r"batch 5/6\): the loss is inf.*training stops"):
        history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0)
    assert len(history.history["loss"]) == 1 and np.isfinite(history.history["loss"][0])
    state = model.optimizer.state_dict()["state"]
    assert all(float(s["step"]) == 4 for s in state.values())  # batches 1-4
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_train_on_batch_reports_a_bad_loss_and_keeps_the_weights():
    x, y = _batches()
    model = _regression("sgd")
    model.train_on_batch(x[:8], y[:8])
    before = model.get_weights()
    y[:8] = 1e30
    with pytest.raises(FloatingPointError, match=r"train_on_batch: the loss is inf"):
        model.train_on_batch(x[:8], y[:8])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    assert model.optimizer.iterations == 1


@pytest.mark.parametrize(
    "optimizer, constraint, skips",
    [
        ("sgd", None, True),  # torch's fused SGD kernel skips itself on the device
        (rnnkit.optimizers.SGD(momentum=0.9), None, False),
        (rnnkit.optimizers.SGD(weight_decay=0.1), None, False),
        (rnnkit.optimizers.SGD(use_ema=True), None, False),
        ("sgd", "non_neg", False),  # a constraint would project a skipped step's weights
    ],
)
def test_a_plain_sgd_step_skips_itself_and_the_others_are_restored(optimizer, constraint, skips):
    x, y = _batches()
    model = rnnkit.Sequential([layers.Input((3,)), layers.Dense(2, kernel_constraint=constraint)])
    model.compile(optimizer, "mse", metrics=["mae"])
    model.train_on_batch(x[:8], y[:8])
    before = model.get_weights()
    slots = [t.clone() for t in model.optimizer.torch_optimizer.state_tensors(model.weights)]
    y[:8] = 1e30
    with pytest.raises(FloatingPointError, match=r"train_on_batch: the loss is inf"):
        model.train_on_batch(x[:8], y[:8])
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))
    after = model.optimizer.torch_optimizer.state_tensors(model.weights)
    assert all(torch.equal(a, b) for a, b in zip(after, slots))
    assert model._optimizer_skips_on_device() is skips
    assert (model._guard._buffers == []) is skips  # no backup of the weights when it skips
    model.train_on_batch(x[8:16], y[8:16])  # and training goes on
    assert not all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before))


def test_the_skipping_sgd_step_follows_the_weights_layout():
    """A gradient laid out unlike its weight (here row-major for a column-major weight) is
    applied element by element as ``w -= lr * g``, and not at all when the flag is set."""
    from rnnkit.training.optimizers.rules import SGDRule

    w = torch.nn.Parameter(torch.randn(5, 3).t())  # (3, 5), column-major
    start = w.detach().clone()
    rule = SGDRule([w], lr=0.5)
    w.grad = torch.randn(3, 5)
    assert rule.can_skip_on_device()
    rule.step(skip_if=torch.ones(()))
    assert torch.equal(w.detach(), start)
    rule.step(skip_if=torch.zeros(()))
    torch.testing.assert_close(w.detach(), start - 0.5 * w.grad)
    w.grad = w.grad.to_sparse()  # the fused kernel takes dense gradients only
    assert not rule.can_skip_on_device()


def test_skip_if_is_refused_by_a_rule_that_cannot_skip():
    from rnnkit.training.optimizers.rules import AdamRule

    w = torch.nn.Parameter(torch.ones(2))
    w.grad = torch.ones(2)
    with pytest.raises(ValueError, match=r"AdamRule.step: skip_if needs an update that can"):
        AdamRule([w], lr=0.1).step(skip_if=torch.zeros(()))
