"""The seams between the packages: kernels that take a spec, one activation table, the mask
analysed once per call, the trainer's declared state, the public callbacks module."""

import ast
import importlib
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit import activations, layers
from rnnkit.kernels import CellSpec, KernelRequest, choose, dispatch, fused, masks

KERNELS = Path(rnnkit.__file__).parent / "kernels"
X = torch.as_tensor(np.random.default_rng(0).standard_normal((3, 5, 4)).astype("float32"))
RIGHT = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)


def test_kernels_import_no_layer_model_trainer_or_symbolic_call():
    """What lint-imports checks in make test, here too: every import in kernels/, also inside
    functions."""
    forbidden = ("rnnkit.layers", "rnnkit.models", "rnnkit.training", "rnnkit.symbolic")
    for path in KERNELS.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(forbidden), f"{path.name} imports {name}"


def _rnnkit_imports_in_functions():
    """(file, line, source line, the comment line above the block of imports) of every
    import of rnnkit inside a function in the package."""
    package = KERNELS.parent
    for path in sorted(package.rglob("*.py")):
        lines = path.read_text().splitlines()
        for function in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = ["." if node.level else (node.module or "")]
                else:
                    continue
                if not any(n == "." or n.split(".")[0] == "rnnkit" for n in names):
                    continue
                above = node.lineno - 2
                while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
                    above -= 1
                comment = lines[above].strip() if above >= 0 else ""
                yield path.relative_to(package), node.lineno, lines[node.lineno - 1], comment


def test_no_rnnkit_import_inside_a_function_without_a_reason():
    """An import of rnnkit inside a function works around an import cycle: each one says
    which, in a ``# Lazy: ...`` comment right above it (or above its block of imports)."""
    unexplained = [
        f"{path}:{line}: {source.strip()}"
        for path, line, source, comment in _rnnkit_imports_in_functions()
        if not comment.startswith("# Lazy")
    ]
    assert not unexplained, "\n".join(unexplained)


