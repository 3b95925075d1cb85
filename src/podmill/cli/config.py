"""``podmill config``: the effective configuration and where each value came from."""

from __future__ import annotations

from typing import Annotated

import typer

from podmill.cli.options import ConfigOpt
from podmill.cli.output import out, print_json, table
from podmill.settings import effective_values, load_settings

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show(
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print every effective setting and where its value came from."""
    # load_settings, not settings.load: printing the settings configures nothing
    settings, provenance = load_settings({}, config)
    values = effective_values(settings)
    if as_json:
        payload = {
            k: {"value": v, "source": provenance.get(k, "default")} for k, v in values.items()
        }
        print_json(payload, indent=2)
        return
    shown = table(None, "setting", "value", "from")
    for key, value in values.items():
        shown.add_row(key, str(value), provenance.get(key, "default"))
    out.print(shown)
