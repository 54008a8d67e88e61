"""`ganbench assets ...`."""

from __future__ import annotations

import typer

from ganbench.cli import app
from ganbench.cli.common import fail

assets_app = typer.Typer(no_args_is_help=True, help="Pretrained feature-network weights: list, import.")
app.add_typer(assets_app, name="assets")


@assets_app.command("list")
def list_() -> None:
    """Not available yet."""
    fail("`ganbench assets list` is not available in this build yet")
