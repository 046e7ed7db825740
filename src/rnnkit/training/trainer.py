"""Keras-style training methods (compile/fit/evaluate/predict) as a mixin for models."""

from __future__ import annotations


class Trainer:
    """Mixin that gives a model ``compile``, ``fit``, ``evaluate`` and ``predict``."""
