# Wootbridge developer commands. Needs only Python 3.11 and make.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck check bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,test]'
	@touch $(STAMP)

## run: web + worker on http://localhost:8000 (SQLite; embedded Redis when REDIS_URL is unset)
run: $(STAMP)
	$(BIN)/wootbridge dev

## test: lint, type-check and the whole test suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

## bench: issue 9's benchmarks (wrk; SQLite, and PostgreSQL when BENCH_PG names a scratch db)
BENCH_EVENTS   ?= 5000000
BENCH_PG       ?=
BENCH_PG_SCALE ?=
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
	  else echo "make bench needs wrk: run 'sudo apt-get install -y wrk' (or make bench as root)" >&2; exit 1; fi; }
	mkdir -p .bench
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.drain
	$(BIN)/python -m bench.scale --database-url sqlite:///$(CURDIR)/.bench/scale.db --events $(BENCH_EVENTS)
	@if [ -n "$(BENCH_PG)" ]; then set -e; \
	  $(BIN)/python -m bench.ingest --database-url $(BENCH_PG); \
	  $(BIN)/python -m bench.drain --database-url $(BENCH_PG); \
	  $(BIN)/python -m bench.scale --database-url $(or $(BENCH_PG_SCALE),$(BENCH_PG)_scale) \
	    --empty-database-url $(BENCH_PG) --events $(BENCH_EVENTS); \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .redis .bench
