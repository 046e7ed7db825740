"""Automatic layer names: ``lstm``, ``lstm_1``, ... (Keras' naming, reset by ``clear_session``).

>>> clear_session()
>>> unique_name(to_snake_case("SimpleRNN")), unique_name("simple_rnn")
('simple_rnn', 'simple_rnn_1')
"""

from __future__ import annotations

import re

_NAME_COUNTS: dict[str, int] = {}


def clear_session() -> None:
    """Reset the automatic layer names (``lstm``, ``lstm_1``, ...) as Keras' ``clear_session``."""
    _NAME_COUNTS.clear()


def to_snake_case(name: str) -> str:
    """A class name in snake case: ``"SimpleRNNCell"`` -> ``"simple_rnn_cell"``."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def unique_name(prefix: str) -> str:
    """``prefix`` the first time, then ``prefix_1``, ``prefix_2``, ..."""
    count = _NAME_COUNTS.get(prefix, 0)
    _NAME_COUNTS[prefix] = count + 1
    return prefix if count == 0 else f"{prefix}_{count}"
