"""Model files (.keras), weight files (.weights.safetensors): round trips, resumed training,
atomic writes and refusal of crafted files."""

import importlib.abc
import json
import os
import sys
import zipfile

import model_zoo
import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.layers import GRU, LSTM, Dense, Embedding, Layer
from rnnkit.saving import files as files_module
from rnnkit.saving import (
    load_model,
    load_weights,
    register_keras_serializable,
    save_model,
    save_weights,
)

RNG = np.random.default_rng(0)


def predict(model, x):
    with torch.no_grad():
        out = model(x)
    if isinstance(out, (list, tuple)):
        return [o.numpy() for o in out]
    return out.numpy()


def _zoo(make):
    entry = make()
    return entry.model, entry.inputs


def sequential_model():
    """Embedding(mask_zero) -> LSTM -> GRU -> Dense(2, softmax): 9 weights."""
    return _zoo(model_zoo.masked_embedding)


def functional_model():
    return _zoo(model_zoo.mixed_functional)


def lazy_sequential_model():
    return _zoo(model_zoo.masking_lazy_sequential)


# ------------------------------------------------------------------ round trips
# Every architecture of tests/model_zoo.py is saved and reloaded by tests/test_round_trip.py;
# here: what a file holds.
@pytest.mark.parametrize("make", [sequential_model, functional_model, lazy_sequential_model])
def test_model_file_members_and_metadata(make, tmp_path):
    model, x = make()
    path = tmp_path / "m.keras"
    save_model(model, path)
    rnnkit.clear_session()  # reloaded layers get the saved names, not fresh ones
    again = load_model(path)
    assert [la.name for la in again.layers] == [la.name for la in model.layers]
    np.testing.assert_array_equal(predict(again, x), predict(model, x))
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        meta = json.loads(zf.read("metadata.json"))
        config = json.loads(zf.read("config.json"))
    assert names == {"config.json", "metadata.json", "model.weights.safetensors"}
    assert meta["format"] == "rnnkit.keras"
    assert meta["rnnkit_version"] == rnnkit.__version__ and meta["date_saved"]
    assert config["class_name"] in ("Sequential", "Functional")
    assert config["compile_config"] is None and "build_config" not in config


def test_model_methods_save_and_load_weights(tmp_path):
    model, x = sequential_model()
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.safetensors")
    other, _ = sequential_model()
    other.load_weights(tmp_path / "m.weights.safetensors")
    np.testing.assert_array_equal(predict(other, x), predict(model, x))
    np.testing.assert_array_equal(predict(load_model(tmp_path / "m.keras"), x), predict(model, x))


def test_weights_file_round_trip_by_position(tmp_path):
    model, x = functional_model()
    path = tmp_path / "w.weights.safetensors"
    save_weights(model, path)
    other, _ = functional_model()  # other automatic names (gru_1, ...), same architecture
    assert not np.allclose(predict(other, x), predict(model, x))
    load_weights(other, path)
    np.testing.assert_array_equal(predict(other, x), predict(model, x))
    with pytest.raises(ValueError, match="overwrite=False"):
        save_weights(model, path, overwrite=False)
    with pytest.raises(ValueError, match=r"\.weights\.safetensors"):
        save_weights(model, tmp_path / "w.pt")


@register_keras_serializable(package="TestSaving")
class Scale(Layer):
    """``y = x * factor`` with a trainable scalar ``factor``."""

    def __init__(self, init=2.0, **kwargs):
        super().__init__(**kwargs)
        self.init = init

    def build(self, input_shape):
        self.factor = self.add_weight(shape=(), initializer="ones", name="factor")
        with torch.no_grad():
            self.factor.fill_(self.init)

    def call(self, inputs):
        return inputs * self.factor

    def get_config(self):
        return {**super().get_config(), "init": self.init}


class Unregistered(Scale):
    pass