def _module_level_imports() -> dict[str, set[str]]:
    """rnnkit module -> the rnnkit modules it imports when it is imported (statements at
    module level, outside ``if TYPE_CHECKING``; the parent packages an import also runs are
    left out: every module would otherwise reach ``rnnkit/__init__``, which imports them all)."""
    package = KERNELS.parent
    modules = {}
    for path in package.rglob("*.py"):
        parts = ("rnnkit", *path.relative_to(package).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        modules[name] = (path, name if is_package else name.rsplit(".", 1)[0])
    graph: dict[str, set[str]] = {}
    for name, (path, here) in modules.items():
        found: set[str] = set()
        for sub in _run_at_import(ast.parse(path.read_text()).body):
            if True:
                if isinstance(sub, ast.Import):
                    found |= {a.name for a in sub.names if a.name.startswith("rnnkit")}
                elif isinstance(sub, ast.ImportFrom):
                    base = sub.module or ""
                    if sub.level:
                        base = ".".join(here.split(".")[: len(here.split(".")) - sub.level + 1]
                                        + ([base] if base else []))  # fmt: skip
                    for alias in sub.names:
                        full = f"{base}.{alias.name}"
                        found.add(full if full in modules else base)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _run_at_import(body: list[ast.stmt]):
    """The statements of ``body`` that run when the module is imported: not inside a
    function, nor under ``if TYPE_CHECKING``."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _run_at_import(node.orelse)
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _run_at_import([n for n in inner if isinstance(n, ast.AST)])


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The arrows ``a -> b`` of ``graph`` from which ``a`` is reached again."""

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            here = stack.pop()
            if here == goal:
                return True
            if here not in seen:
                seen.add(here)
                stack.extend(graph.get(here, ()))
        return False

    return [(a, b) for a in graph for b in graph[a] if reaches(b, a)]


def _mutual_packages(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of subpackages (``rnnkit.<name>.*``) that import each other."""

    def part(name: str) -> str | None:
        pieces = name.split(".")
        if len(pieces) > 2 or (len(pieces) == 2 and pieces[1] in PACKAGES):
            return pieces[1]
        return None

    arrows = {(part(a), part(b)) for a in graph for b in graph[a]}
    arrows = {(a, b) for a, b in arrows if a and b and a != b}
    return sorted((a, b) for a, b in arrows if (b, a) in arrows and a < b)


def test_no_import_cycle():
    """No module imports one that imports it back (at module level), and no two subpackages
    import each other: the arrows go one way (ARCHITECTURE.md). Lazy imports inside
    functions are the exceptions the test above makes each one explain."""
    graph = _module_level_imports()
    assert len(graph) > 100 and "rnnkit.registry" in graph["rnnkit.layers.serialization"]
    assert not _cycles(graph), _cycles(graph)
    assert not _mutual_packages(graph), _mutual_packages(graph)
    # what a cycle looks like to the two checks
    looped = {"rnnkit.layers.a": {"rnnkit.saving.b"}, "rnnkit.saving.b": {"rnnkit.layers.a"}}
    assert _cycles(looped) and _mutual_packages(looped) == [("layers", "saving")]


PACKAGES = {"kernels", "layers", "models", "training", "saving", "datasets", "utils", "ops"}


def test_cells_describe_themselves_with_a_spec():
    gru = layers.GRUCell(3, recurrent_activation="hard_sigmoid", reset_after=False, dropout=0.1)
    assert gru.kernel_spec() == CellSpec(
        "gru", 3, "tanh", "hard_sigmoid", reset_after=False, dropout=0.1
    )
    lstm = layers.LSTMCell(2, activation=torch.tanh)
    lstm.build((None, 4))
    spec = lstm.kernel_spec()
    assert spec.activation is torch.tanh and spec.dtype == torch.float32  # not a built-in name
    assert layers.SimpleRNNCell(2).kernel_spec().recurrent_activation is None

    class Doubled(layers.LSTMCell):
        def call(self, inputs, states, training=None):
            return super().call(inputs, states, training)

    assert Doubled(2).kernel_spec() is None


def test_choose_is_pure_and_takes_no_layer():
    spec = CellSpec("lstm", 3, "tanh", "sigmoid", dtype=torch.float32)
    auto = KernelRequest("LSTM 'l'", use_cudnn="auto")
    assert choose(spec, auto, X, None).name == "fused"
    assert choose(spec, auto, X, RIGHT, training=True).name == "manual_backward"  # packed, CPU
    plan = choose(spec, auto, X, RIGHT)
    assert plan.name == "fused" and plan.mask_info.kind == "right" and plan.spec is spec
    # A plain RNN of a built-in cell: never the fused kernel; the manual-backward kernel.
    assert choose(spec, KernelRequest("RNN 'r'"), X, None).name == "manual_backward"
    assert choose(None, KernelRequest("RNN 'r'"), X, None).name == "generic"
    with pytest.raises(ValueError, match="LSTM 'l': use_cudnn=True was requested"):
        choose(CellSpec("gru", 3, "tanh", "sigmoid", reset_after=False),
               KernelRequest("LSTM 'l'", use_cudnn=True), X, None)  # fmt: skip


def _count_analyses(monkeypatch):
    calls = []
    original = masks.analyze_mask

    def counting(mask):
        calls.append(tuple(mask.shape))
        return original(mask)

    monkeypatch.setattr(dispatch, "analyze_mask", counting)
    monkeypatch.setattr(fused._masks, "analyze_mask", counting)
    return calls


@pytest.mark.parametrize("go_backwards", [False, True])
def test_the_mask_is_analysed_once_per_call(monkeypatch, go_backwards):
    layer = layers.LSTM(3, go_backwards=go_backwards, return_sequences=True)
    reference = layers.LSTM(3, go_backwards=go_backwards, return_sequences=True, use_cudnn=False)
    layer(X), reference(X)
    reference.set_weights(layer.get_weights())
    calls = _count_analyses(monkeypatch)
    out = layer(X, mask=RIGHT)
    assert layer.last_kernel == "fused" and len(calls) == 1
    torch.testing.assert_close(out, reference(X, mask=RIGHT))


def test_the_mask_is_analysed_once_per_one_call_bidirectional(monkeypatch):
    layer = layers.Bidirectional(layers.GRU(3, return_sequences=True, use_cudnn=True))
    layer(X)
    calls = _count_analyses(monkeypatch)
    layer(X, mask=RIGHT)
    assert layer.last_kernel == "fused" and layer.last_kernel_choice.one_call
    assert len(calls) == 1
    assert layer.forward_layer.last_kernel is None  # not a call of the directions


LEFT = RIGHT.flip(1)
MASKS = {
    "right": RIGHT,
    "left": LEFT,
    "contiguous": torch.tensor([[0, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 0, 0, 1, 0]]).bool(),
    "full_or_empty": torch.tensor([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]]).bool(),
    "holes": torch.tensor([[1, 0, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool(),
}


def test_reversed_info_is_the_analysis_of_the_reversed_mask():
    rows = torch.tensor(list(itertools.product([0, 1], repeat=4)), dtype=torch.bool)
    picks = np.random.default_rng(15).integers(0, len(rows), size=(400, 3))
    batches = [rows[p] for p in picks] + [rows[[0, 15]], rows[[15, 15]], rows[[8, 12, 0]]]
    for mask in batches:
        got, expected = (
            masks.reversed_info(masks.analyze_mask(mask), 4),
            masks.analyze_mask(mask.flip(1)),
        )
        assert got.kind == expected.kind, mask
        for a, b in ((got.starts, expected.starts), (got.lengths, expected.lengths)):
            assert (a is None and b is None) or (a.dtype == b.dtype and torch.equal(a, b)), mask


def _directions(case):
    """A Bidirectional whose directions run apart (each on its own kernel), and the same
    with the generic loop: (layer, reference, training)."""
    if case == "packed_training":  # fused per direction is refused after the analysis
        make = lambda **k: layers.Bidirectional(layers.LSTM(3, return_sequences=True, **k))  # noqa: E731
        return make(), make(use_cudnn=False), True
    if case == "different_layers":  # refused before the analysis: the first direction does it

        def make(**k):
            return layers.Bidirectional(
                layers.LSTM(3, return_sequences=True, **k),
                backward_layer=layers.GRU(3, return_sequences=True, go_backwards=True, **k),
            )

        return make(), make(use_cudnn=False), False
    assert case == "forward_reads_backwards"  # the first direction's analysis is reversed

    def make(**k):
        return layers.Bidirectional(
            layers.GRU(3, go_backwards=True, **k), backward_layer=layers.GRU(3, **k)
        )

    return make(), make(use_cudnn=False), False


@pytest.mark.parametrize("mask_name", sorted(MASKS))
@pytest.mark.parametrize("case", ["packed_training", "different_layers", "forward_reads_backwards"])
def test_the_mask_is_analysed_once_per_bidirectional_call_with_directions_apart(
    monkeypatch, case, mask_name
):
    layer, reference, training = _directions(case)
    layer(X), reference(X)
    reference.set_weights(layer.get_weights())
    mask = MASKS[mask_name]
    calls = _count_analyses(monkeypatch)
    out = layer(X, mask=mask, training=training)
    assert len(calls) == 1, layer.last_kernel_choice
    assert not layer.last_kernel_choice.one_call and layer.last_kernel != "generic"
    expected = reference(X, mask=mask, training=training)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_a_given_mask_analysis_is_checked():
    layer = layers.LSTM(3)
    layer(X)
    with pytest.raises(TypeError, match="mask_info must be a rnnkit.kernels.masks.MaskInfo"):
        layer(X, mask=RIGHT, mask_info=RIGHT)
    with pytest.raises(ValueError, match=r"mask_info must analyse the call's mask of shape"):
        layer(X, mask_info=masks.analyze_mask(RIGHT))
    with pytest.raises(ValueError, match=r"analysis of \(2,\) rows"):
        layer(X, mask=RIGHT, mask_info=masks.analyze_mask(RIGHT[:2]))


def test_one_activation_table():
    names = [row.name for row in activations.ACTIVATIONS]
    assert len(names) == len(set(names))
    for row in activations.ACTIVATIONS:
        assert activations.get(row.name) is row.function
        assert activations.info(row.name) is row
        if row.torch_native is not None:
            x = torch.linspace(-3, 3, 13)
            torch.testing.assert_close(row.function(x), row.torch_native(x))
            assert activations.info(row.torch_native, torch_native=True) is row
    assert activations.info(activations.swish).name == "swish"  # silu is the same function
    assert not activations.is_elementwise(activations.softmax)
    assert activations.is_elementwise(torch.sigmoid) and not activations.is_elementwise(abs)
    assert fused.activation_name(torch.relu) == "relu" and fused.activation_name("elu") is None


def test_trainer_declares_its_state_and_data_parallelism_is_attached_publicly():
    model = rnnkit.Sequential([layers.Input((5, 4)), layers.LSTM(2)])
    assert model.compiled is False and model.optimizer is None and model.metrics == []
    assert model.data_parallel is None and model.train_iterator is None
    assert model.nan_policy == "raise"
    marker = object()
    assert model.attach_data_parallel(marker) is None
    assert model.data_parallel is marker
    assert model.attach_data_parallel(None) is marker
    with rnnkit.distributed.data_parallel(model) as parallel:  # one process: nothing
        assert parallel is None and model.data_parallel is None


def test_callbacks_is_a_real_module():
    import rnnkit.callbacks
    import rnnkit.training.callbacks

    assert rnnkit.callbacks.__file__.endswith("rnnkit/callbacks.py")
    assert rnnkit.callbacks.BackupAndRestore.__module__ == "rnnkit.training.backup"
    assert "BackupAndRestore" not in vars(rnnkit.training.callbacks)  # no cycle back
    with pytest.warns(DeprecationWarning, match="import it from rnnkit.callbacks"):
        from rnnkit.training.callbacks import BackupAndRestore
    assert BackupAndRestore is rnnkit.callbacks.BackupAndRestore


@pytest.mark.parametrize("name", ["losses", "metrics", "optimizers"])
def test_losses_metrics_optimizers_are_real_modules(name):
    """No sys.modules alias: a file each, re-exporting every public name of the training
    module (so that one cannot gain a name the public module lacks)."""
    public = importlib.import_module(f"rnnkit.{name}")
    private = importlib.import_module(f"rnnkit.training.{name}")
    assert public is not private and public.__file__.endswith(f"rnnkit/{name}.py")
    assert getattr(rnnkit, name) is public
    for attribute, value in vars(private).items():
        if attribute.startswith("_") or not getattr(value, "__module__", "").startswith(
            private.__name__
        ):
            continue
        assert getattr(public, attribute, None) is value, f"rnnkit.{name}.{attribute}"


@pytest.mark.parametrize(
    "argument, value",
    [("kernel_size", (3, 3, 3)), ("strides", 0), ("padding", "full"), ("data_format", "NHWC")],
)
def test_conv_lstm_and_the_convolutions_share_one_set_of_argument_checks(argument, value):
    """ConvLSTM's cell validates with layers/conv_utils, as Conv2D does: the same message."""
    messages = []
    for make in (layers.Conv2D, layers.ConvLSTM2D):
        with pytest.raises(ValueError) as error:
            make(4, **{"kernel_size": 3, argument: value})
        messages.append(str(error.value).split(": ", 1)[1])
    assert messages[0] == messages[1] and f"received {argument}={value!r}" in messages[0]
    cased = layers.ConvLSTM2D(4, 3, data_format="Channels_First")  # case-insensitive, as Keras
    assert cased.data_format == layers.Conv2D(4, 3, data_format="Channels_First").data_format
