# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make run    start the service on the embedded Postgres and Redis (dev mode)
#   make test   run the test suite (embedded servers unless IVR_TEST_* are set)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install run test migrate clean bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: install
	IVR_DEV=1 $(BIN)/ivr serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

migrate: install
	$(BIN)/ivr migrate

clean:
	rm -rf $(VENV) var .pytest_cache

bench: install
	$(BIN)/python bench/webhooks.py $(BENCH_ARGS)
	$(BIN)/python bench/ledger_append.py $(BENCH_ARGS_LEDGER)
	$(BIN)/python bench/observability_cost.py
