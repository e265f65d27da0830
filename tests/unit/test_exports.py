"""The public surface: everything importable from the package, a sorted and complete __all__."""

from __future__ import annotations

import logging
import subprocess
import sys

import signalwire_chat
from signalwire_chat import errors, models


def test_all_is_sorted() -> None:
    assert signalwire_chat.__all__ == sorted(signalwire_chat.__all__)


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(signalwire_chat).items()
        if not name.startswith("_") and not isinstance(value, type(signalwire_chat))
    }
    public.discard("annotations")
    assert public <= set(signalwire_chat.__all__)
    for name in signalwire_chat.__all__:
        assert hasattr(signalwire_chat, name), name


def test_every_error_and_model_is_exported() -> None:
    for module in (errors, models):
        for name in module.__all__:
            assert name in signalwire_chat.__all__, name
            assert getattr(signalwire_chat, name) is getattr(module, name)


def test_version_and_null_handler() -> None:
    from signalwire_chat._version import __version__

    assert signalwire_chat.__version__ == __version__
    handlers = logging.getLogger("signalwire_chat").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_realtime_side_loads_only_on_first_use() -> None:
    # A web worker that only calls REST never loads the websocket side; the realtime names
    # are still importable from the package, and `import *` still gives them.
    code = (
        "import sys, signalwire_chat as s\n"
        "c = s.ChatClient('a.b.c', rest_url='http://127.0.0.1:9', relay_url='ws://127.0.0.1:9/')\n"
        "m = sys.modules\n"
        "loaded = lambda: ('signalwire_chat._realtime' in m, 'websocket' in m)\n"
        "print(*loaded(), c.connection_state.name)\n"
        "from signalwire_chat import *\n"
        "print(*loaded(), Subscription.__name__, 'RealtimeOptions' in dir(s))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.split("\n")[:2] == [
        "False False IDLE",
        "True True Subscription True",
    ]


def test_the_token_minting_helpers_load_on_first_use() -> None:
    # A chat client never mints tokens: `import signalwire_chat` leaves that module (and its
    # import time) to the backends that use it; the names are still there.
    code = (
        "import sys, signalwire_chat as s\n"
        "print('signalwire_chat._backend' in sys.modules)\n"
        "print(s.mint_guest_token.__name__, 'signalwire_chat._backend' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.split("\n")[:2] == ["False", "mint_guest_token True"]
