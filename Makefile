# The two quickstart commands: `make run` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck unit bootstrap bootstrap-tests bench clean

bootstrap:
	@scripts/bootstrap.sh

bootstrap-tests:
	@scripts/bootstrap.sh --tests

## Broker + monitor (embedded SQLite) + a simulated fleet, until Ctrl-C.
run: bootstrap
	$(BIN)/clawbeat demo

## Lint, type-check and the whole test suite against real Mosquitto/PostgreSQL/SQLite.
test: bootstrap-tests lint typecheck
	$(BIN)/pytest -n 3 --dist loadfile

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

unit: bootstrap-tests
	$(BIN)/pytest tests/unit

bench: bootstrap-tests
	$(BIN)/python -m bench.run_all

clean:
	rm -rf run/ clawbeat.db clawbeat.db-* .pytest_cache .mypy_cache .ruff_cache
