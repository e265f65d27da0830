#!/usr/bin/env bash
# Known vulnerabilities (pip-audit, PyPI's advisory data) in two sets of packages:
#   1. the environment as installed (the venv: package, extras, test and lint tools);
#   2. the floors setup.cfg declares (every `name>=X` of install_requires and of the runtime
#      extras, checked as `name==X` without installing): a user who installs the oldest
#      version we allow must not get a known-vulnerable one. Why each floor: SECURITY.md.
# Offline, it says so and stops with status 0: no check was done, and the line says it.
# Usage: tools/audit.sh [python]   (default .venv/bin/python; `make audit` runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
# Where pip-audit reads advisories: PyPI's JSON of one release (a mirror may serve the index
# but not this; a package's page alone is not enough).
PROBE=https://pypi.org/pypi/pip/24.0/json

if ! "$PY" -c "
import json, urllib.request
with urllib.request.urlopen('$PROBE', timeout=15) as answer:
    assert 'vulnerabilities' in json.load(answer)
" 2>/dev/null; then
  echo "audit: SKIPPED, no vulnerability check was done: PyPI's advisory data ($PROBE)" \
    "cannot be reached from here"
  exit 0
fi
if ! "$PY" -m pip_audit --version >/dev/null 2>&1; then
  echo "audit: pip-audit is not installed in $PY's environment (it is in the dev extra:" \
    "pip install -e '.[dev]')" >&2
  exit 1
fi

floors=$(mktemp)
trap 'rm -f "$floors"' EXIT
"$PY" - setup.cfg >"$floors" <<'PYTHON'
import configparser, re, sys

config = configparser.ConfigParser()
config.read(sys.argv[1])
lines = config["options"]["install_requires"].splitlines()
extras = config["options.extras_require"]
for extra in ("emulator", "cli", "redis", "otel"):  # what users install; not test or dev
    lines += extras[extra].splitlines()
for line in lines:
    found = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*>=\s*([0-9][^,;\s]*)", line)
    if found:
        print(f"{found[1]}=={found[2]}")
PYTHON

status=0
echo "== audit: the installed environment"
"$PY" -m pip_audit --progress-spinner off --skip-editable || status=1
echo "== audit: the declared floors ($(tr '\n' ' ' <"$floors"))"
"$PY" -m pip_audit --progress-spinner off --strict --no-deps --disable-pip -r "$floors" \
  || status=1
exit $status
