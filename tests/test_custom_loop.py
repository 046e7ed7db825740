"""An rnnkit model in the user's own training loop: a plain PyTorch loop gives what ``fit``
gives, and ``torch.nn.parallel.DistributedDataParallel`` over two Gloo processes ends with
the weights of one process training on the whole batches."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np

import rnnkit

# One rank: DDP around the model, half of each batch, a hand-written loop.
RANK_SCRIPT = """
import os, sys
import numpy as np
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import build, data, steps

torch.set_num_threads(1)
torch.distributed.init_process_group("gloo")
rank = torch.distributed.get_rank()
model = build(seed=0)
ddp = torch.nn.parallel.DistributedDataParallel(model)
x, y = data()
half = len(x) // 2
steps(ddp, x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half])
if rank == 0:
    np.savez(sys.argv[1], *model.get_weights())
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
    rnnkit.clear_session()
    torch.manual_seed(seed)
    return rnnkit.Sequential(
        [layers.Input(shape=(5, 3)), layers.GRU(6), layers.Dropout(0.0), layers.Dense(1)]
    )


def data():
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.standard_normal((8, 5, 3)), dtype=torch.float32)
    return x, x.sum(dim=(1, 2))[:, None]


def steps(model, x, y, n=4):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(n):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _common(folder: Path) -> dict:
    (folder / "common.py").write_text(COMMON)
    namespace: dict = {}
    exec(compile(COMMON, "common.py", "exec"), namespace)
    return namespace


def test_plain_pytorch_loop_equals_fit(tmp_path):
    common = _common(tmp_path)
    x, y = common["data"]()
    mine = common["build"](0)
    common["steps"](mine, x, y)
    model = common["build"](0)
    model.compile(optimizer=rnnkit.optimizers.SGD(learning_rate=0.05), loss="mse")
    model.fit(x.numpy(), y.numpy(), batch_size=8, epochs=4, shuffle=False, verbose=0)
    for a, b in zip(mine.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_distributed_data_parallel_in_a_user_loop_equals_one_process(tmp_path):
    common = _common(tmp_path)
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    env["WORLD_SIZE"] = "2"
    out = tmp_path / "weights.npz"
    procs = [
        subprocess.Popen(
            [sys.executable, str(tmp_path / "rank.py"), str(out)],
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
    finally:  # never leave a rank running into the next test
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for rank, (proc, (_, err)) in enumerate(zip(procs, results)):
        assert proc.returncode == 0, f"rank {rank} exited with {proc.returncode}:\n{err}"
    x, y = common["data"]()
    single = common["build"](0)
    common["steps"](single, x, y)
    saved = np.load(out)
    for i, expected in enumerate(single.get_weights()):
        np.testing.assert_allclose(saved[f"arr_{i}"], expected, rtol=1e-5, atol=1e-6)
