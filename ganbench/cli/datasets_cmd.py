"""`ganbench datasets list | info | export`: what datasets exist, what one holds, and writing one out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ganbench.cli import app
from ganbench.cli.common import console, esc, handle_errors, make_console, plain, progress_bar, warnings_as_lines

datasets_app = typer.Typer(no_args_is_help=True, help="Embedded datasets and on-disk formats: list, info, export.")
app.add_typer(datasets_app, name="datasets")

SPEC_HELP = "`shapes`, `shapes:N`, or a path to an image folder, .zip, .npz or .npy."


def _open(spec: str, resolution: Optional[int], n: Optional[int], seed: Optional[int], channels: Optional[int],
          skip_unknown: bool) -> Any:
    """open_dataset with only the options the user gave (others keep each dataset's defaults)."""
    from ganbench.data import open_dataset

    kw = {k: v for k, v in (("n", n), ("seed", seed), ("channels", channels)) if v is not None}
    if skip_unknown:
        kw["skip_unknown"] = True
    with warnings_as_lines():
        return open_dataset(spec, resolution=resolution, **kw)


@datasets_app.command("list")
@handle_errors
def list_() -> None:
    """List the embedded datasets and the on-disk formats `open_dataset` accepts."""
    from ganbench.data import EMBEDDED, FORMATS

    out = make_console()
    for title, registry in (("embedded datasets", EMBEDDED), ("formats", FORMATS)):
        table = Table(title=title, title_justify="left", show_lines=False)
        for column in ("name", "spec", "description"):
            table.add_column(column, overflow="fold")
        for name in registry.names():
            source = registry.get(name)
            table.add_row(plain(name), plain(source.usage), plain(source.description))
        out.print(table)


@datasets_app.command("info")
@handle_errors
def info(
    spec: str = typer.Argument(..., metavar="SPEC", help=SPEC_HELP),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Centre-crop and resize to this power of two."),
    n: Optional[int] = typer.Option(None, "--n", help="Use only the first N images (shapes: generate N)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of an embedded dataset."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Convert every image to 1 or 3 channels."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Skip non-image files (with a warning)."),
    verify: bool = typer.Option(False, "--verify", help="Decode every image, failing on the first bad one."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Print a dataset's size, resolution, channels, label_dim and identity (its cache key)."""
    dataset = _open(spec, resolution, n, seed, channels, skip_unknown)
    if verify:
        with progress_bar("verifying", len(dataset)) as advance:
            dataset.verify(progress=advance)
    facts = dataset.describe()
    if as_json:
        typer.echo(json.dumps(facts))
        return
    table = Table(show_header=False, box=None)
    for key, value in facts.items():
        table.add_row(plain(key), plain(value))
    make_console().print(table)


@datasets_app.command("export")
@handle_errors
def export(
    spec: str = typer.Argument(..., metavar="SPEC", help=SPEC_HELP),
    out: Path = typer.Argument(..., metavar="OUT", help="OUT.zip (one archive) or OUT_DIR (a new folder)."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of images (shapes default 10000; files: first N)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Power-of-two output size."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of an embedded dataset."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Convert every image to 1 or 3 channels."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Skip non-image files (with a warning)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Write a dataset as PNGs + dataset.json (labels) + attributes.json (shapes ground truth), atomically."""
    from ganbench.data.export import export_dataset

    dataset = _open(spec, resolution, n, seed, channels, skip_unknown)
    with progress_bar(f"exporting {dataset.name}", len(dataset)) as advance:
        path = export_dataset(dataset, out, overwrite=overwrite, progress=advance)
    console.print(f"wrote {len(dataset)} images ({dataset.resolution}x{dataset.resolution}, "
                  f"{dataset.num_channels} channel(s), label_dim {dataset.label_dim}) to {esc(path)}", highlight=False)
