"""The ``podmill`` command line (:mod:`podmill.cli.app`): ``app`` is the Typer app and
``main`` the console entry point (``podmill = "podmill.cli:main"``, ``python -m podmill``).

Commands sit on top of every other package: they import what they drive, and nothing
below imports them.
"""

from podmill.cli.app import app, main

__all__ = ["app", "main"]
