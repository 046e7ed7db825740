# `make test`: set up .venv (if missing) and run lint + the test suite.
# `make demo`: the same set-up, then the main example end to end.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint install clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch is pinned and installed first: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# lint: ruff; the import contracts of pyproject.toml ([tool.importlinter]); mypy on rnnkit.kernels.
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/mypy

test: lint
	KERAS_BACKEND=torch $(BIN)/python -m pytest -q

# The demo also installs the optional `demo` extra (matplotlib, for the time-series plot), once.
$(VENV)/.installed-demo: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[test,demo]"
	touch $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/guide.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
