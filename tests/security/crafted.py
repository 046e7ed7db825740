"""A catalogue of crafted files, one per attack, each refused by an rnnkit loader.

Every case has a builder (runs in the test process: writes the file into an empty folder) and
a loader call (runs in a sandboxed child, see ``sandbox.py``). The builders start from genuine
files (an rnnkit ``.keras``, a Keras 3 ``.keras`` and ``.weights.h5``, a backup) and change
one thing. Paths that an attack points at live in ``<folder>/outside`` (a secret file) and
``<folder>/SENTINEL*`` (what code execution would create); the test checks both.

Cases cover: code execution (loop-compilation options, ``Lambda``/marshal code, functions,
module injection, vocabulary files), local files through HDF5 (external and soft links,
external storage, virtual datasets), memory and time bombs (zip, JSON, safetensors, HDF5,
architecture), refusals that used to be accidents (malformed values), and the published Keras
``safe_mode`` CVE classes.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import io
import json
import marshal
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODEL = "m.keras"
SECRET = b"TOP-SECRET-BYTES" * 4  # 64 bytes: what an attack would read into weights


# ----------------------------------------------------------------------------- models
def small_model() -> Any:
    """The architecture every genuine file here holds: Input(4, 3) -> LSTM(2) -> Dense(1)."""
    import rnnkit
    from rnnkit import layers

    return rnnkit.Sequential([layers.Input((4, 3)), layers.LSTM(2), layers.Dense(1)])


def _xy() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(6, 4, 3)).astype("float32"), rng.normal(size=(6, 1)).astype("float32")


@functools.cache
def rnnkit_members() -> dict[str, bytes]:
    """The members of a genuine rnnkit ``.keras`` (compiled, one step trained)."""
    import tempfile

    model = small_model()
    model.compile("adam", "mse")
    model.fit(*_xy(), epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(os.path.join(tmp, MODEL))
        with zipfile.ZipFile(os.path.join(tmp, MODEL)) as zf:
            return {name: zf.read(name) for name in zf.namelist()}


@functools.cache
def keras_members() -> dict[str, bytes]:
    """The members of a genuine Keras 3 ``.keras`` (compiled, one step trained)."""
    import tempfile

    import keras

    model = keras.Sequential([keras.Input((4, 3)), keras.layers.LSTM(2), keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(*_xy(), epochs=1, verbose=0)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(os.path.join(tmp, MODEL))
        with zipfile.ZipFile(os.path.join(tmp, MODEL)) as zf:
            return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path: Path, members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> None:
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _config(members: dict[str, bytes]) -> dict:
    return json.loads(members["config.json"])


def _layer(config: dict, class_name: str) -> dict:
    """The (first) layer entry of ``class_name`` in a Sequential config."""
    return next(e for e in config["config"]["layers"] if e["class_name"] == class_name)


# ----------------------------------------------------------------------------- builders
Builder = Callable[[Path], None]


def rnnkit_config(mutate: Callable[[dict, Path], None]) -> Builder:
    """An rnnkit ``.keras`` whose config.json ``mutate(config, folder)`` changed."""

    def build(folder: Path) -> None:
        members = dict(rnnkit_members())
        config = copy.deepcopy(_config(members))
        mutate(config, folder)
        members["config.json"] = json.dumps(config).encode()
        write_zip(folder / MODEL, members)

    return build


def keras_config(mutate: Callable[[dict, Path], None]) -> Builder:
    """A Keras 3 ``.keras`` whose config.json ``mutate(config, folder)`` changed."""

    def build(folder: Path) -> None:
        members = dict(keras_members())
        config = copy.deepcopy(_config(members))
        mutate(config, folder)
        members["config.json"] = json.dumps(config).encode()
        write_zip(folder / MODEL, members)

    return build


def rnnkit_member(
    name: str, data: Callable[[Path], bytes], method: int = zipfile.ZIP_DEFLATED
) -> Builder:
    """An rnnkit ``.keras`` with member ``name`` replaced by ``data(folder)``."""

    def build(folder: Path) -> None:
        write_zip(folder / MODEL, {**rnnkit_members(), name: data(folder)}, method)

    return build


def raw(data: Callable[[Path], bytes], name: str = MODEL) -> Builder:
    def build(folder: Path) -> None:
        (folder / name).write_bytes(data(folder))

    return build


def keras_h5(mutate: Callable[[Any, Path], None], inside_keras: bool = False) -> Builder:
    """Keras 3 weights (``w.weights.h5``, or ``model.weights.h5`` inside a ``.keras``) that
    ``mutate(h5 file, folder)`` changed."""

    def build(folder: Path) -> None:
        import h5py

        buffer = io.BytesIO(keras_members()["model.weights.h5"])
        with h5py.File(buffer, "r+") as f:
            if not inside_keras:
                del f["optimizer"]  # a weights file holds no optimizer (Keras' save_weights)
            mutate(f, folder)
        if inside_keras:
            write_zip(folder / MODEL, {**keras_members(), "model.weights.h5": buffer.getvalue()})
        else:
            (folder / "w.weights.h5").write_bytes(buffer.getvalue())

    return build


def _outside(folder: Path) -> Path:
    outside = folder / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.bin").write_bytes(SECRET)
    return outside


def _outside_h5(folder: Path) -> Path:
    import h5py

    path = _outside(folder) / "secret.h5"
    with h5py.File(path, "w") as f:
        f["d"] = np.frombuffer(SECRET, dtype="float32")[:6].reshape(3, 2)
    return path


KERNEL = "layers/lstm/cell/vars/0"  # (3, 8)
DENSE_BIAS = "layers/dense/vars/1"  # (1,)


def _replace(f: Any, path: str, make: Callable[[Any, str], None]) -> None:
    parent, name = path.rsplit("/", 1)
    del f[path]
    make(f[parent], name)


# ----------------------------------------------------------------------------- zip forging
def _patch_sizes(data: bytes, name: str, file_size: int, compress_size: int | None = None) -> bytes:
    """Zip bytes whose central directory declares other sizes for member ``name``."""
    out = bytearray(data)
    encoded = name.encode()
    at = out.find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", out, at + 28)[0]
        if bytes(out[at + 46 : at + 46 + name_len]) == encoded:
            if compress_size is not None:
                struct.pack_into("<I", out, at + 20, compress_size)
            struct.pack_into("<I", out, at + 24, file_size)
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


def _set_flag(
    data: bytes, name: str, *, flag: int | None = None, method: int | None = None
) -> bytes:
    out = bytearray(data)
    encoded = name.encode()
    for signature, flag_at, method_at, name_at, len_at in (
        (b"PK\x01\x02", 8, 10, 46, 28),
        (b"PK\x03\x04", 6, 8, 30, 26),
    ):
        at = out.find(signature)
        while at != -1:
            name_len = struct.unpack_from("<H", out, at + len_at)[0]
            if bytes(out[at + name_at : at + name_at + name_len]) == encoded:
                if flag is not None:
                    struct.pack_into("<H", out, at + flag_at, flag)
                if method is not None:
                    struct.pack_into("<H", out, at + method_at, method)
            at = out.find(signature, at + 4)
    return bytes(out)


def _zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _safetensors(header: dict, body: bytes = b"") -> bytes:
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + body


# ----------------------------------------------------------------------------- backups
@functools.cache
def backup_members() -> dict[str, bytes]:
    """The members of a genuine backup of the small model (one save after 1 batch)."""
    import tempfile

    from rnnkit.callbacks import BackupAndRestore, Callback

    class Stop(Callback):
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            raise KeyboardInterrupt

    with tempfile.TemporaryDirectory() as tmp:
        model = small_model()
        model.compile("adam", "mse")
        backup = BackupAndRestore(tmp, save_freq=1, delete_checkpoint=False)
        with contextlib.suppress(KeyboardInterrupt):
            model.fit(*_xy(), batch_size=2, epochs=1, verbose=0, callbacks=[backup, Stop()])
        with zipfile.ZipFile(backup.backup_path) as zf:
            return {name: zf.read(name) for name in zf.namelist()}


def backup_state(mutate: Callable[[dict], None]) -> Builder:
    def build(folder: Path) -> None:
        members = dict(backup_members())
        state = json.loads(members["state.json"])
        mutate(state)
        members["state.json"] = json.dumps(state).encode()
        (folder / "backup").mkdir()
        write_zip(folder / "backup" / "backup.zip", members)

    return build


def backup_file(name: str, data: Callable[[Path], bytes]) -> Builder:
    def build(folder: Path) -> None:
        (folder / "backup").mkdir()
        (folder / "backup" / name).write_bytes(data(folder))

    return build


# ----------------------------------------------------------------------------- loaders
def load_model(folder: str, **kwargs: Any) -> None:
    import torch

    import rnnkit

    model = rnnkit.saving.load_model(os.path.join(folder, MODEL), **kwargs)
    model(torch.zeros(2, 4, 3))  # a first call: where compiled loops would compile


def load_weights(folder: str, name: str = "w.weights.h5") -> None:
    small_model().load_weights(os.path.join(folder, name))


def resume_backup(folder: str) -> None:
    from rnnkit.callbacks import BackupAndRestore

    model = small_model()
    model.compile("adam", "mse")
    backup = BackupAndRestore(os.path.join(folder, "backup"), save_freq=1)
    model.fit(*_xy(), batch_size=2, epochs=1, verbose=0, callbacks=[backup])


@dataclass(frozen=True)
class Case:
    build: Builder
    expect: str  # a regular expression the refusal's message must match (the cause)
    load: Callable[[str], None] = load_model


# ----------------------------------------------------------------------------- the attacks
def _lstm(config: dict) -> dict:
    return _layer(config, "LSTM")["config"]


def _set_lstm(key: str, value: Any) -> Callable[[dict, Path], None]:
    def mutate(config: dict, folder: Path) -> None:
        _lstm(config)[key] = value(folder) if callable(value) else value

    return mutate


def _lambda_code() -> dict:
    code = marshal.dumps((lambda x: __import__("os").system("touch SENTINEL")).__code__)
    return {
        "class_name": "__lambda__",
        "config": {"code": base64.b64encode(code).decode(), "defaults": None, "closure": None},
    }


def _add_layer(entry: dict) -> Callable[[dict, Path], None]:
    def mutate(config: dict, folder: Path) -> None:
        config["config"]["layers"].insert(-1, entry)

    return mutate


def _sentinel(folder: Path) -> str:
    return str(folder / "SENTINEL")


def _deep(n: int) -> Callable[[dict, Path], None]:
    def mutate(config: dict, folder: Path) -> None:
        value: Any = 0
        for _ in range(n):
            value = [value]
        _lstm(config)["units"] = value

    return mutate


def _replace_text(old: str, new: str) -> Builder:
    def build(folder: Path) -> None:
        members = dict(rnnkit_members())
        members["config.json"] = members["config.json"].replace(old.encode(), new.encode(), 1)
        write_zip(folder / MODEL, members)

    return build


def _dense_input(config: dict, folder: Path) -> None:
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 30000, 30000]


def _long_stack(config: dict, folder: Path) -> None:
    """50,000 fixed time steps through 50 stacked cells: a hang if loading runs the loop."""
    config["config"]["layers"][0]["config"]["batch_shape"] = [None, 50000, 3]
    cells = [
        {"class_name": "SimpleRNNCell", "config": {"units": 2, "name": f"c{i}"}} for i in range(50)
    ]
    _layer(config, "LSTM").update(
        {
            "class_name": "RNN",
            "config": {
                "name": "stack",
                "cell": {"class_name": "StackedRNNCells", "config": {"cells": cells}},
            },
        }
    )


def _optimizer_json(change: Callable[[dict], None]) -> Builder:
    def data(folder: Path) -> bytes:
        info = json.loads(rnnkit_members()["optimizer.json"])
        change(info)
        return json.dumps(info).encode()

    return rnnkit_member("optimizer.json", data)


def _weights_header(header: dict, body: bytes = b"") -> Builder:
    return rnnkit_member("model.weights.safetensors", lambda folder: _safetensors(header, body))


def _h5_dataset(make: Callable[[Any, str, Path], None], path: str = KERNEL, **kw: Any) -> Builder:
    def mutate(f: Any, folder: Path) -> None:
        _replace(f, path, lambda group, name: make(group, name, folder))

    return keras_h5(mutate, **kw)


def _external_link(group: Any, name: str, folder: Path) -> None:
    import h5py

    group[name] = h5py.ExternalLink(str(_outside_h5(folder)), "/d")


def _soft_link(group: Any, name: str, folder: Path) -> None:
    import h5py

    group[name] = h5py.SoftLink("/" + DENSE_BIAS)


def _soft_loop(group: Any, name: str, folder: Path) -> None:
    import h5py

    group[name] = h5py.SoftLink(f"{group.name}/{name}")


def _external_storage(group: Any, name: str, folder: Path) -> None:
    secret = _outside(folder) / "secret.bin"
    group.create_dataset(name, shape=(3, 8), dtype="float32", external=[(str(secret), 0, 96)])


def _virtual(group: Any, name: str, folder: Path) -> None:
    import h5py

    layout = h5py.VirtualLayout(shape=(3, 2), dtype="float32")
    layout[:] = h5py.VirtualSource(str(_outside_h5(folder)), "d", shape=(3, 2))
    group.create_virtual_dataset(name, layout)


def _typed(dtype: Any, value: Any = None) -> Callable[[Any, str, Path], None]:
    def make(group: Any, name: str, folder: Path) -> None:
        group[name] = np.zeros((3, 8), dtype=dtype) if value is None else value

    return make


def _huge(shape: tuple[int, ...]) -> Callable[[Any, str, Path], None]:
    def make(group: Any, name: str, folder: Path) -> None:
        group.create_dataset(name, shape=shape, dtype="float32", chunks=True)

    return make


def _legacy_h5(folder: Path, name: str, attr: str) -> None:
    import h5py

    with h5py.File(folder / name, "w") as f:
        f.attrs[attr] = "{}" if attr == "model_config" else np.array([b"dense"])


def _numbered_members(n: int) -> Callable[[Path], bytes]:
    def data(folder: Path) -> bytes:
        return _zip_bytes({**rnnkit_members(), **{f"pad/{i}": b"" for i in range(n)}})

    return data


def _big_member_claim(folder: Path) -> bytes:
    """A member that declares 1.5 GB from 16 MB (ratio 94, under the ratio cap)."""
    members = dict(rnnkit_members())
    members["extra.bin"] = b"x"
    data = _zip_bytes(members)
    return _patch_sizes(data, "extra.bin", 1_500_000_000, 16_000_000)


def _zip_bomb(folder: Path) -> bytes:
    return _zip_bytes({**rnnkit_members(), "bomb.bin": bytes(50 * 2**20)})


def _traversal(name: str) -> Callable[[Path], bytes]:
    def data(folder: Path) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            for member, content in rnnkit_members().items():
                zf.writestr(member, content)
            zf.writestr(zipfile.ZipInfo(name), b"evil")
        return buffer.getvalue()

    return data


def _duplicate_member(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for member, content in rnnkit_members().items():
            zf.writestr(member, content)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zf.writestr("config.json", b"{}")
    return buffer.getvalue()


def _pickle_backup(folder: Path) -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"format": "x", "code": print}, buffer)
    return buffer.getvalue()


def _keras_lambda(config: dict, folder: Path) -> None:
    _add_layer(
        {
            "module": "keras.layers",
            "class_name": "Lambda",
            "config": {"name": "evil", "function": _lambda_code()},
        }
    )(config, folder)


def _zip_of(members: Callable[[], dict[str, bytes]]) -> Callable[[Path], bytes]:
    return lambda folder: _zip_bytes(members())


CASES: dict[str, Case] = {
    # ---- code execution through loop compilation (issue: RCE with safe_mode=True)
    "compile_cpp_march": Case(
        rnnkit_config(_set_lstm("compile", {"options": {"cpp.march": "x; touch SENTINEL"}})),
        r"compile: a file may only switch loop compilation",
    ),
    "compile_debug_dir": Case(
        rnnkit_config(
            _set_lstm(
                "compile",
                lambda f: {"options": {"trace.enabled": True, "trace.debug_dir": _sentinel(f)}},
            )
        ),
        r"compile: a file may only switch loop compilation",
    ),
    "compile_backend_plugin": Case(
        rnnkit_config(_set_lstm("compile", {"backend": "evil_entry_point"})),
        r"compile: a file may only switch",
    ),
    "compile_unknown_mode": Case(
        rnnkit_config(_set_lstm("compile", {"mode": "evil"})), r"compile: a file may only"
    ),
    "compile_as_string": Case(
        rnnkit_config(_set_lstm("compile", "max-autotune")), r"compile: a file may only"
    ),
    "compile_loop_options": Case(
        rnnkit_config(_set_lstm("compile_loop", {"options": {"cpp.cxx": ["sh", "-c", "id"]}})),
        r"compile_loop: a file may only",
    ),
    "compile_in_keras_file": Case(
        keras_config(_set_lstm("compile", {"options": {"cpp.march": "x; touch SENTINEL"}})),
        r"compile: a file may only switch",
    ),
    "compile_in_nested_cell": Case(
        rnnkit_config(
            lambda c, f: _layer(c, "LSTM").update(
                {
                    "class_name": "Bidirectional",
                    "config": {
                        "name": "bi",
                        "layer": {
                            "class_name": "LSTM",
                            "config": {"units": 2, "compile": {"options": {"x": 1}}},
                        },
                    },
                }
            )
        ),
        r"compile: a file may only",
    ),
    # ---- Python code in configs (Keras CVE-2024-3660 / CVE-2025-1550 classes)
    "lambda_layer_marshal": Case(
        rnnkit_config(
            _add_layer(
                {"class_name": "Lambda", "config": {"name": "l", "function": _lambda_code()}}
            )
        ),
        r"'Lambda' object, i\.e\. Python code",
    ),
    "lambda_in_keras_file": Case(keras_config(_keras_lambda), r"Python code"),
    "lambda_as_activation": Case(
        rnnkit_config(_set_lstm("activation", _lambda_code())), r"'__lambda__' object"
    ),
    "function_object_by_module": Case(
        rnnkit_config(
            _set_lstm("activation", {"class_name": "function", "config": {"module": "os"}})
        ),
        r"'function' object, i\.e\. Python code",
    ),
    "function_named_eval": Case(
        rnnkit_config(_set_lstm("activation", {"class_name": "function", "config": "eval"})),
        r"layer 'lstm'.*activation: unknown activation 'eval'",
    ),
    "activation_builtin_name": Case(
        rnnkit_config(_set_lstm("activation", "__import__")), r"unknown activation '__import__'"
    ),
    "module_injection_rnnkit": Case(
        rnnkit_config(
            _add_layer({"module": "os", "class_name": "system", "config": {"command": "id"}})
        ),
        r"unknown layer class 'system'",
    ),
    "module_injection_keras": Case(
        keras_config(
            _add_layer({"module": "subprocess", "class_name": "Popen", "config": {"args": ["id"]}})
        ),
        r"Keras layer 'Popen'.*not supported",
    ),
    "registered_name_injection": Case(
        rnnkit_config(
            _add_layer({"class_name": "os>system", "registered_name": "os>system", "config": {}})
        ),
        r"unknown layer class 'os>system'",
    ),
    "class_name_is_a_list": Case(
        rnnkit_config(lambda c, f: _layer(c, "Dense").update(class_name=["os", "system"])),
        r"class_name must be a string",
    ),
    "model_class_dotted": Case(
        rnnkit_config(lambda c, f: c.update(class_name="os.system")),
        r"unknown model class 'os\.system'",
    ),
    "initializer_eval": Case(
        rnnkit_config(_set_lstm("kernel_initializer", {"class_name": "eval", "config": {}})),
        r"layer 'lstm'.*unknown initializer 'eval'",
    ),
    "regularizer_system": Case(
        rnnkit_config(_set_lstm("kernel_regularizer", "system")),
        r"layer 'lstm'.*kernel_regularizer: unknown regularizer 'system'",
    ),
    "initializer_seed_overflow": Case(
        rnnkit_config(
            _set_lstm(
                "kernel_initializer",
                {"class_name": "RandomNormal", "config": {"seed": 99999999999999999999}},
            )
        ),
        r"layer .lstm.: kernel_initializer.*seed must be None or an integer",
    ),
    "constraint_config_not_a_dict": Case(
        rnnkit_config(_set_lstm("kernel_constraint", {"class_name": "MaxNorm", "config": "x"})),
        r"config of the constraint 'MaxNorm' must be a dict",
    ),
    "dtype_attribute_name": Case(
        rnnkit_config(_set_lstm("dtype", "__class__")), r"dtype: unknown dtype '__class__'"
    ),
    "loss_class_eval": Case(
        rnnkit_config(
            lambda c, f: c["compile_config"].update(loss={"class_name": "eval", "config": {}})
        ),
        r"unknown loss or metric class 'eval'",
    ),
    "optimizer_class_system": Case(
        rnnkit_config(
            lambda c, f: c["compile_config"].update(
                optimizer={"class_name": "system", "config": {}}
            )
        ),
        r"optimizer",
    ),
    "vocabulary_file_string_lookup": Case(
        keras_config(
            _add_layer(
                {
                    "module": "keras.layers",
                    "class_name": "StringLookup",
                    "config": {"name": "s", "vocabulary": "/etc/passwd"},
                }
            )
        ),
        r"Keras layer 'StringLookup'.*not supported",
    ),
    "vocabulary_file_text_vectorization": Case(
        rnnkit_config(
            _add_layer(
                {
                    "class_name": "TextVectorization",
                    "config": {"name": "t", "vocabulary": "/etc/passwd"},
                }
            )
        ),
        r"unknown layer class 'TextVectorization'",
    ),
    # ---- HDF5 reaching outside the file (alone and inside a .keras)
    "h5_external_link": Case(
        _h5_dataset(_external_link), r"'layers/lstm/cell/vars/0' is a ExternalLink", load_weights
    ),
    "h5_external_link_in_keras": Case(
        _h5_dataset(_external_link, inside_keras=True), r"is a ExternalLink"
    ),
    "h5_soft_link_alias": Case(_h5_dataset(_soft_link), r"is a SoftLink", load_weights),
    "h5_soft_link_loop": Case(_h5_dataset(_soft_loop), r"is a SoftLink", load_weights),
    "h5_external_storage": Case(
        _h5_dataset(_external_storage), r"external storage layout", load_weights
    ),
    "h5_external_storage_in_keras": Case(
        _h5_dataset(_external_storage, inside_keras=True), r"external storage layout"
    ),
    "h5_virtual_dataset": Case(_h5_dataset(_virtual), r"virtual layout", load_weights),
    "h5_string_dataset": Case(
        _h5_dataset(_typed(None, np.array([b"abc"] * 24).reshape(3, 8))),
        r"dtype \|S3; weights must be real numbers",
        load_weights,
    ),
    "h5_complex_dataset": Case(
        _h5_dataset(_typed("complex64")), r"dtype complex64; weights must be real", load_weights
    ),
    "h5_integer_for_float_weight": Case(
        _h5_dataset(_typed("int32")),
        r"dtype int32.*float weights must be stored as floats",
        load_weights,
    ),
    "h5_wrong_shape": Case(
        _h5_dataset(lambda g, n, f: g.create_dataset(n, data=np.zeros((8, 3), "float32"))),
        r"has shape \(8, 3\).*expects \(3, 8\)",
        load_weights,
    ),
    "h5_huge_layer_dataset": Case(
        _h5_dataset(_huge((10**6, 10**4))), r"more than 1073741824 bytes", load_weights
    ),
    "h5_huge_optimizer_dataset": Case(
        keras_h5(
            lambda f, folder: f.create_dataset(
                "optimizer/vars/99", shape=(10**5, 10**5), dtype="float32", chunks=True
            ),
            inside_keras=True,
        ),
        r"more than 1073741824 bytes",
        functools.partial(load_model, compile=False),
    ),
    "h5_rank_9": Case(
        _h5_dataset(_typed("float32", np.zeros((1,) * 9, "float32"))),
        r"9 dimensions",
        load_weights,
    ),
    "h5_extra_weights": Case(
        keras_h5(lambda f, folder: f.create_dataset("layers/evil/vars/0", data=np.zeros(3))),
        r"has no place for: \['layers/evil/vars/0'\]",
        load_weights,
    ),
    "zip_named_weights_h5": Case(
        raw(lambda folder: _zip_bytes(rnnkit_members()), "w.weights.h5"),
        r"is a zip archive .*not an HDF5 weights file",
        load_weights,
    ),
    "legacy_keras2_model_h5": Case(
        lambda folder: _legacy_h5(folder, MODEL, "model_config"),
        r"HDF5 file, not a zip archive: a legacy Keras 2",
    ),
    "legacy_keras2_weights_h5": Case(
        lambda folder: _legacy_h5(folder, "w.weights.h5", "layer_names"),
        r"legacy Keras 2 HDF5 file",
        load_weights,
    ),
    "h5_garbage": Case(
        raw(lambda folder: b"\x89HDF\r\n\x1a\n" + b"\x00" * 64, "w.weights.h5"),
        r"not a valid HDF5 file",
        load_weights,
    ),
    # ---- zip archives
    "zip_bomb_ratio": Case(raw(_zip_bomb), r"expands 5\d\dx|expands \d+x.*zip bomb"),
    "zip_member_declares_1_5_gb": Case(
        raw(_big_member_claim), r"more than 1073741824 bytes in all"
    ),
    "zip_too_many_members": Case(raw(_numbered_members(1000)), r"members, more than the limit"),
    "zip_path_traversal": Case(raw(_traversal("../../evil.txt")), r"member names must be relative"),
    "zip_absolute_path": Case(
        raw(_traversal("/etc/cron.d/evil")), r"member names must be relative"
    ),
    "zip_duplicate_member": Case(raw(_duplicate_member), r"'config.json' appears twice"),
    "zip_encrypted_member": Case(
        raw(lambda f: _set_flag(_zip_bytes(rnnkit_members()), "config.json", flag=1)),
        r"'config.json' is encrypted",
    ),
    "zip_unknown_compression": Case(
        raw(lambda f: _set_flag(_zip_bytes(rnnkit_members()), "config.json", method=99)),
        r"compression method 99",
    ),
    "zip_truncated": Case(
        raw(lambda f: _zip_bytes(rnnkit_members())[:300]), r"not a valid model file"
    ),
    "not_a_zip": Case(raw(lambda f: b"hello world"), r"not a valid model file"),
    # ---- JSON
    "json_67_mb_config": Case(
        rnnkit_member("config.json", lambda f: b" " * (67 * 2**20) + b"{}", zipfile.ZIP_STORED),
        r"more than the limit of 16777216",
    ),
    "json_600_deep": Case(rnnkit_config(_deep(600)), r"nested deeper than the limit of 64"),
    "json_5000_digit_int": Case(
        _replace_text('"units": 2', '"units": ' + "9" * 5000), r"integer of 5000 digits"
    ),
    "json_nan": Case(_replace_text('"units": 2', '"units": NaN'), r"NaN is not a JSON value"),
    "json_duplicate_key": Case(
        _replace_text('"units": 2', '"units": 2, "units": 10000000'), r"'units' appears twice"
    ),
    "json_invalid_utf8": Case(
        rnnkit_member("config.json", lambda f: b'{"class_name": "\xff"}'), r"not valid UTF-8"
    ),
    "json_not_an_object": Case(rnnkit_member("config.json", lambda f: b"[1, 2]"), r"must hold"),
    "optimizer_iterations_1e400": Case(
        rnnkit_member(
            "optimizer.json",
            lambda f: rnnkit_members()["optimizer.json"].replace(
                b'"iterations": ', b'"iterations": 1e400, "was": '
            ),
        ),
        r"the number '1e400' is out of range",
    ),
    "optimizer_iterations_negative": Case(
        _optimizer_json(lambda info: info.update(iterations=-5)), r"iterations must be an integer"
    ),
    "optimizer_extra_state_malformed": Case(
        _optimizer_json(lambda info: info.update(extra_state={"0": 5})),
        r"extra_state must map",
    ),
    "metadata_wrong_format": Case(
        rnnkit_member("metadata.json", lambda f: b'{"format": "pickle"}'),
        r"metadata.json does not describe",
    ),
    # ---- safetensors
    "safetensors_many_zero_size": Case(
        _weights_header(
            {str(i): {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(100_001)}
        ),
        r"100001 tensors, more than the limit of 100000",
    ),
    "safetensors_1_5m_tensors": Case(
        _weights_header(
            {str(i): {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(400_000)}
        ),
        r"more than the file holds or the limit of 16777216",
    ),
    "safetensors_unknown_dtype": Case(
        _weights_header({"0/w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"x"),
        r"dtype 'F8_E4M3'; expected one of",
    ),
    "safetensors_integer_weights": Case(
        _weights_header({"0/w": {"dtype": "I32", "shape": [1], "data_offsets": [0, 4]}}, b"xxxx"),
        r"dtype 'I32'",
    ),
    "safetensors_offsets_outside": Case(
        _weights_header(
            {"0/w": {"dtype": "F32", "shape": [10**9], "data_offsets": [0, 4 * 10**9]}}
        ),
        r"do not fit its shape",
    ),
    "safetensors_overlap": Case(
        _weights_header(
            {
                "0/w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "1/w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            },
            b"xxxx",
        ),
        r"overlap or leave gaps",
    ),
    "safetensors_header_too_long": Case(
        rnnkit_member("model.weights.safetensors", lambda f: struct.pack("<Q", 2**40) + b"{}"),
        r"header declares",
    ),
    "safetensors_rank_9": Case(
        _weights_header(
            {"0/w": {"dtype": "F32", "shape": [1] * 9, "data_offsets": [0, 4]}}, b"xxxx"
        ),
        r"invalid shape",
    ),
    "safetensors_weights_file_oversized": Case(
        raw(lambda f: _safetensors({}, b"\x00" * (20 * 2**20)), "w.weights.safetensors"),
        r"the file does not belong to this model",
        functools.partial(load_weights, name="w.weights.safetensors"),
    ),
    # ---- architecture bombs
    "dense_units_1e9": Case(
        rnnkit_config(lambda c, f: _layer(c, "Dense")["config"].update(units=10**9)),
        r"layer 'dense': weight 'kernel' would allocate a weight of shape \(2, 1000000000\)",
    ),
    "lstm_units_1e6": Case(
        rnnkit_config(_set_lstm("units", 10**6)),
        r"would allocate a weight of shape",
    ),
    "input_30000_by_30000": Case(rnnkit_config(_dense_input), r"more than the limit of 16777216"),
    "input_negative_size": Case(
        rnnkit_config(
            lambda c, f: c["config"]["layers"][0]["config"].update(batch_shape=[None, -4, 3])
        ),
        r"invalid shape",
    ),
    "input_rank_20": Case(
        rnnkit_config(
            lambda c, f: c["config"]["layers"][0]["config"].update(batch_shape=[None] + [1] * 20)
        ),
        r"invalid shape",
    ),
    "keras_dense_units_1e9": Case(
        keras_config(lambda c, f: _layer(c, "Dense")["config"].update(units=10**9)),
        r"would allocate a weight of shape",
    ),
    "time_bomb_50000_steps_50_cells": Case(
        rnnkit_config(_long_stack), r"holds \d+ weights, but the model"
    ),
    # ---- backups
    "backup_pickle": Case(
        backup_file("backup.pt", _pickle_backup),
        r"old torch\.save \(pickle\) format",
        resume_backup,
    ),
    "backup_zip_bomb": Case(
        backup_file(
            "backup.zip",
            lambda f: _zip_bytes({**backup_members(), "state.json": b" " * (200 * 2**20)}),
        ),
        r"expands|more than the limit",
        resume_backup,
    ),
    "backup_missing_keys": Case(
        backup_state(lambda s: s.pop("rng")), r"the backup lacks \['rng'\]", resume_backup
    ),
    "backup_huge_batch_count": Case(
        backup_state(
            lambda s: s["data"].update(batches=10**15) if s["data"] else s.update(step=10**15)
        ),
        r"must be a count|a count of 'batches'",
        resume_backup,
    ),
    "backup_rng_wrong_size": Case(
        backup_state(lambda s: s["rng"]["python"]["__tuple__"][1]["__tuple__"].pop()),
        r"Python's generator state has the wrong layout",
        resume_backup,
    ),
    "backup_not_a_backup": Case(
        backup_state(lambda s: s.update(format="other")), r"not a backup written by", resume_backup
    ),
    "backup_tensor_reference_missing": Case(
        backup_state(lambda s: s["model"].__setitem__(0, {"__tensor__": "99999"})),
        r"names a tensor '99999' it lacks",
        resume_backup,
    ),
    "backup_json_deep": Case(
        backup_state(lambda s: s.update(extra=functools.reduce(lambda v, _: [v], range(200), 0))),
        r"nested deeper",
        resume_backup,
    ),
}


def build_case(name: str, folder: Path) -> None:
    CASES[name].build(folder)


def run_case(name: str, folder: str) -> None:
    CASES[name].load(folder)
