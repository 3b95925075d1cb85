"""``podmill stress soak|ramp|ab``."""

from __future__ import annotations

import typer

stress_app = typer.Typer(
    help="Drive a running API with a workload and report.", no_args_is_help=True
)
