"""Runs every ```python block of README.md, each in a fresh namespace in a temporary folder.

Blocks run in this process (warnings are errors, as in the rest of the suite) so that the
whole file stays fast; files a block writes land in ``tmp_path``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[tuple[str, str]]:
    """``(id, code)`` for each python block: the id is the section heading and a counter."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        headings = re.findall(r"^## (.+)$", text[: match.start()], flags=re.M)
        section = headings[-1] if headings else "top"
        same = sum(1 for b in blocks if b[0].startswith(section))
        blocks.append((f"{section} #{same + 1}", match.group(1)))
    return blocks


BLOCKS = python_blocks()


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small ops on a shared 2-core CPU run fastest on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_readme_has_the_guide_sections() -> None:
    sections = {b[0].rsplit(" #", 1)[0] for b in BLOCKS}
    for name in [
        "Built-in RNN layers",
        "Outputs and states",
        "RNN layers and RNN cells",
        "Custom cells",
        "Cross-batch statefulness",
        "Bidirectional RNNs",
        "Masks: padding and sequence lengths",
        "Dropout",
        "Performance",
        "Training",
        "Saving and loading",
        "Keras interoperability",
        "PyTorch interoperability",
        "Datasets",
    ]:
        assert name in sections, f"README.md has no python block under '## {name}'"
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("code", [b[1] for b in BLOCKS], ids=[b[0] for b in BLOCKS])
def test_readme_block_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RNNKIT_OFFLINE", "1")
    monkeypatch.setenv("RNNKIT_HOME", str(tmp_path / "home"))
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)
    assert capsys.readouterr().out.strip(), "each README block prints what it shows"
