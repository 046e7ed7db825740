"""The package version (a leaf module: saving writes it into files without importing rnnkit)."""

__version__ = "0.1.0"
