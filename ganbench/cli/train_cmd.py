"""`ganbench train`: a thin wrapper over `ganbench.train.run_training`.

The trainer prints its own lines on stdout (one announce line, one NVlabs-style line per tick, a closing
`done:` line), on rank 0 only, so `ganbench train ... > log.txt` is a complete log; the progress bar is
drawn on stderr only when it is a terminal.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any, Optional

import typer

from ganbench.cli import app
from ganbench.cli.common import handle_errors
from ganbench.config import DEFAULT_TRAIN_KIMG
from ganbench.devices import DEVICE_HELP
from ganbench.errors import ConfigError


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings to a dict; values are Python literals when they parse as one, else strings."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip()] = value
    return out


def check_set_keys(settings: dict[str, Any], own: set[str]) -> None:
    """`--set KEY=...` for a key the command takes as an option (kimg, batch, cond, ...) is refused naming the flag,
    rather than a TypeError traceback (a value given twice) or a value quietly ignored."""
    for key in settings:
        if key in own:
            flag = "--augment/--augpipe" if key == "augment" else "--" + key.replace("_", "-")
            raise ConfigError(f"--set {key}: {key} is an option of `ganbench train`; pass {flag} instead")


@app.command("train")
@handle_errors
def train(
    model: str = typer.Option(..., "--model", "-m", help="Family: progan, stylegan, stylegan2, stylegan2-ada, "
                                                          "stylegan3-t, stylegan3-r (see `ganbench zoo`)."),
    data: str = typer.Option("shapes", "--data", help="`shapes`, `shapes:N`, or a folder / .zip / .npz of images."),
    resolution: int = typer.Option(32, "--resolution", "-r", help="Image resolution (power of two)."),
    kimg: float = typer.Option(DEFAULT_TRAIN_KIMG, "--kimg", help="Length of the run in thousands of real images shown to D; "
                               "a run shorter than a progressive family's growing schedule compresses it."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Total minibatch size (split across torchrun "
                                        "processes). Default: the preset's, else the family's (`ganbench zoo "
                                        "info`), e.g. 32 for stylegan2 as NVIDIA's examples, 8 for `tiny`."),
    seed: int = typer.Option(0, "--seed", help="Random seed (weights, data order, latents)."),
    out: Path = typer.Option(..., "--out", help="Run folder for snapshots, image grids and stats.jsonl."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Network preset, e.g. `tiny` for CPU runs, or an "
                                                                 "ADA preset (auto, stylegan2, paper256, cifar...)."),
    snapshot_kimg: float = typer.Option(4.0, "--snapshot-kimg", help="Checkpoint + image grid every K kimg."),
    initial_snapshot: bool = typer.Option(True, "--initial-snapshot/--no-initial-snapshot",
                                          help="Write the initial networks as kimg 0 before training, as NVlabs' "
                                               "network-snapshot-000000 (so eval scores where the run started)."),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the newest snapshot in --out."),
    cond: bool = typer.Option(False, "--cond", help="Class-conditional training on the dataset's labels."),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment",
                                           help="Force ADA on (family pipeline or bgc) or off; default: family's."),
    augpipe: Optional[str] = typer.Option(None, "--augpipe", help="ADA pipeline: blit, geom, color, filter, noise, "
                                                                   "cutout, bg, bgc, bgcf, bgcfn, bgcfnc."),
    device: str = typer.Option("auto", "--device", help=f"Device: {DEVICE_HELP}."),
    overrides: list[str] = typer.Option([], "--set", help="KEY=VALUE training or network option, e.g. "
                                                           "--set r1_gamma=1 --set channel_base=4096 (repeatable)."),
    mirror: bool = typer.Option(False, "--mirror", help="Also train on every image flipped left-right "
                                                        "(doubles the dataset, as NVlabs' --mirror)."),
    crop: Optional[str] = typer.Option(None, "--crop", help="How non-square images become square: center "
                                       "(default: the largest centred square), center-wide[:H] (NVlabs' "
                                       "center-crop-wide: a band H px high, default 3/4 of the resolution, on "
                                       "black), none (squash the whole image)."),
    resize: Optional[str] = typer.Option(None, "--resize", help="Filter that brings images to --resolution: "
                                         "lanczos (default, as NVlabs) or box."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Ignore non-image files in a dataset "
                                                                    "folder or zip (counted in one line)."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Show a progress bar (only when stderr is a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", help="Print nothing but errors (stats.jsonl is still written)."),
    resume_from: Optional[Path] = typer.Option(None, "--resume-from", help="Start a new run from this network "
                                               "file's weights: a ganbench checkpoint or an NVlabs / TF-era .pkl "
                                               "(transfer learning, NVlabs' --resume)."),
    freeze_d: int = typer.Option(0, "--freeze-d", help="Freeze the first N layers of D (NVlabs' --freezed)."),
    stop_on_nan: bool = typer.Option(False, "--stop-on-nan", help="Stop with an error at the first NaN or inf "
                                     "loss (a diverged run), writing no snapshot of the diverged networks. By "
                                     "default the run goes on, as NVlabs', with one warning line."),
) -> None:
    """Train a GAN family on a dataset, writing snapshots, image grids and a stats log into --out."""
    from ganbench.train import run_training

    aug: bool | str | None = augpipe if (augpipe and augment is not False) else augment
    options = dict(preset=preset, snapshot_kimg=snapshot_kimg, resume=resume, cond=cond, augment=aug, device=device,
                   progress=progress, quiet=quiet, resume_from=resume_from, freeze_d=freeze_d,
                   initial_snapshot=initial_snapshot, mirror=mirror, crop=crop, resize=resize,
                   skip_unknown=skip_unknown, stop_on_nan=stop_on_nan)
    settings = parse_overrides(overrides)
    check_set_keys(settings, {"model", "data", "resolution", "kimg", "batch", "seed", "out", *options})
    run_training(model, data, resolution, kimg, batch, seed, out, **options, **settings)
