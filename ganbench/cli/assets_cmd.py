"""`ganbench assets list | import`: the pretrained weight files, where they are, and hand-placing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ganbench.cli import app
from ganbench.cli.common import handle_errors, make_console, plain

assets_app = typer.Typer(no_args_is_help=True, help="Pretrained feature-network weights: list, import.")
app.add_typer(assets_app, name="assets")


@assets_app.command("list")
@handle_errors
def list_(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
          urls: bool = typer.Option(False, "--urls", help="Show the download URL of each asset.")) -> None:
    """Show every registered asset, its local path, and whether it is present and its sha256 verified."""
    from ganbench.assets import status

    rows = status()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="assets", title_justify="left")
    columns = ["name", "present", "verified", "path"] + (["url"] if urls else []) + ["description"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*[plain(row[c]) for c in columns])
    make_console().print(table)


@assets_app.command("import")
@handle_errors
def import_(path: Path = typer.Argument(..., help="A weight file downloaded by hand."),
            name: Optional[str] = typer.Option(None, "--name", help="Asset name (default: matched by hash or file name)."),
            force: bool = typer.Option(False, "--force", help="Replace a cached copy that passes its checks.")
            ) -> None:
    """Copy a hand-downloaded weight file into the cache after checking it: sha256 (when the registry has one),
    that it loads as the asset's format and holds the shapes its users need. A good cached copy is kept
    unless --force."""
    from ganbench.assets import import_asset

    dest = import_asset(path, name, force=force)
    typer.echo(f"imported {path} -> {dest}")
