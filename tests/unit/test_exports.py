"""The public surface: everything importable from the package, a sorted and complete __all__."""

from __future__ import annotations

import logging

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
