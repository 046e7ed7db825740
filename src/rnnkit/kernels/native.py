"""The native step loops of the manual-backward kernel: the LSTM and GRU recurrences in C.

The manual-backward kernel (:mod:`rnnkit.kernels.manual_backward`) runs its time loop in
Python: about 15 small torch calls per step, forward and backward. On a CPU, for the LSTM and
GRU configurations it runs (recurrent dropout, other activations, masks with holes, GRU
``reset_after=False``, and a CPU GRU, which torch runs without oneDNN), this module runs the
same loop in C instead (``csrc/recurrence.c``): per step one BLAS ``gemm`` and one pass of
fused gate maths, forward and backward, with no Python between steps. The maths, layouts and
the hand-written backward are those of :class:`rnnkit.kernels.manual_backward_cells.LSTM` and
``GRU``; ``tests/test_native.py`` checks that both give the same outputs, states and
gradients, and float64 ``gradcheck``.

How it is built. At first use the C file is compiled with the system C compiler
(``cc -O3 -march=native -fopenmp``, about a second) into rnnkit's cache directory
(``$RNNKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/rnnkit``, else ``~/.cache/rnnkit``), under a
name that hashes the source, the flags and the CPU, and loaded with ``ctypes``. The matrix
products call the BLAS ``sgemm_``/``dgemm_`` that torch's CPU library exports (MKL on x86-64
builds), so the C file needs no torch header. With ``-fopenmp`` each call splits the batch
into one chunk of rows per thread of torch's own OpenMP team (torch's ``libgomp.so.1`` is
already loaded, and the loader hands this library that copy), and each thread runs the
whole time loop, its matrix products included, on its rows (the rows' recurrences are
independent; batches under 32 rows stay in one chunk); a compiler without OpenMP builds the
same loops for one thread, and the kernel report says so.

When it runs: :func:`blocker` is the one capability check. It returns why the native loop
cannot run a call (or None): not an LSTM, a device other than the CPU, a dtype other than
float32/float64, an activation outside :data:`ACTIVATIONS`, per-gate recurrent dropout masks,
``RNNKIT_NATIVE=0`` in the environment, no C compiler, a failed build, or no BLAS in torch's
library. The kernel dispatch reports the answer in ``layer.last_kernel_choice.reason``; a
failed build also warns once.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from rnnkit import activations
from rnnkit._eager import eager
from rnnkit.kernels import manual_backward_cells as _cells

Tensor = torch.Tensor

ACTIVATIONS = {"linear": 0, "tanh": 1, "sigmoid": 2, "hard_sigmoid": 3, "relu": 4}
"""The activations the C loop computes (codes shared with ``csrc/lstm.c``)."""

_SOURCE = Path(__file__).with_name("csrc") / "recurrence.c"
_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fPIC", "-shared")
_OPENMP = "-fopenmp"  # row chunks on torch's OpenMP threads (see csrc/recurrence.c)
_DISABLE_ENV = "RNNKIT_NATIVE"


def _activation_code(identifier: Any) -> int | None:
    found = activations.info(identifier, torch_native=True)
    return None if found is None else ACTIVATIONS.get(found.name)


def _opaque(t: Tensor) -> bool:
    """Whether ``t`` has no plain CPU memory to hand to C: a fake or meta tensor (shape
    inference, ``torch.export``), a functorch wrapper (``vmap``, ``torch.func.grad``) or
    another tensor subclass."""
    return (
        type(t) not in (torch.Tensor, torch.nn.Parameter)
        or t.device.type != "cpu"
        or torch._C._functorch.is_functorch_wrapped_tensor(t)
    )


def blocker(
    kind: str, activation: Any, recurrent_activation: Any, device: torch.device, dtype: Any,
    recurrent_dropout_mask: Tensor | None = None, tensors: tuple[Tensor | None, ...] = (),
) -> str | None:  # fmt: skip
    """Why the native loop cannot run this call, or None when it can (the one check).

    ``tensors``: the call's tensors when they are known (the kernel checks them; the
    dispatch, which asks before, passes none)."""
    if kind not in ("lstm", "gru"):
        return f"the native loop runs LSTM and GRU only, not {kind}"
    if device.type != "cpu":
        return f"the native loop runs on the CPU, the inputs are on {device.type}"
    if dtype not in (torch.float32, torch.float64):
        return f"the native loop runs float32 and float64, not {dtype}"
    if torch.is_autocast_enabled("cpu"):
        return "CPU autocast is on (the native loop computes in the weights' dtype)"
    if torch.jit.is_tracing():
        return "torch.jit.trace records torch operations only"
    if any(t is not None and (_opaque(t) or t.dtype != dtype) for t in tensors):
        return "a tensor of the call is not a plain CPU tensor of the inputs' dtype"
    for name, ident in (("activation", activation), ("recurrent_activation", recurrent_activation)):
        if _activation_code(ident) is None:
            return f"the native loop has no {name} {ident!r} (it has {sorted(ACTIVATIONS)})"
    if recurrent_dropout_mask is not None and recurrent_dropout_mask.dim() != 2:
        return "the native loop takes one recurrent dropout mask shared by the gates"
    if os.environ.get(_DISABLE_ENV, "1") == "0":
        return f"{_DISABLE_ENV}=0 in the environment"
    return _library()[1]


def _cache_dir() -> Path:
    explicit = os.environ.get("RNNKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "rnnkit"


def _cpu_fingerprint() -> str:
    """What ``-march=native`` depends on: the machine and, on Linux, the CPU's flags."""
    flags = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith(("flags", "Features", "model name")):
                flags += line
    return platform.machine() + flags


