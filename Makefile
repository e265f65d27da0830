# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# One folder per official SDK, each with its own package.json and package-lock.json.
NODE_DIRS := tests/conformance/js tests/conformance/sdk-client-0.0.1 tests/conformance/sdk-js-4.0.0-beta.12
NODE_STAMPS := $(addsuffix /node_modules/.installed,$(NODE_DIRS))
DEMO_STAMP := $(VENV)/.installed-emulator

.PHONY: demo test unit lint docs versions bench bench-quick emulator clean redis-server chromium coverage

$(STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

%/node_modules/.installed: %/package.json %/package-lock.json
	cd $* && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# The demo needs the package with its emulator extra and the cli extra (the README's
# command-line examples follow the demo), not the test and lint toolchain.
$(DEMO_STAMP): setup.cfg setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[emulator,cli]'
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) examples/demo.py

# The lease and Redis checkpoint tests need a real redis-server: the Debian package is installed
# here when it is missing (and said so); without root or apt-get those tests are skipped loudly,
# and under CI (CI=true) that skip is a failure.
redis-server:
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "## redis-server not found: installing the Debian package redis-server (apt-get)"; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null && \
	    echo "## redis-server installed: $$(redis-server --version)"; \
	  else \
	    echo "## redis-server not found and cannot be installed here (needs root and apt-get):"; \
	    echo "## the tests that need a real Redis will be SKIPPED (a failure under CI=true)"; \
	  fi; \
	fi

# The browser tests (the web chat page, JupyterLab) drive Debian's Chromium through its
# chromedriver (Selenium): both Debian packages are installed here when missing, never a
# downloaded browser build. Without them those tests are skipped loudly (a failure under CI).
chromium:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "## chromium/chromedriver not found: installing the Debian packages chromium and chromium-driver (apt-get)"; \
	    apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null && \
	    echo "## $$(chromium --version 2>/dev/null) installed"; \
	  else \
	    echo "## chromium/chromedriver not found and cannot be installed here (needs root and apt-get):"; \
	    echo "## the browser tests will be SKIPPED (a failure under CI=true)"; \
	  fi; \
	fi

# Without Node the conformance tests (the official JS client) cannot run: everything else
# does, and the skip is said loudly. Under CI (CI=true) a missing Node is a failure.
test: $(STAMP) redis-server chromium
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(NODE_STAMPS) && $(PY) -m pytest; \
	elif [ "$${CI:-}" = "true" ]; then \
	  echo "ERROR: node/npm not found; CI must run the conformance tests (install Node 20)" >&2; \
	  exit 1; \
	else \
	  echo "################################################################################"; \
	  echo "## node/npm not found: SKIPPING the conformance tests (the official @signalwire/js"; \
	  echo "## client against the emulator). Install Node 20 with npm to run them."; \
	  echo "################################################################################"; \
	  $(PY) -m pytest -m "not conformance" && \
	  echo "## reminder: the conformance tests were SKIPPED (no node/npm on this machine)"; \
	fi

unit: $(STAMP)
	$(PY) -m pytest tests/unit

# Branch coverage of the realtime package by the unit and integration suites; fails under
# COVERAGE_MIN percent of branches (coverage's own --fail-under mixes lines and branches).
# Parallel data files: forked children (the fork tests) save theirs on os._exit (the
# `patch = _exit` of [coverage:run] in setup.cfg), and `combine` merges them.
COVERAGE_MIN ?= 95
# A failing test fails the target too, after the figure is reported.
coverage: $(STAMP)
	$(PY) -m coverage erase
	@status=0; \
	$(PY) -m coverage run -p --branch --source=signalwire_chat/_realtime -m pytest -q -p no:cacheprovider tests/unit tests/integration || status=$$?; \
	$(PY) -m coverage combine -q && \
	$(PY) -m coverage report -m && \
	$(PY) -m coverage json -q -o .coverage-realtime.json && \
	$(PY) tools/branch_coverage.py .coverage-realtime.json $(COVERAGE_MIN) || status=1; \
	exit $$status

# The documentation site (docs/), built with warnings as errors into docs/_build/html;
# -n (nitpicky): a reference that resolves to nothing is an error too.
docs: $(STAMP)
	$(VENV)/bin/sphinx-build -n -W --keep-going -q -b html docs docs/_build/html

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
	rm -rf $(VENV) .venv-3.* build dist *.egg-info $(addsuffix /node_modules,$(NODE_DIRS)) docs/_build

# Known vulnerabilities (pip-audit) of the installed environment and of the floors setup.cfg
# declares; when PyPI's advisory data cannot be reached it says so and passes (no check done).
.PHONY: audit
audit: $(STAMP)
	tools/audit.sh $(PY)
