"""compile/fit/evaluate/predict on a small model made of test layers (``Net(Trainer, Layer)``):
parity with a hand-written torch loop, logs and history, data inputs, multiple outputs, errors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnkit import regularizers
from rnnkit.layers import Input, Layer
from rnnkit.training import Trainer, losses, metrics, optimizers


class Lin(Layer):
    """``x @ kernel + bias`` (a minimal Dense for these tests)."""

    def __init__(self, units, kernel_regularizer=None, **kwargs):
        self.units = units
        self.kernel_regularizer = kernel_regularizer
        super().__init__(**kwargs)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            name="kernel",
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, x):
        return x @ self.kernel + self.bias


class Net(Trainer, Layer):
    """Lin -> tanh -> Lin; records the batches and training flags it sees."""

    def __init__(self, units=3, reg=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden = Lin(8, kernel_regularizer=reg)
        self.out = Lin(units)
        self.seen: list[tuple[np.ndarray, bool]] = []

    def call(self, x, training=False):
        self.seen.append((x.detach().cpu().numpy().copy(), training))
        return self.out(torch.tanh(self.hidden(x)))


class TwoHeads(Trainer, Layer):
    """One input, outputs as a tuple (names from ``output_names``) or a dict."""

    def __init__(self, as_dict=False, names=None, **kwargs):
        super().__init__(**kwargs)
        self.a = Lin(2)
        self.b = Lin(3)
        self.as_dict = as_dict
        self._names = names

    @property
    def output_names(self):
        return self._names or []

    def call(self, x):
        a, b = self.a(x), self.b(x)
        return {"a": a, "b": b} if self.as_dict else (a, b)


def _data(n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype("float32"), rng.standard_normal((n, 3)).astype(
        "float32"
    )


# ------------------------------------------------------------- parity with a torch loop
@pytest.mark.parametrize(
    "make_ours, make_torch",
    [
        (lambda: optimizers.SGD(), lambda p: torch.optim.SGD(p, lr=0.01)),
        (
            lambda: optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
            lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
        ),
        (lambda: optimizers.Adam(), lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7)),
        (lambda: "adam", lambda p: torch.optim.Adam(p, lr=1e-3, eps=1e-7)),
    ],
)
def test_fit_matches_hand_written_torch_loop(make_ours, make_torch):
    x, y = _data()
    model = Net(reg=regularizers.L2(0.01))
    model(x[:1])
    reference = Net(reg=regularizers.L2(0.01))
    reference(x[:1])
    reference.set_weights(model.get_weights())

    model.compile(optimizer=make_ours(), loss="mse")
    history = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)

    params = reference.trainable_weights
    opt = make_torch(params)
    step_losses = []
    for start in range(0, 40, 8):  # 5 steps, same order
        xb, yb = torch.as_tensor(x[start : start + 8]), torch.as_tensor(y[start : start + 8])
        opt.zero_grad()
        pred = reference(xb)
        loss = torch.mean((pred - yb) ** 2) + 0.01 * torch.sum(reference.hidden.kernel**2)
        loss.backward()
        opt.step()
        step_losses.append(loss.item())

    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=1e-5)
    # The logged loss is the batch-size weighted mean of the step losses (equal batches here).
    np.testing.assert_allclose(history.history["loss"][0], np.mean(step_losses), rtol=1e-5)


def test_torch_optimizer_instance_is_used_as_is():
    x, y = _data()
    model = Net()
    model(x[:1])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.compile(optimizer=opt, loss="mse")
    before = model.get_weights()
    model.fit(x, y, batch_size=40, verbose=0, shuffle=False)
    assert model.optimizer is opt
    assert not np.allclose(before[0], model.get_weights()[0])


def test_training_flag_and_batch_order():
    x, y = _data()
    model = Net()
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=16, shuffle=False, verbose=0)
    seen = [s for s in model.seen if s[0].shape[0] > 1]
    assert [flag for _, flag in seen] == [True, True, True]
    np.testing.assert_array_equal(np.concatenate([b for b, _ in seen]), x)
    assert [b.shape[0] for b, _ in seen] == [16, 16, 8]

    model.seen.clear()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert all(flag is False for _, flag in model.seen)

    model.seen.clear()
    torch.manual_seed(1)
    model.fit(x, y, batch_size=40, shuffle=True, verbose=0)
    shuffled = model.seen[0][0]
    assert not np.array_equal(shuffled, x)
    np.testing.assert_array_equal(np.sort(shuffled, axis=0), np.sort(x, axis=0))
    assert model.training is False  # the module's mode is restored after fit


# --------------------------------------------------------------- logs, evaluate, predict
def test_history_keys_and_validation_metrics():
    x, y = _data()
    model = Net()
    model.compile("adam", "mse", metrics=["mae", metrics.RootMeanSquaredError()])
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    assert list(history.history) == [
        "loss",
        "mae",
        "root_mean_squared_error",
        "val_loss",
        "val_mae",
        "val_root_mean_squared_error",
    ]
    assert history.epoch == [0, 1, 2]
    assert model.history is history
    # validation_split takes the last 25% (10 samples) before shuffling: val_ metrics equal
    # evaluate() on them with the final weights of epoch 3.
    val = model.evaluate(x[30:], y[30:], verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    pred = model.predict(x[30:], verbose=0)
    assert val["mae"] == pytest.approx(float(np.mean(np.abs(pred - y[30:]))), rel=1e-5)
    assert val["root_mean_squared_error"] == pytest.approx(
        float(np.sqrt(np.mean((pred - y[30:]) ** 2))), rel=1e-5
    )


def test_evaluate_and_predict_match_keras_reductions():
    import keras

    x, y = _data(n=37)
    model = Net()
    model.compile("sgd", losses.MeanSquaredError(), metrics=["mse"])
    pred = model.predict(x, batch_size=5, verbose=0)
    assert isinstance(pred, np.ndarray) and pred.shape == (37, 3)
    np.testing.assert_allclose(pred, model(torch.as_tensor(x)).detach().numpy(), atol=1e-6)
    # Batches of 5 (the last has 2): the logged loss is the per-sample mean, like Keras.
    loss, mse = model.evaluate(x, y, batch_size=5, verbose=0)
    expected = float(keras.losses.MeanSquaredError()(y, pred))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert mse == pytest.approx(expected, rel=1e-5)
    # The same on one batch.
    assert model.test_on_batch(x, y) == pytest.approx([expected, expected], rel=1e-5)
    np.testing.assert_allclose(model.predict_on_batch(x[:4]), pred[:4], atol=1e-6)


def test_train_on_batch_returns_pre_update_loss_and_updates():
    x, y = _data(n=8)
    model = Net()
    model.compile(optimizers.SGD(learning_rate=0.1), "mse")
    before = model.evaluate(x, y, verbose=0)
    assert model.train_on_batch(x, y) == pytest.approx(before, rel=1e-6)
    assert model.evaluate(x, y, verbose=0) < before
    logs = model.train_on_batch(x, y, return_dict=True)
    assert list(logs) == ["loss"]


def test_sample_weight_and_class_weight():
    import keras

    rng = np.random.default_rng(3)
    x = rng.standard_normal((12, 4)).astype("float32")
    labels = rng.integers(0, 3, 12)
    sw = rng.random(12).astype("float32")
    model = Net()
    model.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    pred = model.predict(x, verbose=0)
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ours = model.evaluate(x, labels, sample_weight=sw, batch_size=12, verbose=0)
    assert ours == pytest.approx(float(keras_loss(labels, pred, sample_weight=sw)), rel=1e-5)

    # weighted_metrics use the sample weights; a taken name gets "weighted_" (Keras 3).
    model.compile("sgd", "mse", metrics=["mae"], weighted_metrics=["mae"])
    y = rng.standard_normal((12, 3)).astype("float32")
    logs = model.evaluate(x, y, sample_weight=sw, batch_size=5, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "mae", "weighted_mae"]
    per_sample = np.abs(pred - y).mean(-1)
    assert logs["mae"] == pytest.approx(float(per_sample.mean()), rel=1e-5)
    assert logs["weighted_mae"] == pytest.approx(
        float((per_sample * sw).sum() / sw.sum()), rel=1e-5
    )

    class_weight = {0: 1.0, 1: 2.0, 2: 0.5}
    model.seen.clear()
    a, b = Net(), Net()
    a(x[:1])
    b(x[:1])
    b.set_weights(a.get_weights())
    a.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    b.compile("sgd", losses.SparseCategoricalCrossentropy(from_logits=True))
    a.fit(x, labels, class_weight=class_weight, shuffle=False, verbose=0)
    weights = np.array([class_weight[int(c)] for c in labels], dtype="float32")
    b.fit(x, labels, sample_weight=weights, shuffle=False, verbose=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, atol=1e-6)


# ------------------------------------------------------------------------ data inputs
def test_dataloader_and_iterables_match_arrays():
    x, y = _data()
    ref = Net()
    ref(x[:1])
    init = ref.get_weights()
    ref.compile("sgd", "mse")
    ref.fit(x, y, batch_size=8, shuffle=False, verbose=0, epochs=2)

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y)), batch_size=8
    )
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 40, 8)]
    for data in (loader, batches):
        model = Net()
        model(x[:1])
        model.set_weights(init)
        model.compile("sgd", "mse")
        history = model.fit(data, epochs=2, verbose=0)
        assert len(history.history["loss"]) == 2
        for a, b in zip(model.get_weights(), ref.get_weights()):
            np.testing.assert_allclose(a, b, atol=1e-6)
    assert model.evaluate(loader, verbose=0) == pytest.approx(
        ref.evaluate(x, y, verbose=0), rel=1e-5
    )
    np.testing.assert_allclose(model.predict(loader, verbose=0), ref.predict(x, verbose=0), 1e-5)

    # validation_data as arrays, a DataLoader or a list of batches: the same val_loss.
    val_losses = []
    for val in ((x, y), loader, batches):
        model.compile(optimizers.SGD(learning_rate=0.0), "mse")
        history = model.fit(x, y, validation_data=val, verbose=0)
        val_losses.append(history.history["val_loss"][0])
    np.testing.assert_allclose(val_losses, val_losses[0], rtol=1e-6)


def test_generator_with_steps_per_epoch():
    x, y = _data()
    model = Net()
    model.compile("sgd", "mse")

    def generator():
        while True:
            for i in range(0, 40, 10):
                yield x[i : i + 10], y[i : i + 10]

    batches = []
    model.fit(
        generator(),
        steps_per_epoch=3,
        epochs=2,
        verbose=0,
        callbacks=[_BatchCounter(batches)],
    )
    assert batches == [0, 1, 2, 0, 1, 2]

    finite = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 40, 10))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(finite, epochs=3, verbose=0)
    assert len(history.history["loss"]) == 1


class _BatchCounter:
    def __new__(cls, out):
        from rnnkit.callbacks import Callback

        class Counter(Callback):
            def on_train_batch_end(self, batch, logs=None):
                out.append(batch)

        return Counter()


# ------------------------------------------------------------------- several outputs
def test_multiple_outputs_names_weights_and_guide_naming():
    x, _ = _data()
    rng = np.random.default_rng(1)
    ya, yb = rng.standard_normal((40, 2)), rng.standard_normal((40, 3))

    model = TwoHeads(names=["rnn_1", "rnn_1"])  # two outputs of one layer, as the guide's
    model.compile("adam", loss="mse", metrics=["accuracy"])
    history = model.fit(x, [ya, yb], batch_size=8, verbose=0)
    # The guide's log line: loss - rnn_1_loss - rnn_1_1_loss - rnn_1_accuracy - rnn_1_1_accuracy
    assert list(history.history) == [
        "loss",
        "rnn_1_loss",
        "rnn_1_1_loss",
        "rnn_1_accuracy",
        "rnn_1_1_accuracy",
    ]

    model = TwoHeads(as_dict=True)
    model.compile(
        "sgd",
        loss={"a": "mse", "b": "mae"},
        loss_weights={"a": 1.0, "b": 0.5},
        metrics={"b": ["mse"]},
    )
    logs = model.evaluate(x, {"a": ya, "b": yb}, batch_size=40, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    assert set(pred) == {"a", "b"}
    la = float(np.mean((pred["a"] - ya) ** 2))
    lb = float(np.mean(np.abs(pred["b"] - yb)))
    assert logs["a_loss"] == pytest.approx(la, rel=1e-5)
    assert logs["b_loss"] == pytest.approx(lb, rel=1e-5)
    assert logs["loss"] == pytest.approx(la + 0.5 * lb, rel=1e-5)
    assert logs["b_mse"] == pytest.approx(float(np.mean((pred["b"] - yb) ** 2)), rel=1e-5)
    assert list(logs) == ["loss", "a_loss", "b_loss", "b_mse"]

    plain = TwoHeads()
    plain.compile("sgd", loss=["mse", None])
    out = plain.predict(x, verbose=0)
    assert isinstance(out, tuple) and out[1].shape == (40, 3)
    assert plain.evaluate(x, [ya, yb], verbose=0) == pytest.approx(
        float(np.mean((out[0] - ya) ** 2)), rel=1e-5
    )


# ------------------------------------------------------------------------- bad inputs
def test_fit_before_compile():
    x, y = _data()
    with pytest.raises(ValueError, match="compile"):
        Net().fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="compile"):
        Net().evaluate(x, y, verbose=0)


def test_x_and_y_of_different_lengths():
    x, y = _data()
    model = Net()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"x has 40 samples, y has 30 samples"):
        model.fit(x, y[:30], verbose=0)
    with pytest.raises(ValueError, match=r"sizes \[20, 40\]"):
        model.fit([x, x[:20]], y, verbose=0)


def test_unknown_names_list_valid_ones():
    model = Net()
    with pytest.raises(ValueError, match=r"unknown loss 'msee'.*mean_squared_error"):
        model.compile("sgd", "msee")
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'.*adam, adamax, adamw"):
        model.compile("adamm", "mse")
    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'.*accuracy"):
        model.compile("sgd", "mse", metrics=["acuracy"])
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.compile("sgd", "mse", steps_per_execution=2)


def test_wrong_number_of_inputs_and_targets():
    x, y = _data()

    class TwoInputs(Trainer, Layer):
        def __init__(self):
            super().__init__()
            self.inputs = [Input((4,), name="first"), Input((4,), name="second")]
            self.d = Lin(3)

        def call(self, xs):
            return self.d(xs[0] + xs[1])

    model = TwoInputs()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"expects 2 input\(s\) \['first', 'second'\], received 1"):
        model.fit(x, y, verbose=0)
    model.fit([x, x], y, verbose=0)

    heads = TwoHeads()
    heads.compile("sgd", "mse")
    with pytest.raises(ValueError, match=r"2 output\(s\).*1 target"):
        heads.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="loss is a list of 3"):
        heads.compile("sgd", ["mse", "mse", "mse"])
        heads.fit(x, [y[:, :2], y], verbose=0)


def test_bad_fit_arguments():
    x, y = _data()
    model = Net()
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        model.fit(x, y, verbose=3)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x, y, validation_split=1.5, verbose=0)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y)), batch_size=8
    )
    with pytest.raises(ValueError, match="validation_split needs array data"):
        model.fit(loader, validation_split=0.2, verbose=0)
    with pytest.raises(ValueError, match="pass y inside the batches"):
        model.fit(loader, y, verbose=0)


def test_public_modules_are_importable():
    import importlib

    import rnnkit

    for name in ("callbacks", "losses", "metrics", "optimizers"):
        assert importlib.import_module(f"rnnkit.{name}") is getattr(rnnkit, name)
    assert rnnkit.losses.MeanSquaredError is losses.MeanSquaredError
    assert rnnkit.callbacks.EarlyStopping.__module__ == "rnnkit.training.callbacks"
    assert rnnkit.optimizers.get("sgd").learning_rate == 0.01
    assert rnnkit.metrics.get("mse").name == "mean_squared_error"


class _OwnTrain(Lin):
    """A layer with its own ``train()``: the trainer then switches modes through ``train``."""

    def train(self, mode=True):
        self.train_calls = getattr(self, "train_calls", 0) + 1
        return super().train(mode)


@pytest.mark.parametrize("own_train", [False, True])
def test_each_module_gets_its_own_mode_back_after_a_step(own_train):
    """``train_on_batch`` runs every module in training mode and then puts each back in the
    mode it had, a mix of train and eval included, whether the modules keep
    ``nn.Module.train`` (flags written directly) or one has its own."""
    x, y = _data()
    model = Net()
    if own_train:
        model.out = _OwnTrain(model.out.units)
    model.compile("sgd", "mse")
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    during = []
    model.out.register_forward_pre_hook(
        lambda module, args: during.append([m.training for m in model.modules()])
    )
    model.eval()
    model.hidden.train()  # a mix: one sublayer in training mode
    before = {name: m.training for name, m in model.named_modules()}
    model.train_on_batch(x[:8], y[:8])
    assert during == [[True] * len(before)]  # every module trained
    assert {name: m.training for name, m in model.named_modules()} == before
    if own_train:
        assert model.out.train_calls >= 1
    model.test_on_batch(x[:8], y[:8])
    assert during[-1] == [False] * len(before)
    assert {name: m.training for name, m in model.named_modules()} == before
