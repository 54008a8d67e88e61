"""`ganbench generate`: images by seed from any network file, as NVlabs' gen_images.py draws them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ganbench.cli import app
from ganbench.cli.common import console, handle_errors, progress_bar, warnings_as_lines
from ganbench.devices import DEVICE_HELP, resolve_device


@app.command("generate")
@handle_errors
def generate(
    path: Path = typer.Argument(..., help="Network file: a ganbench checkpoint, an NVlabs .pkl or a TF-era .pkl."),
    seeds: str = typer.Option(..., "--seeds", help="Seeds, e.g. 0-7 or 0,1,4-6; seed s uses "
                                                   "np.random.RandomState(s).randn(1, z_dim)."),
    trunc: float = typer.Option(1.0, "--trunc", help="Truncation psi (style-based families)."),
    class_idx: Optional[int] = typer.Option(None, "--class", help="Class label (required for conditional networks)."),
    noise_mode: str = typer.Option("const", "--noise-mode", help="const, random or none."),
    outdir: Optional[Path] = typer.Option(None, "--outdir", help="Write seed0000.png, seed0001.png, ... here "
                                          "(refused when it holds other images, which eval would score with these)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Delete the images already in --outdir that this run "
                                   "does not rewrite (once its own are written), so the folder holds one set."),
    grid: Optional[Path] = typer.Option(None, "--grid", help="Also (or only) write all images tiled into FILE.png."),
    grid_cols: Optional[int] = typer.Option(None, "--grid-cols", help="Images per grid row (default: near-square)."),
    translate: str = typer.Option("0,0", "--translate", help="StyleGAN3: translate the output by X,Y (image units)."),
    rotate: float = typer.Option(0.0, "--rotate", help="StyleGAN3: rotate the output by this many degrees."),
    network: str = typer.Option("G_ema", "--network", help="Which generator: G_ema or G."),
    device: str = typer.Option("auto", "--device", help=f"Device: {DEVICE_HELP}."),
) -> None:
    """Generate images by seed (NVlabs gen_images.py semantics: the same seed gives the same picture)."""
    from ganbench.generate import check_grid_cols, check_network, parse_seeds, parse_vec2, prepare_files

    # Every bad option is one line before any progress bar starts and before anything is loaded or written.
    seed_list = parse_seeds(seeds)
    vec = parse_vec2(translate)
    check_grid_cols(grid_cols)
    check_network(network)
    device = str(resolve_device(device))  # a device this machine lacks: one line before any progress bar
    with warnings_as_lines():
        # Loads the network and checks it against --class / --trunc (still before the bar and any file).
        job = prepare_files(path, seed_list, outdir=outdir, grid=grid, truncation_psi=trunc, class_idx=class_idx,
                            noise_mode=noise_mode, translate=vec, rotate=rotate, device=device, which=network,
                            grid_cols=grid_cols, overwrite=overwrite)
        with progress_bar("generating", len(seed_list)) as advance:
            written = job.run(progress=advance)
    images = [p for p in written if p != grid]
    if images:
        console.print(f"wrote {len(images)} image(s) to {outdir}", highlight=False, markup=False)
    if grid is not None:
        console.print(f"wrote grid {grid}", highlight=False, markup=False)
