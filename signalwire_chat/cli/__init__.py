"""The ``signalwire-chat`` command line: send, read, follow and export chat from a shell.

Run ``signalwire-chat --help``. The token comes from ``--token-file`` or ``SIGNALWIRE_TOKEN``
and is never printed. Exit codes (:class:`ExitCode`) let scripts branch on what went wrong.
Tables and the progress bar use ``rich`` (the ``cli`` extra); ``--json`` output does not need it.
"""

from ._app import ExitCode, build_parser, main

__all__ = ["ExitCode", "build_parser", "main"]
