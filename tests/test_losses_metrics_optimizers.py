"""Losses and metrics equal Keras 3's on the same inputs; optimizers follow Keras' update rules
and defaults."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.utils._python_dispatch

import rnnkit
from rnnkit.training import losses, metrics, optimizers

RNG = np.random.default_rng(0)
REG_TRUE = RNG.standard_normal((6, 5)).astype("float32")
REG_PRED = (REG_TRUE + 1.5 * RNG.standard_normal((6, 5))).astype("float32")
SEQ_TRUE = RNG.standard_normal((4, 3, 2)).astype("float32")
SEQ_PRED = RNG.standard_normal((4, 3, 2)).astype("float32")
LOGITS = RNG.standard_normal((6, 4)).astype("float32")
PROBS = (np.exp(LOGITS) / np.exp(LOGITS).sum(-1, keepdims=True)).astype("float32")
LABELS = RNG.integers(0, 4, 6)
ONE_HOT = np.eye(4, dtype="float32")[LABELS]
BIN_TRUE = RNG.integers(0, 2, (6, 3)).astype("float32")
BIN_LOGITS = RNG.standard_normal((6, 3)).astype("float32")
BIN_PROBS = (1 / (1 + np.exp(-BIN_LOGITS))).astype("float32")
WEIGHTS = RNG.random(6).astype("float32")

LOSS_CASES = [
    ("MeanSquaredError", {}, REG_TRUE, REG_PRED),
    ("MeanSquaredError", {}, SEQ_TRUE, SEQ_PRED),
    ("MeanAbsoluteError", {}, REG_TRUE, REG_PRED),
    ("Huber", {}, REG_TRUE, REG_PRED),
    ("Huber", {"delta": 0.3}, REG_TRUE, REG_PRED),
    ("BinaryCrossentropy", {}, BIN_TRUE, BIN_PROBS),
    ("BinaryCrossentropy", {"from_logits": True}, BIN_TRUE, BIN_LOGITS),
    ("BinaryCrossentropy", {"label_smoothing": 0.2}, BIN_TRUE, BIN_PROBS),
    # labels (n,) for one sigmoid output (n, 1), as keras-io's IMDB programs fit them
    ("BinaryCrossentropy", {}, BIN_TRUE[:, 0], BIN_PROBS[:, :1]),
    ("BinaryCrossentropy", {"from_logits": True}, BIN_TRUE[:, :1], BIN_LOGITS[:, 0]),
    ("CategoricalCrossentropy", {}, ONE_HOT, PROBS),
    ("CategoricalCrossentropy", {"from_logits": True}, ONE_HOT, LOGITS),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1, "from_logits": True}, ONE_HOT, LOGITS),
    ("SparseCategoricalCrossentropy", {}, LABELS, PROBS),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, LABELS, LOGITS),
    ("SparseCategoricalCrossentropy", {"from_logits": True}, LABELS[:, None], LOGITS),
]


@pytest.mark.parametrize("name, kwargs, y_true, y_pred", LOSS_CASES)
def test_losses_equal_keras(name, kwargs, y_true, y_pred):
    import keras

    ours = getattr(losses, name)(**kwargs)
    theirs = getattr(keras.losses, name)(**kwargs)
    expected = float(theirs(y_true, y_pred))
    assert ours(y_true, y_pred).item() == pytest.approx(expected, rel=1e-5, abs=1e-6)
    n = y_true.shape[0]
    sw = WEIGHTS[:n]
    if y_true.ndim > 2:
        # Keras 3 fails to broadcast (batch,) weights over (batch, steps) values; rnnkit
        # weights every step of a sample by the sample's weight.
        values = np.asarray(getattr(keras.losses, name)(reduction=None, **kwargs)(y_true, y_pred))
        expected_sw = float((values * sw[:, None]).sum() / values.size)
    else:
        expected_sw = float(theirs(y_true, y_pred, sample_weight=sw))
    assert ours(y_true, y_pred, sample_weight=sw).item() == pytest.approx(
        expected_sw, rel=1e-5, abs=1e-6
    )
    for reduction in ("sum", None):
        ours_r = getattr(losses, name)(reduction=reduction, **kwargs)(y_true, y_pred)
        theirs_r = getattr(keras.losses, name)(reduction=reduction, **kwargs)(y_true, y_pred)
        np.testing.assert_allclose(ours_r.numpy(), np.asarray(theirs_r), rtol=1e-5, atol=1e-6)


def test_loss_with_mask_equals_keras():
    import keras

    pred = torch.as_tensor(SEQ_PRED)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=torch.bool)
    pred._keras_mask = mask
    keras_pred = torch.as_tensor(SEQ_PRED)
    keras_pred._keras_mask = mask  # Keras' torch backend reads the same attribute
    expected = float(keras.losses.MeanSquaredError()(SEQ_TRUE, keras_pred))
    ours = losses.MeanSquaredError()(SEQ_TRUE, pred).item()
    assert ours == pytest.approx(expected, rel=1e-5)
    # Hand-written: the mean over the valid time steps only.
    per_step = ((SEQ_TRUE - SEQ_PRED) ** 2).mean(-1)
    assert ours == pytest.approx(float(per_step[mask.numpy()].mean()), rel=1e-5)


def test_loss_names_and_gradients():
    assert losses.get("mse").name == "mse"
    assert isinstance(losses.get("Huber"), losses.Huber)
    assert losses.get("sparse_categorical_crossentropy")(LABELS, PROBS).item() == pytest.approx(
        losses.SparseCategoricalCrossentropy()(LABELS, PROBS).item()
    )
    torch_loss = losses.get(torch.nn.MSELoss())
    assert torch_loss(REG_TRUE, torch.as_tensor(REG_PRED)).item() == pytest.approx(
        float(np.mean((REG_TRUE - REG_PRED) ** 2)), rel=1e-6
    )
    # torch loss modules are called as loss(y_pred, y_true), their own argument order.
    torch_ce = losses.get(torch.nn.CrossEntropyLoss())
    assert torch_ce(LABELS, torch.as_tensor(LOGITS)).item() == pytest.approx(
        losses.SparseCategoricalCrossentropy(from_logits=True)(LABELS, LOGITS).item(), rel=1e-6
    )
    with pytest.raises(ValueError, match="one scalar for the batch, so sample_weight"):
        torch_ce(LABELS, torch.as_tensor(LOGITS), sample_weight=WEIGHTS)
    logits = torch.tensor(LOGITS, requires_grad=True)
    losses.SparseCategoricalCrossentropy(from_logits=True)(LABELS, logits).backward()
    expected = (PROBS - ONE_HOT) / 6  # d(mean CE)/d logits
    np.testing.assert_allclose(logits.grad.numpy(), expected, atol=1e-6)
    with pytest.raises(ValueError, match="unknown loss 'hubber'"):
        losses.get("hubber")
    with pytest.raises(ValueError, match="reduction"):
        losses.MeanSquaredError(reduction="avg")
    with pytest.raises(ValueError, match="y_true.shape=.*y_pred.shape"):
        losses.CategoricalCrossentropy()(LABELS, PROBS)


@pytest.mark.parametrize(
    "kwargs, y_true, reduction",
    [
        ({"from_logits": True}, LABELS, "sum_over_batch_size"),  # the fused nll_loss mean
        ({"from_logits": True}, LABELS[:, None], "mean"),  # labels with a trailing 1: fused too
        ({"from_logits": True, "ignore_class": 1}, LABELS, "sum_over_batch_size"),
        ({}, LABELS, "sum_over_batch_size"),  # probabilities: per-sample values, then the mean
    ],
)
def test_sparse_crossentropy_batch_mean_equals_the_reduced_values(kwargs, y_true, reduction):
    """The fused batch mean (Loss._batch_mean: torch's nll_loss takes the mean) gives the value
    and gradient of the per-sample values reduced by reduce_weighted_values; calls it does not
    cover (ignore_class, probabilities, weights, masks) take the general path."""
    scores = LOGITS if kwargs.get("from_logits") else PROBS
    loss = losses.SparseCategoricalCrossentropy(reduction=reduction, **kwargs)
    fused = torch.tensor(scores, requires_grad=True)
    general = torch.tensor(scores, requires_grad=True)
    value = loss(y_true, fused)
    expected = losses.reduce_weighted_values(loss.call(y_true, general), reduction=reduction)
    (value * 3).backward()
    (expected * 3).backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    np.testing.assert_allclose(fused.grad.numpy(), general.grad.numpy(), rtol=1e-6, atol=1e-7)
    fast = losses._sparse_categorical_crossentropy_mean(y_true, scores, **kwargs)
    assert (fast is not None) == (kwargs == {"from_logits": True})
    with pytest.raises(ValueError, match="y_true holds the label 7"):
        loss(np.array([0, 7, 1, 2, 0, 1]), fused)
    with pytest.raises(ValueError, match="y_true holds the label -1"):  # one check, both ends
        loss(np.array([0, 1, 1, -1, 0, 1], dtype="int32"), fused)

    class Halved(losses.SparseCategoricalCrossentropy):  # its own call: no fused mean
        def call(self, y_true, y_pred):
            return super().call(y_true, y_pred) / 2

    halved = Halved(reduction=reduction, **kwargs)(y_true, fused.detach())
    assert halved.item() == pytest.approx(expected.item() / 2, rel=1e-6)
    weighted = loss(y_true, fused.detach(), sample_weight=WEIGHTS)
    per_sample = loss.call(y_true, fused.detach())
    assert weighted.item() == pytest.approx(
        losses.reduce_weighted_values(per_sample, WEIGHTS, reduction=reduction).item(), rel=1e-6
    )


# ------------------------------------------------------------------------------ metrics
METRIC_CASES = [
    ("BinaryAccuracy", BIN_TRUE, BIN_PROBS),
    ("CategoricalAccuracy", ONE_HOT, PROBS),
    ("SparseCategoricalAccuracy", LABELS, LOGITS),
    ("SparseCategoricalAccuracy", LABELS[:, None], LOGITS),
    ("MeanSquaredError", REG_TRUE, REG_PRED),
    ("MeanAbsoluteError", REG_TRUE, REG_PRED),
    ("RootMeanSquaredError", REG_TRUE, REG_PRED),
    ("MeanAbsoluteError", SEQ_TRUE, SEQ_PRED),
]


@pytest.mark.parametrize("name, y_true, y_pred", METRIC_CASES)
def test_metrics_equal_keras_over_batches(name, y_true, y_pred):
    import keras

    ours, theirs = getattr(metrics, name)(), getattr(keras.metrics, name)()
    n = y_true.shape[0]
    for sl, sw in ((slice(0, 2), None), (slice(2, n), WEIGHTS[2:n])):
        ours.update_state(y_true[sl], y_pred[sl], sample_weight=sw)
        theirs.update_state(y_true[sl], y_pred[sl], sample_weight=sw)
    assert ours.result() == pytest.approx(float(theirs.result()), rel=1e-5, abs=1e-7)
    ours.reset_state()
    assert ours.result() == 0.0


@pytest.mark.parametrize(
    "y_true, y_pred, expected",
    [
        (LABELS, LOGITS, metrics.SparseCategoricalAccuracy),
        (LABELS[:, None], LOGITS, metrics.SparseCategoricalAccuracy),
        (ONE_HOT, LOGITS, metrics.CategoricalAccuracy),
        (BIN_TRUE[:, :1], BIN_PROBS[:, :1], metrics.BinaryAccuracy),
        (REG_TRUE, REG_PRED, metrics.CategoricalAccuracy),
    ],
)
def test_accuracy_resolved_by_shapes_like_keras(y_true, y_pred, expected):
    metric = metrics.get_metric("accuracy", torch.as_tensor(y_true), torch.as_tensor(y_pred))
    assert type(metric) is expected and metric.name == "accuracy"
    assert metrics.get_metric("acc", torch.as_tensor(y_true), torch.as_tensor(y_pred)).name == "acc"


def test_a_metric_of_an_unhashable_callable():
    """The shorter batch sums are found by identity: a value function need not be hashable."""

    class Matches:
        __hash__ = None  # not hashable: cannot be a dict key

        def __call__(self, y_true, y_pred):
            return (y_true == y_pred).float()

    metric = metrics.MeanMetricWrapper(Matches(), name="matches")
    metric.update_state(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 0.0, 3.0]))
    assert metric.result() == pytest.approx(2 / 3)


def test_metrics_record_no_graph_of_outputs_that_require_grad():
    """A metric's state never holds an autograd graph: the batch sums run without
    ``no_grad`` (their ops are not differentiable), the other value functions under it."""
    logits = torch.tensor(LOGITS, requires_grad=True)
    targets = (torch.as_tensor(LABELS), torch.zeros(6, 4))
    for metric, y_true in zip(
        (metrics.SparseCategoricalAccuracy(), metrics.MeanSquaredError()), targets
    ):
        metric.update_state(y_true, logits)
        assert all(
            not (isinstance(t, torch.Tensor) and t.requires_grad) for t in metric.state_tensors()
        )
    accuracy = metrics.SparseCategoricalAccuracy()
    accuracy.update_state(torch.as_tensor(LABELS), logits)
    expected = float((LOGITS.argmax(-1) == LABELS).mean())
    assert accuracy.result() == pytest.approx(expected)


class _Ops(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.__name__)
        return func(*args, **(kwargs or {}))


def test_the_first_update_after_a_reset_adds_nothing():
    """The running totals start from the first batch's values themselves (no addition to
    zero, one op less per metric and train_on_batch); the means are those of all batches."""
    tracker, accuracy = metrics.Mean(name="loss"), metrics.SparseCategoricalAccuracy()
    labels, logits = torch.as_tensor(LABELS), torch.as_tensor(LOGITS)
    hits = (LOGITS.argmax(-1) == LABELS).astype("float64")
    for _ in range(2):
        tracker.reset_state()
        accuracy.reset_state()
        loss = torch.tensor(2.0)
        with _Ops() as ops:
            tracker.update_state(loss, sample_weight=6)
            accuracy.update_state(labels, logits)
        assert ops.names == ["mul.Tensor", "argmax.default", "eq.Tensor", "sum.default"]
        tracker.update_state(torch.tensor(4.0), sample_weight=2)
        accuracy.update_state(labels[:2], logits[:2])
        assert tracker.result() == pytest.approx((2.0 * 6 + 4.0 * 2) / 8)
        expected = (hits.sum() + hits[:2].sum()) / 8
        assert accuracy.result() == pytest.approx(expected)


def test_metric_names_and_custom_objects():
    assert metrics.get("mae").name == "mean_absolute_error"
    assert metrics.get_metric("mae", torch.zeros(2, 1), torch.zeros(2, 1)).name == "mae"

    def always_one(y_true, y_pred):
        return torch.ones(y_pred.shape[0])

    wrapped = metrics.get(always_one)
    wrapped.update_state(REG_TRUE, REG_PRED)
    assert wrapped.name == "always_one" and wrapped.result() == 1.0
    with pytest.raises(ValueError, match="unknown metric 'f1'.*mae"):
        metrics.get("f1")


# --------------------------------------------------------------------------- optimizers
def test_optimizer_defaults_and_names():
    sgd = optimizers.get("sgd")
    assert isinstance(sgd, optimizers.SGD)
    assert (sgd.learning_rate, sgd.momentum, sgd.nesterov) == (0.01, 0.0, False)
    adam = optimizers.get("adam")
    assert (adam.learning_rate, adam.beta_1, adam.beta_2, adam.epsilon) == (1e-3, 0.9, 0.999, 1e-7)
    assert optimizers.get("RMSprop").rho == 0.9
    assert optimizers.get("adagrad").initial_accumulator_value == 0.1
    assert optimizers.get("adamw").weight_decay == 0.004
    assert rnnkit.optimizers.get(optimizers.Adam().get_config() and "Adam").epsilon == 1e-7
    with pytest.raises(
        ValueError, match=r"unknown optimizer 'nadamm'\. Valid names: adadelta, adagrad"
    ):
        optimizers.get("nadamm")
    with pytest.raises(ValueError, match="learning_rate"):
        optimizers.SGD(learning_rate=-1.0)
    with pytest.raises(ValueError, match="clipnorm"):
        optimizers.SGD(clipnorm=0.0)


def _run_steps(opt_ours, opt_keras, steps=4):
    """Apply the same gradient sequence to an rnnkit and a Keras optimizer."""
    import keras

    rng = np.random.default_rng(5)
    w0 = rng.standard_normal((3, 2)).astype("float32")
    ours = torch.nn.Parameter(torch.as_tensor(w0.copy()))
    theirs = keras.Variable(w0.copy())
    opt_ours.build([ours])
    for _ in range(steps):
        grad = rng.standard_normal((3, 2)).astype("float32")
        ours.grad = torch.as_tensor(grad.copy())
        opt_ours.step()
        opt_keras.apply_gradients([(keras.ops.convert_to_tensor(grad), theirs)])
    return ours.detach().numpy(), np.asarray(theirs.value.detach().cpu())


@pytest.mark.parametrize(
    "name, kwargs, atol",
    [
        ("SGD", {"learning_rate": 0.1}, 1e-6),
        ("SGD", {"learning_rate": 0.1, "momentum": 0.9}, 1e-6),
        ("SGD", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}, 1e-6),
        ("SGD", {"learning_rate": 0.1, "weight_decay": 0.1}, 1e-6),
        ("SGD", {"learning_rate": 0.1, "clipnorm": 0.5}, 1e-6),
        ("SGD", {"learning_rate": 0.1, "clipvalue": 0.2}, 1e-6),
        ("SGD", {"learning_rate": 0.1, "global_clipnorm": 0.5}, 1e-6),
        ("RMSprop", {"learning_rate": 0.01}, 1e-6),
        ("Adam", {"learning_rate": 0.01}, 1e-6),
        ("AdamW", {"learning_rate": 0.01}, 1e-6),
        ("Adagrad", {"learning_rate": 0.1}, 1e-6),
        ("Adadelta", {"learning_rate": 1.0}, 1e-6),
        ("Adamax", {"learning_rate": 0.01}, 1e-6),
        ("Nadam", {"learning_rate": 0.01}, 1e-6),
        ("Lion", {"learning_rate": 0.01}, 1e-6),
    ],
)
def test_optimizers_follow_keras_updates(name, kwargs, atol):
    import keras

    ours, theirs = _run_steps(
        getattr(optimizers, name)(**kwargs), getattr(keras.optimizers, name)(**kwargs)
    )
    np.testing.assert_allclose(ours, theirs, atol=atol)


def test_learning_rate_setter_reaches_torch():
    opt = optimizers.Adam(learning_rate=0.01)
    p = torch.nn.Parameter(torch.zeros(2))
    opt.build([p])
    opt.learning_rate = 0.5
    assert opt.torch_optimizer.param_groups[0]["lr"] == 0.5
    torch_opt = torch.optim.SGD([p], lr=0.1)
    optimizers.set_learning_rate(torch_opt, 0.2)
    assert optimizers.get_learning_rate(torch_opt) == 0.2
