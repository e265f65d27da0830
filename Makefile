# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NODE_DIR := tests/conformance/js
NODE_STAMP := $(NODE_DIR)/node_modules/.installed

.PHONY: demo test unit lint bench bench-quick emulator clean

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP) $(NODE_STAMP)
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check signalwire_chat tests examples benchmarks
	$(VENV)/bin/ruff format --check signalwire_chat tests examples benchmarks
	$(VENV)/bin/mypy signalwire_chat

bench: $(STAMP) $(NODE_STAMP)
	$(PY) benchmarks/run.py --write BENCHMARKS.md

bench-quick: $(STAMP) $(NODE_STAMP)
	$(PY) benchmarks/run.py --quick

emulator: $(STAMP)
	$(PY) -m signalwire_chat.emulator --port 0

clean:
	rm -rf $(VENV) build dist *.egg-info $(NODE_DIR)/node_modules
