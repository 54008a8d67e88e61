"""`ganbench datasets list | info | export | convert`: what datasets exist, what one holds, writing one out.

`convert` is NVlabs' dataset_tool.py: any source (folder, zip, npz, shapes) to an NVlabs-layout zip or
folder at one resolution (`--crop` = its `--transform`), dropping images the crop cannot use. Both also
write ganbench's `.npz` arrays (images + labels, no attributes); other file suffixes are refused up front.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from ganbench.cli import app
from ganbench.cli.common import console, esc, handle_errors, make_console, plain, progress_bar, warnings_as_lines

datasets_app = typer.Typer(no_args_is_help=True,
                            help="Embedded datasets and on-disk formats: list, info, export, convert.")
app.add_typer(datasets_app, name="datasets")

SPEC_HELP = "`shapes`, `shapes:N`, or a path to an image folder, .zip, .npz or .npy."
CROP_HELP = ("With --resolution: center (default, NVlabs center-crop: the largest centred square), "
             "center-wide[:H] (NVlabs center-crop-wide: a band H px high, default 3/4 of the resolution, on "
             "black; images too small for it are dropped by convert), none (squash the whole image: NVlabs "
             "dataset_tool's default when no --transform is given).")
RESIZE_HELP = "With --resolution: resize filter lanczos (default, as NVlabs) or box."
SKIP_HELP = "Skip non-image files in a folder or zip (counted in one warning line) instead of failing."
NPZ_HELP = ("{0}.npz (`images` uint8 [N,H,W,C] + `labels`, memory-mapped when read; shapes attributes are not "
            "stored in arrays)")


def _open(spec: str, resolution: Optional[int], n: Optional[int], seed: Optional[int], channels: Optional[int],
          skip_unknown: bool, crop: Optional[str] = None, resize: Optional[str] = None) -> Any:
    """open_dataset with only the options the user gave (others keep each dataset's defaults)."""
    from ganbench.data import open_dataset

    kw = {k: v for k, v in (("n", n), ("seed", seed), ("channels", channels), ("crop", crop), ("resize", resize))
          if v is not None}
    with warnings_as_lines():
        return open_dataset(spec, resolution=resolution, skip_unknown=skip_unknown, **kw)


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
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help=SKIP_HELP),
    crop: Optional[str] = typer.Option(None, "--crop", help=CROP_HELP),
    resize: Optional[str] = typer.Option(None, "--resize", help=RESIZE_HELP),
    verify: bool = typer.Option(False, "--verify", help="Decode every image (and check each .npz member's "
                                "CRC-32), failing on the first bad one."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Print a dataset's size, resolution, channels, label_dim and identity (its cache key)."""
    dataset = _open(spec, resolution, n, seed, channels, skip_unknown, crop, resize)
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
    out: Path = typer.Argument(..., metavar="OUT", help=f"OUT.zip (one archive), {NPZ_HELP.format('OUT')} or "
                                                      f"OUT_DIR (a new folder)."),
    n: Optional[int] = typer.Option(None, "--n", help="Number of images (shapes default 10000; files: first N)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Power-of-two output size."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of an embedded dataset."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Convert every image to 1 or 3 channels."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help=SKIP_HELP),
    crop: Optional[str] = typer.Option(None, "--crop", help=CROP_HELP),
    resize: Optional[str] = typer.Option(None, "--resize", help=RESIZE_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
) -> None:
    """Write a dataset as PNGs + dataset.json (labels) + attributes.json (shapes ground truth), or .npz, atomically."""
    _check_output(out, overwrite)
    dataset = _open(spec, resolution, n, seed, channels, skip_unknown, crop, resize)
    _write(dataset, out, overwrite, "exporting", drop=False)


@datasets_app.command("convert")
@handle_errors
def convert(
    src: str = typer.Argument(..., metavar="SRC", help=SPEC_HELP),
    dest: Path = typer.Argument(..., metavar="DEST", help=f"DEST.zip (one archive, as NVlabs trains from), "
                                                          f"{NPZ_HELP.format('DEST')} or a new folder."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r", help="Power-of-two output size (default: "
                                             "the native size, which must then be square)."),
    crop: Optional[str] = typer.Option(None, "--crop", help=CROP_HELP),
    resize: Optional[str] = typer.Option(None, "--resize", help=RESIZE_HELP),
    n: Optional[int] = typer.Option(None, "--n", "--max-images", help="Convert only the first N images."),
    channels: Optional[int] = typer.Option(None, "--channels", help="Convert every image to 1 or 3 channels."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help=SKIP_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace DEST if it exists."),
) -> None:
    """Convert images to an NVlabs-compatible dataset: 00000/img00000000.png ... + dataset.json (labels kept).

    The equivalent of NVlabs' `dataset_tool.py --source SRC --dest DEST --resolution RxR --transform ...`;
    the result trains and evaluates the same in ganbench and in NVlabs' stylegan2-ada / stylegan3 code.
    DEST.npz writes ganbench's array format instead (images + labels; attributes are not stored in arrays).
    """
    _check_output(dest, overwrite)
    dataset = _open(src, resolution, n, None, channels, skip_unknown, crop, resize)
    _write(dataset, dest, overwrite, "converting", drop=True)


def _check_output(out: Path, overwrite: bool) -> None:
    """Refuse an output export cannot write (a .npy, .tar, ... name, or a path in the way) before reading the source."""
    from ganbench.data.export import output_kind

    output_kind(out, overwrite)


def _write(dataset: Any, out: Path, overwrite: bool, verb: str, drop: bool) -> None:
    """Export with a progress bar and one summary line (plus one line counting dropped images)."""
    from ganbench.data.export import export_dataset

    dropped: list[str] = []
    with progress_bar(f"{verb} {dataset.name}", len(dataset)) as advance:
        path = export_dataset(dataset, out, overwrite=overwrite, progress=advance,
                              on_drop=dropped.append if drop else None)
    written = len(dataset) - len(dropped)
    console.print(esc(f"wrote {written} images ({dataset.resolution}x{dataset.resolution}, "
                         f"{dataset.num_channels} channel(s), label_dim {dataset.label_dim}) to {path}"),
                  highlight=False)
    if dropped:
        console.print(esc(f"dropped {len(dropped)} image(s) the crop cannot use, as NVlabs' dataset tool does; "
                             f"first: {dropped[0]}"), highlight=False, soft_wrap=True)
