"""`ganbench datasets ...`."""

from __future__ import annotations

import typer

from ganbench.cli import app
from ganbench.cli.common import fail

datasets_app = typer.Typer(no_args_is_help=True, help="List and export datasets.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
def list_() -> None:
    """Not available yet."""
    fail("`ganbench datasets list` is not available in this build yet")
