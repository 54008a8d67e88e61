"""`ganbench zoo ...`."""

from __future__ import annotations

import typer

from ganbench.cli import app
from ganbench.cli.common import fail

zoo_app = typer.Typer(no_args_is_help=True, help="List and inspect the registered networks.")
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("list")
def list_() -> None:
    """Not available yet."""
    fail("`ganbench zoo list` is not available in this build yet")
