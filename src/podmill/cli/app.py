"""The ``podmill`` command line: the Typer app and its console entry point.

Each command group lives in its own module (``run``, ``engine``, ``serve``, ``search``,
``catalog``, ``digest``, ``publish``, ``subscribe``, ``mcp``, ``stress``, ``db``, ``config``)
and is registered here, so this file is the whole command tree. Options they share are
:mod:`podmill.cli.options`, settings come from :mod:`podmill.cli.settings`, and what they
print from :mod:`podmill.cli.output`.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from podmill import __version__
from podmill.cli import (
    catalog,
    digest,
    engine,
    mcp,
    publish,
    run,
    search,
    serve,
    stress,
    subscribe,
    view,
)
from podmill.cli.config import config_app
from podmill.cli.db import db_app
from podmill.cli.output import err, fail, out
from podmill.errors import PodmillError, missing_extra

app = typer.Typer(
    help="podmill: podcast and audio intelligence, self-hosted and offline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"podmill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print version")
    ] = False,
) -> None:
    """podmill: podcast and audio intelligence, self-hosted and offline."""


# ------------------------------------------------------------------------ embedded

app.command()(run.run)
app.command()(run.show)
app.command()(run.demo)
app.command()(view.view)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")

# --------------------------------------------------------------------------- engine

app.command()(engine.worker)
app.command()(engine.submit)
app.add_typer(engine.jobs_app, name="jobs")
app.add_typer(engine.dead_app, name="dead")
app.add_typer(engine.queues_app, name="queues")

# ------------------------------------------------------------------------- platform

app.command()(serve.serve)
app.command()(serve.scheduler)
app.add_typer(serve.tenants_app, name="tenants")
app.add_typer(serve.keys_app, name="keys")
app.command()(subscribe.subscribe)

# --------------------------------------------------------------------------- corpus

app.command()(search.search)
app.command()(mcp.mcp)
app.add_typer(catalog.episodes_app, name="episodes")
app.add_typer(catalog.feeds_app, name="feeds")
app.add_typer(search.index_app, name="index")
app.command()(digest.digest)
app.command()(publish.feed)

# ------------------------------------------------------------------------- operate

app.add_typer(stress.stress_app, name="stress")


def main() -> None:
    """Console entry point: user errors print one line, never a traceback."""
    try:
        app()
    except PodmillError as exc:
        fail(str(exc))
    except ImportError as exc:  # an extra's module past the explicit checks: still one line
        missing = missing_extra(exc, "this command")
        if missing is None:
            raise
        fail(str(missing))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