def test_registered_and_custom_objects(tmp_path):
    x = rnnkit.Input(shape=(3,))
    model = rnnkit.Model(x, Unregistered(3.0)(Scale(0.5)(Dense(2)(x))))
    data = RNG.normal(size=(4, 3)).astype("float32")
    save_model(model, tmp_path / "m.keras")
    with pytest.raises(ValueError, match="unknown layer class 'Unregistered'"):
        load_model(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras", custom_objects={"Unregistered": Unregistered})
    np.testing.assert_array_equal(predict(again, data), predict(model, data))


# ------------------------------------------------------------ resumed training
def _train_setup():
    torch.manual_seed(1)
    model = rnnkit.Sequential([rnnkit.Input(shape=(4, 3)), LSTM(6), Dense(2)])
    x = RNG.normal(size=(16, 4, 3)).astype("float32")
    y = RNG.normal(size=(16, 2)).astype("float32")
    return model, x, y


OPTIMIZERS = {
    "adam": lambda: rnnkit.optimizers.Adam(learning_rate=0.01),
    "adam_amsgrad_clipnorm": lambda: rnnkit.optimizers.Adam(0.01, amsgrad=True, clipnorm=0.5),
    "adam_weight_decay": lambda: rnnkit.optimizers.Adam(0.01, weight_decay=0.05),
    "adamw": lambda: rnnkit.optimizers.AdamW(learning_rate=0.01),
    "rmsprop": lambda: rnnkit.optimizers.get("rmsprop"),
    "rmsprop_centered_momentum": lambda: rnnkit.optimizers.RMSprop(
        0.01, momentum=0.5, centered=True
    ),
    "sgd_momentum": lambda: rnnkit.optimizers.SGD(learning_rate=0.05, momentum=0.9),
    "sgd_nesterov_clipvalue": lambda: rnnkit.optimizers.SGD(
        0.05, momentum=0.9, nesterov=True, clipvalue=0.1
    ),
    "adagrad": lambda: rnnkit.optimizers.Adagrad(learning_rate=0.05),
}


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_compiled_model_resumes_training(optimizer, tmp_path):
    opt = OPTIMIZERS[optimizer]
    model, x, y = _train_setup()
    initial = model.get_weights()
    model.compile(optimizer=opt(), loss="mse", metrics=["mae"])
    history = model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0).history
    uninterrupted = model.get_weights()

    first, _, _ = _train_setup()
    first.set_weights(initial)
    first.compile(optimizer=opt(), loss="mse", metrics=["mae"])
    first.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    save_model(first, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert {"optimizer.json", "optimizer.safetensors"} <= set(zf.namelist())

    resumed = load_model(tmp_path / "m.keras")
    assert type(resumed.optimizer) is type(first.optimizer)
    assert resumed.optimizer.get_config() == first.optimizer.get_config()
    assert resumed.optimizer.iterations == 4
    resumed_history = resumed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    # bit-identical: the moments, accumulators and step counts were restored exactly
    for a, b in zip(uninterrupted, resumed.get_weights()):
        np.testing.assert_array_equal(b, a)
    assert resumed_history == {key: values[2:] for key, values in history.items()}
    assert resumed.optimizer.iterations == model.optimizer.iterations == 8

    # control: without the optimizer state the continuation differs (so the test can fail)
    fresh = load_model(tmp_path / "m.keras", compile=False)
    fresh.compile(optimizer=opt(), loss="mse")
    fresh.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert not all(np.allclose(a, b) for a, b in zip(uninterrupted, fresh.get_weights()))


def test_changed_learning_rate_is_restored(tmp_path):
    model, x, y = _train_setup()
    model.compile(optimizer=rnnkit.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.optimizer.learning_rate = 0.002  # as ReduceLROnPlateau does
    save_model(model, tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert again.optimizer.learning_rate == pytest.approx(0.002)
    assert again.optimizer.get_config()["learning_rate"] == pytest.approx(0.002)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    again.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(b, a)


def test_compile_settings_round_trip(tmp_path):
    """Loss and metric objects, per-output metrics and weighted_metrics reload as compiled,
    so that evaluate() logs the same names and values."""
    x_in = rnnkit.Input(shape=(4, 3))
    h = LSTM(5)(x_in)
    model = rnnkit.Model(x_in, [Dense(3, name="label")(h), Dense(1, name="score")(h)])
    x = RNG.normal(size=(8, 4, 3)).astype("float32")
    y = [RNG.integers(0, 3, 8), RNG.normal(size=(8, 1)).astype("float32")]
    weights = RNG.uniform(0.5, 2.0, 8).astype("float32")
    model.compile(
        optimizer=rnnkit.optimizers.RMSprop(0.01),
        loss=[
            rnnkit.losses.SparseCategoricalCrossentropy(from_logits=True),
            rnnkit.losses.Huber(delta=0.5),
        ],
        loss_weights=[1.0, 0.3],
        metrics=[
            ["accuracy", rnnkit.metrics.SparseCategoricalCrossentropy(from_logits=True)],
            [rnnkit.metrics.MeanAbsoluteError(name="l1"), rnnkit.metrics.RootMeanSquaredError()],
        ],
        weighted_metrics={"score": ["mse"]},
        nan_policy="warn",
    )
    model.fit(x, y, sample_weight=weights, batch_size=4, verbose=0)
    expected = model.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert "compile_config_not_saved" not in json.loads(zf.read("metadata.json"))
    again = load_model(tmp_path / "m.keras")
    assert again._nan_policy == "warn"
    logs = again.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    assert list(logs) == list(expected)
    assert logs == pytest.approx(expected, rel=1e-6)


def test_resumed_optimizer_state_follows_the_model_to_another_dtype(tmp_path):
    """A loaded model moved with .to() (here to float64; to a GPU alike) takes its optimizer
    state along at the next step."""
    model, x, y = _train_setup()
    model.compile(optimizer=rnnkit.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    save_model(model, tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    for m in (model, again):
        m.to(torch.float64)
        m.fit(x.astype("float64"), y.astype("float64"), batch_size=8, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert b.dtype == np.float64
        np.testing.assert_array_equal(b, a)
    state = again.optimizer.torch_optimizer.state_dict()["state"]
    assert all(s["exp_avg"].dtype == torch.float64 for s in state.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_model_saved_on_cpu_resumes_training_on_cuda(tmp_path):
    model, x, y = _train_setup()
    initial = model.get_weights()
    model.compile(optimizer=rnnkit.optimizers.Adam(0.01), loss="mse")
    model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0)
    first, _, _ = _train_setup()
    first.set_weights(initial)
    first.compile(optimizer=rnnkit.optimizers.Adam(0.01), loss="mse")
    first.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    save_model(first, tmp_path / "m.keras")
    resumed = load_model(tmp_path / "m.keras").to("cuda")
    resumed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    state = resumed.optimizer.torch_optimizer.state_dict()["state"]
    assert all(s["exp_avg"].device.type == "cuda" for s in state.values())
    for a, b in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    save_model(resumed, tmp_path / "cuda.keras")  # and back: saved from the GPU, loads on CPU
    on_cpu = load_model(tmp_path / "cuda.keras")
    np.testing.assert_allclose(predict(on_cpu, x), predict(resumed.to("cpu"), x), atol=1e-6)


def test_load_without_compile_and_torch_optimizer(tmp_path):
    model, x, y = _train_setup()
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), loss="mse")
    model.fit(x, y, epochs=1, verbose=0)
    save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        meta = json.loads(zf.read("metadata.json"))
    assert "not an rnnkit optimizer" in meta["compile_config_not_saved"]
    again = load_model(tmp_path / "m.keras")
    assert not getattr(again, "compiled", False)
    np.testing.assert_array_equal(predict(again, x), predict(model, x))


# ---------------------------------------------------------------- atomic writes
def _snapshot(folder):
    return sorted(os.listdir(folder))


def test_failed_write_keeps_old_file(tmp_path, monkeypatch):
    model, x = sequential_model()
    path = tmp_path / "m.keras"
    save_model(model, path)
    before = path.read_bytes()
    expected = predict(model, x)
    listing = _snapshot(tmp_path)
    original = zipfile.ZipFile.writestr
    calls = []

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # after one member is written: the disk is full
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing)
    with torch.no_grad():
        model.layers[-1].kernel.add_(1.0)
    with pytest.raises(OSError, match="No space"):
        save_model(model, path)
    assert path.read_bytes() == before
    assert _snapshot(tmp_path) == listing  # no temporary file left behind

    monkeypatch.setattr(zipfile.ZipFile, "writestr", original)

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(files_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        save_weights(model, tmp_path / "w.weights.safetensors")
    assert _snapshot(tmp_path) == listing
    monkeypatch.undo()
    np.testing.assert_array_equal(predict(load_model(path), x), expected)


# ------------------------------------------------------------------ crafted files
def _write_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


class _ImportSpy(importlib.abc.MetaPathFinder):
    def __init__(self):
        self.seen = []

    def find_spec(self, fullname, path=None, target=None):
        if "evil" in fullname:
            self.seen.append(fullname)
        return None


@pytest.fixture
def import_spy():
    spy = _ImportSpy()
    sys.meta_path.insert(0, spy)
    yield spy
    sys.meta_path.remove(spy)


@pytest.fixture
def saved(tmp_path):
    model, x = sequential_model()
    folder = tmp_path / "files"
    folder.mkdir()
    path = folder / "m.keras"
    save_model(model, path)
    return path, _members(path)


def _outside_unchanged(tmp_path, before):
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_config_naming_a_module_or_function_is_refused(saved, tmp_path, import_spy):
    path, members = saved
    config = json.loads(members["config.json"])
    evil_model = {"module": "evil_module", "class_name": "system", "config": {"cmd": "rm -rf /"}}
    _write_zip(path, {**members, "config.json": json.dumps(evil_model)})
    with pytest.raises(ValueError, match="unknown model class 'system'"):
        load_model(path)
    config["config"]["layers"][1] = {
        "module": "evil_module.sub",
        "class_name": "evil_function",
        "config": {"name": "x"},
    }
    _write_zip(path, {**members, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="unknown layer class 'evil_function'"):
        load_model(path, safe_mode=False)
    assert import_spy.seen == []


def test_lambda_config_is_refused_in_safe_mode(saved):
    path, members = saved
    config = json.loads(members["config.json"])
    config["config"]["layers"].insert(
        2,
        {
            "module": "keras.layers",
            "class_name": "Lambda",
            "config": {
                "name": "lambda",
                "function": {
                    "class_name": "__lambda__",
                    "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
                },
            },
        },
    )
    _write_zip(path, {**members, "config.json": json.dumps(config)})
    with pytest.raises(ValueError, match="safe_mode=False"):
        load_model(path)
    # unsafe mode: functions saved as Python bytecode are still never loaded
    with pytest.raises(ValueError, match="bytecode.*never loads"):
        load_model(path, safe_mode=False)


def test_zip_bomb_member_is_refused(saved, tmp_path):
    path, members = saved
    _write_zip(path, {**members, "config.json": b" " * 20_000_000})
    with pytest.raises(ValueError, match=r"config\.json.*expands.*zip bomb"):
        load_model(path)
    bomb = tmp_path / "bomb.keras"
    _write_zip(bomb, {**members, "junk.bin": b"\0" * 5_000_000})
    with pytest.raises(ValueError, match="junk.bin"):
        load_model(bomb)


def test_declared_sizes_are_enforced(tmp_path):
    path = tmp_path / "big.keras"
    _write_zip(path, {"config.json": b"{}" * 1000})
    with pytest.raises(ValueError, match="more than the limit of 100"):
        files_module.SafeZipReader(path, max_member_bytes=100)


@pytest.mark.parametrize(
    "name", ["../escape.txt", "/abs/escape.txt", "a/../../escape.txt", "c:\\x"]
)
def test_path_escaping_member_is_refused(saved, tmp_path, name):
    path, members = saved
    before = sorted(p.name for p in tmp_path.iterdir())
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(zipfile.ZipInfo(name), b"pwned")
    with pytest.raises(ValueError, match="member names must be relative"):
        load_model(path)
    _outside_unchanged(tmp_path, before)
    assert not (tmp_path / "escape.txt").exists()


def test_wrong_shape_weights_are_refused(saved, tmp_path):
    path, members = saved
    config = json.loads(members["config.json"])
    config["config"]["layers"][-1]["config"]["units"] = 3  # Dense(2) -> Dense(3)
    _write_zip(path, {**members, "config.json": json.dumps(config)})
    with pytest.raises(
        ValueError, match=r"shape \(3, 2\) in the file, but the model expects \(3, 3\)"
    ):
        load_model(path)
    model, _ = sequential_model()
    weights = tmp_path / "w.weights.safetensors"
    save_weights(model, weights)
    other = rnnkit.Sequential([rnnkit.Input(shape=(6,), dtype="int32"), Embedding(12, 4), GRU(3)])
    before = other.get_weights()
    with pytest.raises(ValueError, match="holds 9 weights, but the model .* has 4"):
        load_weights(other, weights)
    for a, b in zip(before, other.get_weights()):  # nothing was copied
        np.testing.assert_array_equal(a, b)


def test_truncated_files_are_refused(saved, tmp_path):
    path, _ = saved
    data = path.read_bytes()
    truncated = tmp_path / "t.keras"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_model(truncated)
    model, _ = sequential_model()
    weights = tmp_path / "w.weights.safetensors"
    save_weights(model, weights)
    raw = weights.read_bytes()
    weights.write_bytes(raw[: len(raw) - 40])
    with pytest.raises(ValueError, match="truncated"):
        load_weights(model, weights)
    not_a_zip = tmp_path / "n.keras"
    not_a_zip.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a valid model file"):
        load_model(not_a_zip)


def test_bad_arguments(tmp_path):
    model, _ = sequential_model()
    with pytest.raises(ValueError, match="must end in '.keras'"):
        save_model(model, tmp_path / "m.h5")
    with pytest.raises(TypeError, match="expected an rnnkit Model"):
        save_model(Dense(2), tmp_path / "m.keras")
    with pytest.raises(ValueError, match="no such file"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(TypeError, match="custom_objects must be a dict"):
        load_model(tmp_path / "missing.keras", custom_objects=[Scale])


def test_duplicate_members_and_deep_json_are_refused(saved, tmp_path):
    path, members = saved
    dup = tmp_path / "dup.keras"
    with zipfile.ZipFile(dup, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("config.json", b"{}")
    with pytest.raises(ValueError, match="appears twice"):
        load_model(dup)
    deep = tmp_path / "deep.keras"
    _write_zip(deep, {**members, "config.json": "[" * 200_000 + "]" * 200_000})
    with pytest.raises(ValueError, match="config.json"):
        load_model(deep)


def test_saved_file_has_ordinary_permissions(tmp_path):
    model, _ = sequential_model()
    save_model(model, tmp_path / "m.keras")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.keras").stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(tmp_path / "m.keras", 0o640)
    save_model(model, tmp_path / "m.keras")  # overwriting keeps the file's mode
    assert (tmp_path / "m.keras").stat().st_mode & 0o777 == 0o640


@register_keras_serializable(package="TestSaving")
class Net(rnnkit.Model):
    """A subclassed model."""

    def __init__(self, units=4, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.rnn = GRU(units)
        self.head = Dense(2)

    def call(self, inputs):
        return self.head(self.rnn(inputs))

    def get_config(self):
        return {"units": self.units, "name": self.name}


def test_subclassed_model_round_trip(tmp_path):
    model = Net(3)
    x = RNG.normal(size=(2, 5, 4)).astype("float32")
    expected = predict(model, x)
    # a subclassed model records the shapes of its first inputs; save_model writes them as
    # build_config and load_model builds the model with them before loading the weights
    assert model._build_input_shape == (2, 5, 4)
    save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert json.loads(zf.read("config.json"))["build_config"] == {"input_shape": [2, 5, 4]}
    again = load_model(tmp_path / "m.keras")
    assert type(again) is Net and again.units == 3
    assert again._build_input_shape == (2, 5, 4)
    np.testing.assert_array_equal(predict(again, x), expected)


def test_subclassed_model_built_by_build_or_symbolically(tmp_path):
    x = RNG.normal(size=(2, 5, 4)).astype("float32")
    built = Net(2)
    built.build((None, None, 4))
    assert built._build_input_shape == (None, None, 4)
    save_model(built, tmp_path / "b.keras")
    np.testing.assert_array_equal(predict(load_model(tmp_path / "b.keras"), x), predict(built, x))

    symbolic = Net(2)
    inputs = rnnkit.Input(shape=(None, 4))
    outer = rnnkit.Model(inputs, Dense(1)(symbolic(inputs)))
    assert symbolic._build_input_shape == (None, None, 4)
    save_model(symbolic, tmp_path / "s.keras")
    save_model(outer, tmp_path / "o.keras")
    np.testing.assert_array_equal(
        predict(load_model(tmp_path / "s.keras"), x), predict(symbolic, x)
    )
    np.testing.assert_array_equal(predict(load_model(tmp_path / "o.keras"), x), predict(outer, x))


def test_unbuilt_subclassed_model_round_trip(tmp_path):
    save_model(Net(3), tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    assert type(again) is Net and not again.weights
    x = RNG.normal(size=(2, 5, 4)).astype("float32")
    assert predict(again, x).shape == (2, 2)  # builds on its first call, as a fresh Net

    # weights but no recorded shape (its layers were called, the model never was)
    model = Net(3)
    model.head(model.rnn(torch.as_tensor(x)))
    save_model(model, tmp_path / "n.keras")
    with pytest.raises(ValueError, match="is not built"):
        load_model(tmp_path / "n.keras")
