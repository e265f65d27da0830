"""Sphinx configuration of the signalwire-chat documentation (``make docs``)."""

from __future__ import annotations

import sys
from pathlib import Path

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
# Type hints name private helpers and third-party types that have no page of their own.
nitpicky = False

# No intersphinx: the build must work with no network (CI has none), and -W would fail on an
# unreachable inventory.

html_theme = "furo"
html_title = f"signalwire-chat {__version__}"


def _public_bases(app: object, name: str, obj: object, options: object, bases: list) -> None:
    """Name only public classes in "Bases:" (a private helper base has no page to link)."""
    public = [base for base in bases if not base.__name__.startswith("_")]
    if len(public) != len(bases):
        bases[:] = public or [object]


def setup(app: object) -> None:
    app.connect("autodoc-process-bases", _public_bases)  # type: ignore[attr-defined]
