"""The realtime layers load only what they need: the relay session is I/O-free.

Each check runs in a fresh interpreter. The package's ``__init__`` modules (which load the
client, and so requests) are replaced by empty packages pointing at the same directories, so
what is measured is the module's own import graph.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import importlib.util, json, sys, types
spec = importlib.util.find_spec("signalwire_chat")
for name, path in (("signalwire_chat", spec.submodule_search_locations[0]),):
    pkg = types.ModuleType(name)
    pkg.__path__ = [path]
    sys.modules[name] = pkg
realtime = types.ModuleType("signalwire_chat._realtime")
realtime.__path__ = [spec.submodule_search_locations[0] + "/_realtime"]
sys.modules["signalwire_chat._realtime"] = realtime
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in
      ("requests", "urllib3", "websocket", "socket", "select", "ssl", "threading"))))
"""


def _loaded(module: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: list[str] = json.loads(out.stdout)
    return loaded


@pytest.mark.parametrize(
    "module",
    [
        "signalwire_chat._realtime._protocol",
        "signalwire_chat._redact",
    ],
)
def test_the_relay_session_loads_neither_requests_nor_urllib3(module: str) -> None:
    loaded = _loaded(module)
    assert not [m for m in loaded if m.split(".")[0] in ("requests", "urllib3")], loaded


def test_the_probe_sees_what_the_rest_transport_loads() -> None:
    # The other side of the same check: the REST transport does load requests.
    assert "requests" in _loaded("signalwire_chat._http")
