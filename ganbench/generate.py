"""Images from a network file by seed, with NVlabs gen_images.py semantics: the same seed is the same picture.

Seed s draws `z = np.random.RandomState(s).randn(1, z_dim)` (float64, as gen_images.py passes it); labels are
`zeros([1, c_dim])` with a one at `class_idx` (required for a conditional network, ignored with a warning for an
unconditional one); a StyleGAN3 generator gets the inverse of `make_transform(translate, rotate)` in
`synthesis.input.transform` (the identity by default); images become uint8 as `(x * 127.5 + 128).clamp(0, 255)`
truncated. One seed per forward pass, as gen_images.py runs them.
"""

from __future__ import annotations

import math

import re
import warnings
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ganbench.devices import resolve_device, use_exact_fp32
from ganbench.errors import ConfigError

NOISE_MODES = ("const", "random", "none")
GENERATORS = ("G_ema", "G")   # the networks that draw images (a file's D does not)
_RANGE = re.compile(r"^(\d+)-(\d+)$")


def parse_seeds(text: str) -> list[int]:
    """'0,1,4-6' -> [0, 1, 4, 5, 6] (gen_images.py's --seeds syntax)."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        m = _RANGE.match(part)
        if m:
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise ConfigError(f"--seeds range {part!r} runs backwards")
            seeds.extend(range(lo, hi + 1))
        elif part.isdigit():
            seeds.append(int(part))
        else:
            raise ConfigError(f"--seeds {text!r}: expected numbers and ranges like 0,1,4-6, got {part!r}")
    for s in seeds:
        if s >= 2 ** 32:
            raise ConfigError(f"seed {s} is too large (numpy's RandomState takes seeds below 2**32)")
    return seeds


def parse_vec2(text: str) -> tuple[float, float]:
    """'0.3,1' -> (0.3, 1.0) (gen_images.py's --translate syntax)."""
    parts = str(text).split(",")
    try:
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    raise ConfigError(f"expected two numbers like 0.3,1 for --translate, got {text!r}")


def seed_latent(seed: int, z_dim: int) -> torch.Tensor:
    """The float64 latent [1, z_dim] that gen_images.py draws for `seed`."""
    return torch.from_numpy(np.random.RandomState(seed).randn(1, z_dim))


def class_label(G: nn.Module, class_idx: int | None) -> torch.Tensor:
    """gen_images.py's label: zeros([1, c_dim]) with a one at `class_idx`."""
    c_dim = int(getattr(G, "c_dim", 0) or 0)
    label = torch.zeros([1, c_dim])
    if c_dim:
        if class_idx is None:
            raise ConfigError(f"this network is conditional ({c_dim} classes): pass --class 0..{c_dim - 1}")
        if not 0 <= class_idx < c_dim:
            raise ConfigError(f"--class {class_idx} is out of range for a network with {c_dim} classes")
        label[:, class_idx] = 1
    elif class_idx is not None:
        warnings.warn(f"--class {class_idx} ignored: the network is unconditional")
    return label


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """NCHW float images in about [-1, 1] -> NHWC uint8, NVlabs' way: clamp(x * 127.5 + 128), then truncate."""
    return (images.permute(0, 2, 3, 1) * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def _set_transform(G: nn.Module, translate: Sequence[float], rotate: float) -> None:
    synthesis = getattr(G, "synthesis", None)
    if hasattr(synthesis, "input"):
        from model_zoo.stylegan3 import set_transform

        set_transform(G, translate, rotate)
    elif tuple(translate) != (0, 0) or rotate != 0:
        warnings.warn("--translate / --rotate ignored: only StyleGAN3 generators take an input transform")


def _check_sampling(truncation_psi: float, noise_mode: str) -> None:
    if noise_mode not in NOISE_MODES:
        raise ConfigError(f"--noise-mode must be one of {', '.join(NOISE_MODES)}, got {noise_mode!r}")
    if not math.isfinite(truncation_psi):
        raise ConfigError(f"--trunc must be a finite number, got {truncation_psi}")


def _checked_label(G: nn.Module, truncation_psi: float, class_idx: int | None, noise_mode: str) -> torch.Tensor:
    """Check the options against network `G` (before any image is drawn); the label to pass it."""
    _check_sampling(truncation_psi, noise_mode)
    if not hasattr(G, "z_dim"):
        raise ConfigError(f"{type(G).__name__} is not a generator (it has no z_dim): generate needs G_ema or G")
    if truncation_psi != 1 and not hasattr(G, "mapping"):
        raise ConfigError(f"--trunc {truncation_psi:g} needs a W space; {type(G).__name__} has none (use --trunc 1)")
    device = next(G.parameters()).device
    return class_label(G, class_idx).to(device)


@torch.no_grad()
def _draw(G: nn.Module, seeds: Sequence[int], label: torch.Tensor, truncation_psi: float,
          noise_mode: str) -> Iterator[tuple[int, np.ndarray]]:
    device = label.device
    for seed in seeds:
        z = seed_latent(seed, int(G.z_dim)).to(device)
        img = G(z, label, truncation_psi=truncation_psi, noise_mode=noise_mode)
        yield seed, to_uint8(img)[0].cpu().numpy()


@torch.no_grad()
def generate(G: nn.Module, seeds: Sequence[int], truncation_psi: float = 1.0, class_idx: int | None = None,
             noise_mode: str = "const", translate: Sequence[float] = (0.0, 0.0),
             rotate: float = 0.0) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (seed, HWC uint8 image) for each seed, exactly as gen_images.py computes them."""
    label = _checked_label(G, truncation_psi, class_idx, noise_mode)
    _set_transform(G, translate, rotate)
    yield from _draw(G, seeds, label, truncation_psi, noise_mode)


def _png_writer(image: np.ndarray):
    from PIL import Image

    pil = Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image, "L" if image.shape[2] == 1 else "RGB")
    return lambda f: pil.save(f, format="PNG")


def load_generator(path: str | Path, which: str = "G_ema", device: str | torch.device = "cpu") -> nn.Module:
    """Generator `which` (G_ema or G) of any network file `model_zoo.load` reads, in eval mode."""
    import model_zoo

    check_network(which)
    return model_zoo.load(path, which=which, device=device)


def check_network(which: str) -> None:
    """`--network` names a generator: G_ema or G (a network file's D draws no images)."""
    if which not in GENERATORS:
        why = " (D is the discriminator, which draws no images)" if which == "D" else ""
        raise ConfigError(f"--network {which!r}: generate needs a generator, {' or '.join(GENERATORS)}{why}")


def check_grid_cols(grid_cols: int | None) -> None:
    """`--grid-cols` is a positive number of images per row, or None for a near-square grid."""
    if grid_cols is not None and grid_cols < 1:
        raise ConfigError(f"--grid-cols must be a positive number of images per grid row, got {grid_cols}")


class GenerationJob:
    """A generation whose options and network have been checked: `run()` draws and writes the images.

    Made by `prepare_files`, so that every bad option is reported before the first image (and before a
    caller starts a progress bar); `generate_files` is `prepare_files(...).run(progress)`.
    """

    def __init__(self, G: nn.Module, seeds: Sequence[int], label: torch.Tensor, truncation_psi: float,
                 noise_mode: str, outdir: Path | None, grid: Path | None, grid_cols: int | None) -> None:
        self.G, self.seeds, self.label = G, list(seeds), label
        self.truncation_psi, self.noise_mode = truncation_psi, noise_mode
        self.outdir, self.grid, self.grid_cols = outdir, grid, grid_cols

    def run(self, progress: Callable[[int], None] | None = None) -> list[Path]:
        """Write the images; returns the files written (per-seed PNGs, then the grid)."""
        from ganbench.checkpoint import atomic_write_bytes

        written: list[Path] = []
        images = []
        for seed, image in _draw(self.G, self.seeds, self.label, self.truncation_psi, self.noise_mode):
            if self.outdir is not None:
                target = self.outdir / f"seed{seed:04d}.png"
                atomic_write_bytes(target, _png_writer(image))
                written.append(target)
            if self.grid is not None:
                images.append(image)
            if progress is not None:
                progress(1)
        if self.grid is not None:
            from ganbench.train.loop import grid_png

            tiles = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
            atomic_write_bytes(self.grid, grid_png(tiles, self.grid_cols or int(np.ceil(np.sqrt(len(images))))))
            written.append(self.grid)
        return written


def prepare_files(path: str | Path, seeds: Sequence[int], outdir: str | Path | None = None,
                  grid: str | Path | None = None, truncation_psi: float = 1.0, class_idx: int | None = None,
                  noise_mode: str = "const", translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0,
                  device: str | None = None, which: str = "G_ema", grid_cols: int | None = None) -> GenerationJob:
    """Check every option of `generate_files` and load the network, writing nothing; the job to `run()`."""
    if outdir is None and grid is None:
        raise ConfigError("nothing to write: give --outdir DIR and/or --grid FILE.png")
    if not seeds:
        raise ConfigError("--seeds names no seeds")
    if grid is not None and Path(grid).suffix.lower() != ".png":
        raise ConfigError(f"--grid {grid}: the grid is written as PNG; name it *.png")
    check_grid_cols(grid_cols)
    check_network(which)
    _check_sampling(truncation_psi, noise_mode)
    device = resolve_device(device)  # None / auto: CUDA when present
    use_exact_fp32(device)  # the same pixels eval generates for these latents (no TF32 on CUDA)
    G = load_generator(path, which=which, device=device)
    label = _checked_label(G, truncation_psi, class_idx, noise_mode)
    with torch.no_grad():
        _set_transform(G, translate, rotate)
    return GenerationJob(G, seeds, label, truncation_psi, noise_mode, None if outdir is None else Path(outdir),
                         None if grid is None else Path(grid), grid_cols)


def generate_files(path: str | Path, seeds: Sequence[int], outdir: str | Path | None = None,
                   grid: str | Path | None = None, truncation_psi: float = 1.0, class_idx: int | None = None,
                   noise_mode: str = "const", translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0,
                   device: str | None = None, which: str = "G_ema", grid_cols: int | None = None,
                   progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write `seed{seed:04d}.png` per seed into `outdir` and/or one tiled `grid` PNG; returns the files written.

    `path` is any network file `model_zoo.load` reads (ganbench checkpoint, NVlabs or TF-era pickle); `which` is
    the generator to draw from, G_ema or G. Every option is checked before the first image is drawn.
    """
    return prepare_files(path, seeds, outdir=outdir, grid=grid, truncation_psi=truncation_psi, class_idx=class_idx,
                         noise_mode=noise_mode, translate=translate, rotate=rotate, device=device, which=which,
                         grid_cols=grid_cols).run(progress)