def _build(compiler: str, flags: tuple[str, ...] = _FLAGS) -> Path:
    """Compile ``csrc/recurrence.c`` into the cache (once per source, flags and CPU) and return it."""
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(
        b"\0".join([source, " ".join(flags).encode(), compiler.encode(),
                    _cpu_fingerprint().encode()])
    ).hexdigest()[:16]  # fmt: skip
    target = _cache_dir() / f"rnnkit_recurrence_{key}.so"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build beside the target and rename: concurrent processes never load a partial file.
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        cmd = [compiler, *flags, "-o", tmp, str(_SOURCE), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            raise OSError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


class _Library:
    """The loaded C functions and torch's BLAS gemm pointers; ``one_thread`` says why the
    loops run on one thread (None: in row chunks on torch's OpenMP threads)."""

    def __init__(self, path: Path, blas: ctypes.CDLL, one_thread: str | None = None) -> None:
        self.one_thread = one_thread
        lib = ctypes.CDLL(str(path))
        self.gemm = {
            torch.float32: ctypes.cast(blas.sgemm_, ctypes.c_void_p).value,
            torch.float64: ctypes.cast(blas.dgemm_, ctypes.c_void_p).value,
        }
        p, i, n = ctypes.c_void_p, ctypes.c_int, ctypes.c_ssize_t
        self.forward, self.backward, self.activation = {}, {}, {}
        self.gru_forward, self.gru_backward = {}, {}
        for dtype, suffix in ((torch.float32, "f32"), (torch.float64, "f64")):
            act = getattr(lib, f"rnnkit_activation_{suffix}")
            act.argtypes, act.restype = [i, i, p, p], None
            self.activation[dtype] = act
            fwd = getattr(lib, f"rnnkit_lstm_forward_{suffix}")
            fwd.argtypes = [p, i, i, i, p, p, p, p, i, i, p, p, p, n, p, n, p]
            fwd.restype = None
            bwd = getattr(lib, f"rnnkit_lstm_backward_{suffix}")
            bwd.argtypes = [p, i, i, i, p, p, p, i, i, p, p, p, p, p, p, p, p]
            bwd.restype = None
            self.forward[dtype], self.backward[dtype] = fwd, bwd
            gfwd = getattr(lib, f"rnnkit_gru_forward_{suffix}")
            gfwd.argtypes = [p, i, i, i, i, p, p, p, p, p, i, i, p, p, n, p, p]
            gfwd.restype = None
            gbwd = getattr(lib, f"rnnkit_gru_backward_{suffix}")
            gbwd.argtypes = [p, i, i, i, i, p, p, p, i, i, p, p, p, p, p, p, p, p]
            gbwd.restype = None
            self.gru_forward[dtype], self.gru_backward[dtype] = gfwd, gbwd


def _torch_blas() -> ctypes.CDLL | str:
    """torch's CPU library if it exports the BLAS gemms, else why not."""
    lib_dir = Path(torch.__file__).parent / "lib"
    candidates = sorted(lib_dir.glob("libtorch_cpu.*"))
    if not candidates:
        return f"no libtorch_cpu in {lib_dir}"
    blas = ctypes.CDLL(str(candidates[0]))
    if not (hasattr(blas, "sgemm_") and hasattr(blas, "dgemm_")):
        return f"{candidates[0].name} exports no BLAS sgemm_/dgemm_"
    return blas


_LOADED: list[tuple[_Library | None, str | None]] = []


def _library() -> tuple[_Library | None, str | None]:
    """The loaded library, or None and why (computed once per process; a plain list read
    afterwards, which ``torch.compile`` traces without a graph break)."""
    if not _LOADED:
        _LOADED.append(_load())
    return _LOADED[0]


def _forget() -> None:
    """Drop the loaded library (tests rebuild it under other conditions)."""
    _LOADED.clear()


@eager
def _load() -> tuple[_Library | None, str | None]:
    blas = _torch_blas()
    if isinstance(blas, str):
        return None, blas
    compiler = next((c for c in (shutil.which(n) for n in ("cc", "gcc", "clang")) if c), None)
    if compiler is None:
        return None, "no C compiler (cc, gcc or clang) was found to build it"
    one_thread = None
    try:
        try:
            path = _build(compiler, (*_FLAGS, _OPENMP))
        except (OSError, subprocess.SubprocessError) as error:
            # A compiler without OpenMP (some clang installs): the same loops on one thread,
            # said in the kernel report (one_thread), not silently.
            one_thread = f"{Path(compiler).name} {_OPENMP} failed: {str(error)[-200:]}"
            path = _build(compiler)
    except (OSError, subprocess.SubprocessError) as error:
        reason = f"building it failed: {error}"
        warnings.warn(
            f"rnnkit: the native LSTM/GRU loop is not available ({reason}); the Python step loop "
            "runs instead (same results, slower).",
            RuntimeWarning,
            stacklevel=2,
        )
        return None, reason
    return _Library(path, blas, one_thread), None


def threads_note() -> str:
    """How the loaded C loop runs its rows, for the kernel report: empty when in chunks on
    torch's OpenMP threads, else why on one thread."""
    lib = _library()[0]
    if lib is None or lib.one_thread is None:
        return ""
    return f"; all its rows on one thread: {lib.one_thread}"


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _codes(act: Any, rec_act: Any) -> tuple[int, int]:
    code, rec_code = _activation_code(act), _activation_code(rec_act)
    assert code is not None and rec_code is not None, "blocker() admits these"
    return code, rec_code


def _prepare(
    xp: Tensor, U: Tensor, M: Tensor | None, m: Tensor | None
) -> tuple[_Library, Tensor, Tensor, Tensor | None, Tensor | None]:
    """The library and a forward's arrays as C reads them: ``xp``, ``U`` and the recurrent
    dropout mask ``M`` contiguous, the time-major ``(T, B, 1)`` bool mask ``m`` as ``(T, B)``
    bytes."""
    lib = _library()[0]
    assert lib is not None, "blocker() checked that the library loads"
    T, B = xp.shape[:2]
    M = None if M is None else M.to(xp.dtype).contiguous()
    mask = (
        None
        if m is None
        else m.reshape(T, B).to(torch.uint8, memory_format=torch.contiguous_format)
    )
    return lib, xp.contiguous(), U.contiguous(), M, mask


class LSTM:
    """The LSTM step maths of :class:`rnnkit.kernels.manual_backward_cells.LSTM`, with the
    time loop in C (same ``forward``/``backward`` interface, used by its ``Recurrence``).

    Saved for the backward: ``H (T+1, B, u)`` and ``C (T+1, B, u)`` (the states entering and
    leaving every step), ``G (T, B, 4u)`` (the gate activations, written over ``xp``) and
    ``TC (T, B, u)`` (``act(c_t)``)."""

    n_states = 2

    def __init__(self, act: Any, rec_act: Any) -> None:
        self.act, self.rec_act = _codes(act, rec_act)

    def forward(self, xp, U, b_rec, m, M, states0, need_grad):
        lib, xp, U, M, mask = _prepare(xp, U, M, m)
        (T, B), u = xp.shape[:2], U.shape[0]
        h0, c0 = states0
        H, C = xp.new_empty(T + 1, B, u), xp.new_empty(T + 1, B, u)
        H[0], C[0] = h0, c0
        # The gates of step t are written over xp[t], that step's projected inputs, which
        # nothing reads afterwards (the projection's backward needs its inputs, not its
        # output; this backward reads xp's shape only), so the C loop adds h U to them in
        # place instead of copying them first.
        G, g_step = xp, B * 4 * u
        TC, W = xp.new_empty(T if need_grad else 1, B, u), xp.new_empty(B, u)
        tc_step = B * u if need_grad else 0
        lib.forward[xp.dtype](
            lib.gemm[xp.dtype], T, B, u, xp.data_ptr(), U.data_ptr(), _ptr(M), _ptr(mask),
            self.act, self.rec_act, H.data_ptr(), C.data_ptr(), G.data_ptr(), g_step,
            TC.data_ptr(), tc_step, W.data_ptr(),
        )  # fmt: skip
        if not need_grad:
            return H[1:], [C[T]], ()
        # U as C reads it (a copy of the column-major weight) is kept for the backward
        return H[1:], [C[T].clone()], (H, C, G, TC, mask, U)

    def backward(self, xp, U, b_rec, m, M, states0, Hs, saved, dHs, dfinals):
        lib = _library()[0]
        assert lib is not None
        H, C, G, TC, mask, U = saved
        T, B, u = xp.shape[0], xp.shape[1], U.shape[0]
        M = None if M is None else M.to(xp.dtype).contiguous()
        dh = xp.new_zeros(B, u)
        dc = xp.new_zeros(B, u) if dfinals[0] is None else dfinals[0].to(xp.dtype).clone()
        dH = None if dHs is None else dHs.contiguous()
        dZ = xp.new_empty(T, B, 4 * u)
        W = xp.new_empty(B, u)
        lib.backward[xp.dtype](
            lib.gemm[xp.dtype], T, B, u, U.data_ptr(), _ptr(M),
            _ptr(mask), self.act, self.rec_act, C.data_ptr(),
            G.data_ptr(), TC.data_ptr(), _ptr(dH), dh.data_ptr(), dc.data_ptr(), dZ.data_ptr(),
            W.data_ptr(),
        )  # fmt: skip
        return dZ, _cells.Proj(U, M).weight_grad(H[:-1], dZ), None, [dh, dc]


class GRU:
    """The GRU step maths of :class:`rnnkit.kernels.manual_backward_cells.GRU` (both
    ``reset_after`` conventions), with the time loop in C.

    Saved for the backward: ``H (T+1, B, u)`` and ``S (T, B, 4u)``: per step ``[z, r, hh,
    rec_h]`` (``reset_after``; ``rec_h = h' U_h + b'_h``) or ``[z, r, hh, r h']``."""

    n_states = 1

    def __init__(self, act: Any, rec_act: Any, reset_after: bool) -> None:
        self.act, self.rec_act = _codes(act, rec_act)
        self.reset_after = reset_after

    def forward(self, xp, U, b_rec, m, M, states0, need_grad):
        lib, xp, U, M, mask = _prepare(xp, U, M, m)
        (T, B), u = xp.shape[:2], U.shape[0]
        b_rec = None if b_rec is None else b_rec.contiguous()
        H = xp.new_empty(T + 1, B, u)
        H[0] = states0[0]
        S = xp.new_empty(T if need_grad else 1, B, 4 * u)
        W, HR = xp.new_empty(B, 3 * u), xp.new_empty(B, u)
        lib.gru_forward[xp.dtype](
            lib.gemm[xp.dtype], T, B, u, int(self.reset_after), xp.data_ptr(), U.data_ptr(),
            _ptr(b_rec), _ptr(M), _ptr(mask), self.act, self.rec_act, H.data_ptr(),
            S.data_ptr(), B * 4 * u if need_grad else 0, W.data_ptr(), HR.data_ptr(),
        )  # fmt: skip
        return H[1:], [], ((H, S, mask, U) if need_grad else ())  # U: as for the LSTM

    def backward(self, xp, U, b_rec, m, M, states0, Hs, saved, dHs, dfinals):
        lib = _library()[0]
        assert lib is not None
        H, S, mask, U = saved
        T, B, u = xp.shape[0], xp.shape[1], U.shape[0]
        M = None if M is None else M.to(xp.dtype).contiguous()
        dh = xp.new_zeros(B, u)
        dH = None if dHs is None else dHs.contiguous()
        DX = xp.new_empty(T, B, 3 * u)
        DREC = xp.new_empty(T, B, 3 * u) if self.reset_after else None
        W1, W3 = xp.new_empty(B, u), xp.new_empty(B, u)
        lib.gru_backward[xp.dtype](
            lib.gemm[xp.dtype], T, B, u, int(self.reset_after), U.data_ptr(), _ptr(M),
            _ptr(mask), self.act, self.rec_act, H.data_ptr(), S.data_ptr(), _ptr(dH),
            dh.data_ptr(), DX.data_ptr(), _ptr(DREC), W1.data_ptr(), W3.data_ptr(),
        )  # fmt: skip
        if self.reset_after:
            assert DREC is not None
            db = None if b_rec is None else DREC.sum(dim=(0, 1))
            return DX, _cells.Proj(U, M).weight_grad(H[:-1], DREC), db, [dh]
        dU_zr = _cells.Proj(U[:, : 2 * u], M).weight_grad(H[:-1], DX[..., : 2 * u])
        # S's last slot holds r h' with the mask already applied: no mask again
        dU_h = _cells.Proj(U[:, 2 * u :], None).weight_grad(S[..., 3 * u :], DX[..., 2 * u :])
        return DX, torch.cat([dU_zr, dU_h], dim=1), None, [dh]
