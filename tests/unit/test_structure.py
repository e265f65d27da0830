"""One home for each concern: fork detection, thread creation and the reconnect rule.

These read the package's source. A second place that detects a fork by itself (``os.getpid``),
starts a thread outside ``_threads`` (unnamed, unregistered, out of the leak check) or grows a
back-off of its own would each bring back a class of defect the single owner removed.
"""

from __future__ import annotations

import ast
import os
import threading
from pathlib import Path

import pytest

import signalwire_chat
from signalwire_chat import _fork, _threads

PACKAGE = Path(signalwire_chat.__file__).parent
#: The emulator is the service's stand-in: it shares no code with the client, by design.
CLIENT_SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "emulator" not in p.parts)


def _calls(path: Path, dotted: str) -> list[int]:
    """Lines of ``path`` that call ``dotted`` (``module.attr``)."""
    module, _, attr = dotted.rpartition(".")
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == attr
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == module
        ):
            lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    ("call", "home"),
    [("os.getpid", "_fork.py"), ("threading.Thread", "_threads.py")],
)
def test_each_concern_has_one_home(call: str, home: str) -> None:
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in CLIENT_SOURCES
        if path.name != home and (lines := _calls(path, call))
    }
    assert found == {}, f"{call} outside {home}"


def test_library_threads_are_named_registered_and_not_started_by_new_thread() -> None:
    ran = threading.Event()
    thread = _threads.new_thread(ran.set, "probe")
    assert thread.name == "signalwire-chat-probe"
    assert thread.daemon
    assert not thread.is_alive()  # made, not started
    assert not ran.is_set()
    assert thread not in _threads.library_threads()
    release = threading.Event()
    inside: list[bool] = []

    def body() -> None:
        inside.append(_threads.on_library_thread())
        release.wait(10)

    started = _threads.start_thread(body, "signalwire-chat-probe-2")
    try:
        assert started.name == "signalwire-chat-probe-2"  # the prefix is not doubled
        assert started in _threads.library_threads()
        assert not _threads.on_library_thread()  # the test's own thread is not one
    finally:
        release.set()
        started.join(10)
    assert inside == [True]
    assert started not in _threads.library_threads()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_moves_the_generation_on_and_runs_the_hooks_in_the_child_only() -> None:
    noted = _fork.generation()
    calls: list[int] = []
    _fork.after_fork_in_child(lambda: calls.append(_fork.generation()))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave at once
        try:
            ok = _fork.forked_since(noted) and calls == [noted + 1]
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
    assert not _fork.forked_since(noted)  # the parent is unchanged
    assert calls == []


def test_no_docstring_holds_a_lone_surrogate() -> None:
    """Python 3.13 dedents docstrings when it compiles, encoding them to UTF-8: a docstring
    holding a lone surrogate (a ``\\ud800`` escape written unescaped) then cannot be compiled
    from an AST, as pytest's assertion rewriting does with this plugin's package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc is not None and any("\ud800" <= ch <= "\udfff" for ch in doc):
                    found.append(f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 1)}")
    assert found == []


_DIALECT_FIELDS = {"group_id", "conversation_id"}


def _field_tests(path: Path) -> list[int]:
    """Lines of ``path`` that compare something with a dialect's field name."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in _DIALECT_FIELDS for o in operands):
                lines.append(node.lineno)
    return lines


def test_no_module_outside_the_dialect_layer_tests_a_field_name() -> None:
    # Which dialect a route belongs to is its kind (RouteKind), decided where routes are
    # made; a `route.field == "group_id"` elsewhere is a second, silent owner of that rule.
    home = {"_dialects.py", "_route.py"}
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in CLIENT_SOURCES
        if path.name not in home and (lines := _field_tests(path))
    }
    assert found == {}


def _chat_client_privates() -> set[str]:
    """The private names of ``ChatClient``: its ``_`` methods and ``self._`` attributes."""
    tree = ast.parse((PACKAGE / "_client.py").read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ChatClient")
    names = {
        node.name
        for node in cls.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("_")
        and not node.name.endswith("__")
    }
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
            and node.attr.startswith("_")
            and not node.attr.endswith("__")
        ):
            names.add(node.attr)
    return names


def _reaches(path: Path, names: set[str]) -> list[str]:
    """``expr._name`` in ``path`` for a ``_name`` of ``names``, on anything but ``self``/``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in names
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{node.lineno}: .{node.attr}")
    return found


def test_only_the_client_module_reaches_chat_client_privates() -> None:
    # The bridge, the CLI, the examples and the client's own parts use ChatClient's public
    # API; its collaborators are given what they need when made (RestSide, RealtimeSide),
    # so renaming a private member of the facade can break no other module.
    names = _chat_client_privates()
    assert {"_rest", "_realtime", "_wire"} <= names  # the scan sees the facade's parts
    sources = [p for p in CLIENT_SOURCES if p.name != "_client.py"]
    sources += sorted((PACKAGE.parent / "examples").rglob("*.py"))
    found = {
        str(path.relative_to(PACKAGE.parent)): hits
        for path in sources
        if (hits := _reaches(path, names))
    }
    assert found == {}, "modules reaching ChatClient's private members"
