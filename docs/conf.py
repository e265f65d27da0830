"""Sphinx configuration of the signalwire-chat documentation (``make docs``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signalwire_chat import __version__  # noqa: E402 - after the path is set

project = "signalwire-chat"
author = "signalwire-chat contributors"
copyright = "signalwire-chat contributors"  # noqa: A001 - Sphinx's setting name
release = __version__
version = __version__

extensions = [
    "myst_parser",  # the pages are Markdown
    "sphinx.ext.autodoc",  # the API reference comes from the docstrings
    "sphinx.ext.napoleon",  # which are Google style
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
# Every reference must resolve (`make docs` also passes -n): a name in a docstring or a type
# hint that has no entry is a hole in the reference, and fails the build.
nitpicky = True
# Only what is genuinely external and cannot be linked without intersphinx (see below):
nitpick_ignore_regex = [
    # The standard library's types in signatures (Mapping, Callable, Path, datetime, ...).
    (
        "py:class",
        r"(collections\.abc|os|datetime|pathlib|random|logging|enum|sqlite3|ssl|typing)\..+",
    ),
    # requests' Session (the `session=` option) and redis-py's client (imported as redis_py).
    ("py:class", r"requests(\.sessions)?\.Session"),
    ("py:class", r"redis_py\.Redis"),
]

# No intersphinx: the build must work with no network (CI has none), and -W would fail on an
# unreachable inventory.

html_theme = "furo"
html_title = f"signalwire-chat {__version__}"


def _is_private(cls: type) -> bool:
    """A class that is private by its own name or by its module's (``_display.Displayable``)."""
    parts = [*cls.__module__.split("."), cls.__name__]
    return any(part.startswith("_") for part in parts) and not _exported(cls)


def _exported(cls: type) -> bool:
    import signalwire_chat

    return getattr(signalwire_chat, cls.__name__, None) is cls


def _public_bases(app: object, name: str, obj: object, options: object, bases: list) -> None:
    """Name only public classes in "Bases:" (a private helper base has no page to link)."""
    public = [base for base in bases if not _is_private(base)]
    if len(public) != len(bases):
        bases[:] = public or [object]


def _public_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    """Resolve a reference to a public object by the name it is documented under.

    Docstrings say ``APIError`` or ``Group``; type hints say where a class is defined
    (``signalwire_chat.models.Group``, ``signalwire_chat.errors.ChatError``). Both resolve to
    the one entry of that name in this reference, when there is exactly one; anything else
    stays unresolved, and fails the nitpicky build.
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip("~.")
    name = target.rsplit(".", 1)[-1]
    if _is_type_variable(target, name):
        return contnode  # a placeholder (Page[T]), not an object: shown as text
    # signalwire_chat.models.Group: by its name; Page.iter_items, APIError: by that suffix.
    suffix = "." + (name if target.startswith("signalwire_chat.") else target)
    domain = env.get_domain("py")
    entries = {
        full: entry.objtype
        for full, entry in domain.objects.items()
        if full.endswith(suffix) and not entry.aliased
    }
    if len(entries) != 1:
        return None
    [(full, objtype)] = entries.items()
    role = node["reftype"] if objtype in ("class", "exception") else "obj"  # an alias: data
    return domain.resolve_xref(env, node["refdoc"], app.builder, role, full, node, contnode)


def _is_type_variable(target: str, name: str) -> bool:
    """Whether ``target`` names a ``TypeVar`` of this package (``T`` of the page types)."""
    import importlib
    import typing

    module_name = target.rsplit(".", 1)[0] if "." in target else ""
    modules = (
        [module_name]
        if module_name
        else [m for m in sys.modules if m.startswith("signalwire_chat")]
    )
    for module in modules:
        try:
            value = getattr(importlib.import_module(module), name, None)
        except ImportError:
            continue
        if isinstance(value, typing.TypeVar):
            return True
    return False


#: Classes the library builds and hands out, never the user: their constructors' parameters
#: (private helper types) are not part of the reference.
_NOT_BUILT_BY_USERS = {
    "signalwire_chat.Subscription",
    "signalwire_chat.ChatPage",
    "signalwire_chat.Page",
    "signalwire_chat.emulator._record.Recording",
    "signalwire_chat.emulator._fault_controls.HalfOpen",
}


def _drop_constructor_types(app: Any, what: str, name: str, *args: object) -> None:
    """Forget the constructor's type hints of those classes (after autodoc recorded them)."""
    if what == "class" and name in _NOT_BUILT_BY_USERS:
        app.env.temp_data.get("annotations", {}).pop(name, None)


def setup(app: Any) -> None:
    """Connect the handlers above."""
    app.connect("autodoc-process-bases", _public_bases)
    app.connect("autodoc-process-signature", _drop_constructor_types, priority=900)
    app.connect("missing-reference", _public_name)
