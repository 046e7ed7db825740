"""Data-parallel fit on torch.distributed: two gloo processes on the CPU end with the weights
of one process training on the whole batches."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rnnkit

# One rank of the run, started the way torchrun starts it (RANK, WORLD_SIZE, MASTER_ADDR,
# MASTER_PORT in the environment). Each rank initialises its model from its own seed: fit
# must start every rank from rank 0's weights.
SCRIPT = """
import json, os, sys
import numpy as np
import torch
import rnnkit
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import build, data

torch.set_num_threads(1)
rnnkit.distributed.initialize()
rank = rnnkit.distributed.rank()
out = sys.argv[1]
model = build(seed=rank)
(x, y), val = data()
history = model.fit(
    x, y, batch_size=3, epochs=2, shuffle=False, validation_data=val, verbose=2,
    callbacks=[rnnkit.callbacks.ModelCheckpoint(
        os.path.join(out, f"rank{rank}", "w.weights.safetensors"), save_weights_only=True
    )],
)
np.savez(os.path.join(out, f"weights{rank}.npz"), *model.get_weights())
with open(os.path.join(out, f"history{rank}.json"), "w") as f:
    json.dump(history.history, f)
evaluated = model.evaluate(*val, batch_size=4, verbose=0)
print("evaluate", json.dumps(evaluated), flush=True)
# Leave together, then skip interpreter finalization: Gloo's worker threads can still hold
# tensors while Python tears down, and a rank then dies with SIGABRT ("terminate called
# without an active exception") after its work is done, more often on a loaded machine.
torch.distributed.barrier()
torch.distributed.destroy_process_group()
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
"""

COMMON = """
import numpy as np
import torch
import rnnkit
from rnnkit import layers


def build(seed):
    torch.manual_seed(seed)
    model = rnnkit.Sequential([layers.Input(shape=(4, 2)), layers.LSTM(5), layers.Dense(1)])
    model.compile(rnnkit.optimizers.SGD(learning_rate=0.1), "mse", metrics=["mae"])
    return model


def data():
    # 10 samples in batches of 3: each rank gets 2 + 1 samples, and of the last batch
    # (1 sample) rank 1 gets none
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 4, 2)).astype("float32")
    xv = rng.standard_normal((5, 4, 2)).astype("float32")
    return (x, x.sum(axis=(1, 2))[:, None]), (xv, xv.sum(axis=(1, 2))[:, None])
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("distributed")
    (folder / "train.py").write_text(SCRIPT)
    (folder / "common.py").write_text(COMMON)
    return folder


@pytest.fixture(scope="module")
def ranks(folder: Path) -> list[str]:
    """Run the two ranks; their stdout."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    env["WORLD_SIZE"] = "2"
    procs = [
        subprocess.Popen(
            [sys.executable, str(folder / "train.py"), str(folder)],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    results = []
    try:
        for proc in procs:
            results.append(proc.communicate(timeout=120))
    finally:  # never leave a rank running (or its pipes open) into the next test
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for rank, (proc, (_, err)) in enumerate(zip(procs, results)):
        assert proc.returncode == 0, f"rank {rank} exited with {proc.returncode}:\n{err}"
    return [out for out, _ in results]


@pytest.fixture(scope="module")
def single(folder: Path) -> tuple[rnnkit.Model, dict, list[float], Any]:
    """One process training rank 0's initial model on the whole batches."""
    sys.path.insert(0, str(folder))
    try:
        import common
    finally:
        sys.path.remove(str(folder))
    model = common.build(seed=0)
    (x, y), val = common.data()
    history = model.fit(x, y, batch_size=3, epochs=2, shuffle=False, validation_data=val, verbose=0)
    return model, history.history, model.evaluate(*val, batch_size=4, verbose=0), common


def _weights(path: Path) -> list[np.ndarray]:
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def test_two_ranks_end_with_the_weights_of_one_process_on_the_whole_batches(
    ranks: list[str], single: tuple, folder: Path
) -> None:
    model = single[0]
    expected = model.get_weights()
    rank0, rank1 = _weights(folder / "weights0.npz"), _weights(folder / "weights1.npz")
    for w0, w1, e in zip(rank0, rank1, expected):
        assert np.array_equal(w0, w1)  # the all-reduced gradients are the same on each rank
        np.testing.assert_allclose(w0, e, rtol=0, atol=1e-6)
    # rank 1 started from other weights (its own seed): fit broadcast rank 0's
    common = single[3]
    assert not np.array_equal(common.build(1).get_weights()[0], common.build(0).get_weights()[0])


def test_metrics_are_reduced_across_ranks(ranks: list[str], single: tuple, folder: Path) -> None:
    _, history, evaluated, _ = single
    for rank in range(2):
        logged = json.loads((folder / f"history{rank}.json").read_text())
        assert sorted(logged) == sorted(history) == ["loss", "mae", "val_loss", "val_mae"]
        for key, values in history.items():
            np.testing.assert_allclose(logged[key], values, rtol=1e-5, atol=1e-6)
        line = next(x for x in ranks[rank].splitlines() if x.startswith("evaluate"))
        np.testing.assert_allclose(json.loads(line.split(" ", 1)[1]), evaluated, rtol=1e-5)


def test_only_rank_0_prints_and_saves(ranks: list[str], folder: Path) -> None:
    assert "Epoch 1/2" in ranks[0] and "Epoch 2/2" in ranks[0]
    assert ranks[1].splitlines()[0].startswith("evaluate")  # nothing printed before
    assert (folder / "rank0" / "w.weights.safetensors").exists()
    assert not (folder / "rank1").exists()


def test_helpers_without_a_process_group() -> None:
    assert not rnnkit.distributed.is_active()
    assert (rnnkit.distributed.rank(), rnnkit.distributed.world_size()) == (0, 1)
    assert rnnkit.distributed.is_chief()
    assert rnnkit.distributed.any_rank(True) and not rnnkit.distributed.any_rank(False)


def test_initialize_outside_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert rnnkit.distributed.initialize() is False  # plain `python train.py`: one process
    monkeypatch.setenv("MASTER_PORT", "29500")
    with pytest.raises(RuntimeError, match=r"environment variables \['RANK', 'WORLD_SIZE'"):
        rnnkit.distributed.initialize()
