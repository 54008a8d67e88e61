"""`ganbench stats export`: real-data statistics (and features) as a file, for `eval --real-stats/--real-features`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ganbench.cli import app
from ganbench.cli.common import handle_errors, make_console
from ganbench.devices import DEVICE_HELP

stats_app = typer.Typer(no_args_is_help=True, help="Reference statistics files: export (FID mu/sigma, features).")
app.add_typer(stats_app, name="stats")


@stats_app.command("export")
@handle_errors
def export(
    out: Path = typer.Argument(..., help="The .npz to write (mu, sigma float64 + n, extractor, weight hash, resize, "
                                         "covariance)."),
    real: str = typer.Option(..., "--real", help="Real data: shapes, shapes:N, an image folder, .zip or .npz."),
    extractor: str = typer.Option("shapes-net", "--extractor", "-e", help="Feature extractor: shapes-net, inception, ..."),
    features: bool = typer.Option(False, "--features", help="Also store every feature vector (for KID and PR: "
                                                             "eval --real-features)."),
    n_real: Optional[int] = typer.Option(None, "--n-real", help="Real images to use (default: all)."),
    resolution: Optional[int] = typer.Option(None, "--resolution", "-r",
                                             help="Crop/resize the images to this power of two, as eval does for the "
                                                  "generator's resolution (default: the data's own size, else the "
                                                  "largest power of two within the shorter side)."),
    covariance: str = typer.Option("biased", "--covariance", help="sigma's convention: biased (÷N, NVlabs) or "
                                                                   "unbiased (÷(N-1), pytorch-fid / clean-fid)."),
    device: str = typer.Option("auto", "--device", help=f"Device: {DEVICE_HELP}."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per extractor batch."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Ignore non-image files in a folder or zip."),
    mirror: bool = typer.Option(False, "--mirror", help="Add the x-flipped copies (2N images), as `eval --mirror` "
                                "and NVlabs' metrics of runs trained with x-flips."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Compute the feature statistics of real data once and write them to a file."""
    from ganbench.devices import resolve_device
    from ganbench.metrics.stats_files import export_real_stats

    info = export_real_stats(real, out, extractor=extractor, features=features, n_real=n_real, resolution=resolution,
                             covariance=covariance, device=str(resolve_device(device)), batch_size=batch_size,
                             skip_unknown=skip_unknown, overwrite=overwrite, mirror=mirror)
    if as_json:
        typer.echo(json.dumps(info))
        return
    from ganbench.cli.common import esc

    what = "statistics + features" if features else "statistics"
    make_console().print(f"wrote {esc(info['path'])}: {what} of {info['n']} images ({esc(info['dataset'])}, "
                         f"{info['resolution']} px), {esc(info['extractor'])} {info['dim']}-d, resize "
                         f"{esc(info['resize'])}, covariance {info['covariance']}", highlight=False, soft_wrap=True)
