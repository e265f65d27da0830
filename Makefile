# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# One folder per official SDK, each with its own package.json and package-lock.json.
NODE_DIRS := tests/conformance/js tests/conformance/sdk-client-0.0.1 tests/conformance/sdk-js-4.0.0-beta.12
NODE_STAMPS := $(addsuffix /node_modules/.installed,$(NODE_DIRS))

.PHONY: demo test unit lint versions bench bench-quick emulator clean

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

%/node_modules/.installed: %/package.json %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP) $(NODE_STAMPS)
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check signalwire_chat tests examples benchmarks
	$(VENV)/bin/ruff format --check signalwire_chat tests examples benchmarks
	$(VENV)/bin/mypy signalwire_chat

# The unit and integration suites on the oldest and newest supported Pythons, each in a
# venv of its own; a version this machine lacks is reported and skipped.
VERSIONS ?= 3.10 3.13
versions:
	@for v in $(VERSIONS); do \
	  py=$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/$$v.*/bin/python 2>/dev/null | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v || true); \
	  if [ -z "$$py" ] || ! $$py -c pass 2>/dev/null; then echo "python$$v: not on this machine, skipped"; continue; fi; \
	  echo "== python$$v ($$py)"; \
	  [ -x .venv-$$v/bin/python ] || $$py -m venv .venv-$$v || exit 1; \
	  .venv-$$v/bin/python -m pip install --quiet -e '.[test]' || exit 1; \
	  .venv-$$v/bin/python -m pytest -q -p no:cacheprovider tests/unit tests/integration || exit 1; \
	done

bench: $(STAMP) $(NODE_STAMPS)
	$(PY) benchmarks/run.py --write BENCHMARKS.md

bench-quick: $(STAMP) $(NODE_STAMPS)
	$(PY) benchmarks/run.py --quick

emulator: $(STAMP)
	$(PY) -m signalwire_chat.emulator --port 0

clean:
	rm -rf $(VENV) .venv-3.* build dist *.egg-info $(addsuffix /node_modules,$(NODE_DIRS))
