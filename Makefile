# wsgisession: `make run` serves the chat example; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 6543

.PHONY: setup run serve-counter test test-fast typecheck lint bench clean

setup: $(STAMP) $(NODE_STAMP)

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

run: setup
	@echo "Serving the chat example on http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	$(BIN)/wsgisession serve conf/development.ini --host $(HOST) --port $(PORT)

serve-counter: setup
	$(BIN)/wsgisession serve conf/counter.ini --host $(HOST) --port $(PORT)

typecheck: setup
	$(BIN)/mypy --strict wsgisession

lint: setup
	$(BIN)/ruff check --select F,E9 wsgisession tests examples benchmarks

test: setup typecheck lint
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/pip install --quiet -r benchmarks/requirements.txt
	npm install --prefix benchmarks/peers/node --no-audit --no-fund --loglevel=error
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) node_modules data build *.egg-info .pytest_cache .mypy_cache
