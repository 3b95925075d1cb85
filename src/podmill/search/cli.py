"""``podmill search`` and ``podmill index``."""

from __future__ import annotations

import typer

index_app = typer.Typer(help="The search index: rebuild it from artifacts.", no_args_is_help=True)


def search(query: str) -> None:
    """Search topics and passages across every processed episode."""
    raise NotImplementedError


@index_app.command("rebuild")
def index_rebuild() -> None:
    """Rebuild the search index from the artifacts on disk."""
    raise NotImplementedError
