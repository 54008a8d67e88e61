"""Images from a network file by seed, with NVlabs gen_images.py semantics: the same seed is the same picture.

Seed s draws `z = np.random.RandomState(s).randn(1, z_dim)` (float64, as gen_images.py passes it); labels are
`zeros([1, c_dim])` with a one at `class_idx` (required for a conditional network, ignored with a warning for an
unconditional one); a StyleGAN3 generator gets the inverse of `make_transform(translate, rotate)` in
`synthesis.input.transform` (the identity by default); images become uint8 as `(x * 127.5 + 128).clamp(0, 255)`
truncated. One seed per forward pass, as gen_images.py runs them.

Where gen_images.py writes whatever comes out, `generate_files` refuses what would leave a wrong image set for eval
to score: NaN or inf in the generator output (a diverged network, whose PNGs would be black), a seed listed twice,
and an --outdir holding images this run would not replace (another network's, other options', or files the user
put there), which eval would score as one set with this run's (`--overwrite` deletes them instead). Images are
drawn into a hidden folder inside --outdir and moved into place only once every one is drawn, so a run that
fails (NaN at a later seed, Ctrl-C, a full disk) leaves --outdir exactly as it was. A hidden
`.ganbench-generate.json` records which network, options and seeds made the folder's images, so the same
network and options may add seeds in parts (0-24999, then 25000-49999) without --overwrite.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ganbench.devices import resolve_device, use_exact_fp32
from ganbench.errors import ConfigError, NonFiniteError

NOISE_MODES = ("const", "random", "none")
GENERATORS = ("G_ema", "G")   # the networks that draw images (a file's D does not)
_RANGE = re.compile(r"^(\d+)-(\d+)$")
MANIFEST = ".ganbench-generate.json"   # hidden, so eval's image-set reader never sees it
_STAGE = re.compile(r"^\.ganbench-generate-(?P<host>[A-Za-z0-9_-]*)-(?P<pid>\d+)-[A-Za-z0-9_]+\.tmp$")


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
    check_unique_seeds(seeds, f"--seeds {text}")
    return seeds


def check_unique_seeds(seeds: Sequence[int], where: str = "--seeds") -> None:
    """Each seed once: a repeated seed is the same picture written twice over one file (seed%04d.png)."""
    seen: set[int] = set()
    for s in seeds:
        if s in seen:
            raise ConfigError(f"{where} names seed {s} twice; each seed is one image (seed{s:04d}.png): "
                              f"list every seed once")
        seen.add(s)


def seed_ranges(seeds: Sequence[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (the --seeds syntax, compact)."""
    parts: list[str] = []
    ordered = sorted(set(seeds))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


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
        if not bool(torch.isfinite(img).all()):
            # uint8 conversion would make NaN black (and inf white): a picture eval scores, of nothing
            what = "NaN" if bool(torch.isnan(img).any()) else "inf"
            raise NonFiniteError(f"the generator output for seed {seed} is {what}: the network diverged",
                                 source="generator")
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


def _image_files(folder: Path) -> list[str]:
    """The image files eval would read as the set `folder` (recursive, hidden ones skipped), as relative paths."""
    from ganbench.data.files import IMAGE_EXTENSIONS, folder_files, is_ignored

    if not folder.is_dir():
        return []
    return [n for n in folder_files(folder) if n.lower().endswith(IMAGE_EXTENSIONS) and not is_ignored(n)]


def _read_manifest(folder: Path) -> dict | None:
    try:
        doc = json.loads((folder / MANIFEST).read_text())
        return doc if isinstance(doc, dict) and isinstance(doc.get("identity"), dict) else None
    except (OSError, ValueError):
        return None


def _manifest_seeds(doc: dict | None) -> set[int]:
    try:
        return set(parse_seeds(doc["seeds"])) if doc and doc.get("seeds") else set()
    except (ConfigError, TypeError, KeyError):
        return set()


def _seed_file(seed: int) -> str:
    return f"seed{seed:04d}.png"


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40]


def _remove_stale_stages(folder: Path) -> None:
    """Drop the hidden staging folders an earlier run on this machine left when it was killed (its pid is gone)."""
    for item in folder.iterdir():
        m = _STAGE.match(item.name)
        if not m or not item.is_dir() or m.group("host") != _host():
            continue
        try:
            os.kill(int(m.group("pid")), 0)
        except ProcessLookupError:
            shutil.rmtree(item, ignore_errors=True)
        except (OSError, OverflowError):   # alive under another user, or not a pid here: leave it
            continue


class OutdirPlan:
    """What a run does to --outdir, decided (and refused) before any image is drawn.

    The folder may hold images that this run rewrites (same names), and images the same network and options made
    earlier (recorded in MANIFEST: a set written in parts). Any other image file there would make eval score a mixed
    set: refused, unless `overwrite`, which deletes them once this run's images are all in place.
    """

    def __init__(self, folder: Path, seeds: Sequence[int], identity: dict, source: str, overwrite: bool) -> None:
        self.folder, self.identity, self.source = folder, identity, source
        self.seeds = list(seeds)
        manifest = _read_manifest(folder)
        same = manifest is not None and manifest.get("identity") == identity
        # --overwrite: the folder becomes exactly this run's seeds, also when earlier parts of the same set are there
        self.kept_seeds = _manifest_seeds(manifest) if same and not overwrite else set()
        ours = {_seed_file(s) for s in (*self.seeds, *self.kept_seeds)}
        others = [name for name in _image_files(folder) if name not in ours]
        if others and not overwrite:
            origin = ""
            if manifest is not None and not same:
                origin = f" (made from {manifest.get('source', '?')} or with other options)"
            raise ConfigError(
                f"--outdir {folder} already holds {len(others)} image(s) that this run would not replace, "
                f"e.g. {others[0]}{origin}: eval would score them as one set with this run's; use an empty "
                f"--outdir, or pass --overwrite to delete them once this run's images are written")
        self.remove = others

    def stage(self) -> Path:
        """A hidden folder inside --outdir (same file system: moving out is a rename) for this run's images."""
        self.folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(self.folder)
        try:
            return Path(tempfile.mkdtemp(prefix=f".ganbench-generate-{_host()}-{os.getpid()}-", suffix=".tmp",
                                         dir=self.folder))
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, str(self.folder)) from None

    def commit(self, stage: Path) -> list[Path]:
        """Move the drawn images into place, delete what --overwrite replaces, record the set; the files moved."""
        from ganbench.checkpoint import atomic_write_bytes

        written = []
        for seed in self.seeds:
            target = self.folder / _seed_file(seed)
            os.replace(stage / target.name, target)
            written.append(target)
        for name in self.remove:
            (self.folder / name).unlink(missing_ok=True)
        seeds = set(self.seeds) | self.kept_seeds
        latest = _read_manifest(self.folder)    # another part of the same set may have finished meanwhile
        if latest is not None and latest.get("identity") == self.identity and not self.remove:
            seeds |= _manifest_seeds(latest)
        doc = {"identity": self.identity, "source": self.source, "seeds": seed_ranges(seeds)}
        text = (json.dumps(doc, indent=1) + "\n").encode()
        atomic_write_bytes(self.folder / MANIFEST, lambda f: f.write(text))
        return written


class GenerationJob:
    """A generation whose options, network and --outdir have been checked: `run()` draws and writes the images.

    Made by `prepare_files`, so that every bad option is reported before the first image (and before a
    caller starts a progress bar); `generate_files` is `prepare_files(...).run(progress)`.
    """

    def __init__(self, G: nn.Module, seeds: Sequence[int], label: torch.Tensor, truncation_psi: float,
                 noise_mode: str, outdir: OutdirPlan | None, grid: Path | None, grid_cols: int | None,
                 source: str = "network") -> None:
        self.G, self.seeds, self.label = G, list(seeds), label
        self.truncation_psi, self.noise_mode = truncation_psi, noise_mode
        self.plan, self.grid, self.grid_cols = outdir, grid, grid_cols
        self.outdir = None if outdir is None else outdir.folder
        self.source = source

    def run(self, progress: Callable[[int], None] | None = None) -> list[Path]:
        """Write the images; returns the files written (per-seed PNGs, then the grid).

        Nothing reaches --outdir or --grid before every image is drawn and finite: on any error (NaN output,
        Ctrl-C, a full disk) the files there are as they were.
        """
        from ganbench.checkpoint import atomic_write_bytes

        images = []
        made = [] if self.outdir is None else [p for p in (self.outdir, *self.outdir.parents) if not p.exists()]
        stage = self.plan.stage() if self.plan is not None else None
        ok = False
        try:
            for seed, image in _draw(self.G, self.seeds, self.label, self.truncation_psi, self.noise_mode):
                if stage is not None:
                    _write_staged(stage / _seed_file(seed), image, self.outdir / _seed_file(seed))
                if self.grid is not None:
                    images.append(image)
                if progress is not None:
                    progress(1)
            if self.grid is not None:
                from ganbench.train.loop import grid_png

                tiles = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)
                atomic_write_bytes(self.grid, grid_png(tiles, self.grid_cols or int(np.ceil(np.sqrt(len(images))))))
            written = self.plan.commit(stage) if self.plan is not None and stage is not None else []
            ok = True
        except NonFiniteError as exc:
            raise NonFiniteError(f"{self.source}: {exc}; nothing was written", source=exc.source) from None
        finally:
            if stage is not None:
                shutil.rmtree(stage, ignore_errors=True)
            for folder in ([] if ok else made):    # folders this run made, innermost first, while still empty
                try:
                    folder.rmdir()
                except OSError:
                    break
        return written + ([self.grid] if self.grid is not None else [])


def _write_staged(path: Path, image: np.ndarray, target: Path) -> None:
    """One PNG into the staging folder, on disk before it is moved; an OSError names the file the user asked for."""
    try:
        with open(path, "wb") as f:
            _png_writer(image)(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(target)) from None


def _identity(path: str | Path, which: str, truncation_psi: float, class_idx: int | None, noise_mode: str,
              translate: Sequence[float], rotate: float) -> dict:
    """What decides the pictures of a seed: the network file's content and the sampling options."""
    from ganbench.assets import sha256_file

    return {"network_sha256": sha256_file(path), "network": which, "trunc": float(truncation_psi),
            "class": class_idx, "noise_mode": noise_mode, "translate": [float(t) for t in translate],
            "rotate": float(rotate)}


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.expanduser().resolve(), folder.expanduser().resolve()
    return path == folder or folder in path.parents


def prepare_files(path: str | Path, seeds: Sequence[int], outdir: str | Path | None = None,
                  grid: str | Path | None = None, truncation_psi: float = 1.0, class_idx: int | None = None,
                  noise_mode: str = "const", translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0,
                  device: str | None = None, which: str = "G_ema", grid_cols: int | None = None,
                  overwrite: bool = False) -> GenerationJob:
    """Check every option of `generate_files`, the network and --outdir, writing nothing; the job to `run()`."""
    if outdir is None and grid is None:
        raise ConfigError("nothing to write: give --outdir DIR and/or --grid FILE.png")
    if not seeds:
        raise ConfigError("--seeds names no seeds")
    check_unique_seeds(seeds)
    if grid is not None and Path(grid).suffix.lower() != ".png":
        raise ConfigError(f"--grid {grid}: the grid is written as PNG; name it *.png")
    if grid is not None and outdir is not None and _inside(Path(grid), Path(outdir)):
        raise ConfigError(f"--grid {grid} is inside --outdir {outdir}, where eval would score it as one of the "
                          f"images; write the grid elsewhere")
    check_grid_cols(grid_cols)
    check_network(which)
    _check_sampling(truncation_psi, noise_mode)
    device = resolve_device(device)  # None / auto: CUDA when present
    use_exact_fp32(device)  # the same pixels eval generates for these latents (no TF32 on CUDA)
    G = load_generator(path, which=which, device=device)
    label = _checked_label(G, truncation_psi, class_idx, noise_mode)
    plan = None
    if outdir is not None:
        identity = _identity(path, which, truncation_psi, class_idx, noise_mode, translate, rotate)
        plan = OutdirPlan(Path(outdir), seeds, identity, str(Path(path).expanduser().resolve()), overwrite)
    with torch.no_grad():
        _set_transform(G, translate, rotate)
    return GenerationJob(G, seeds, label, truncation_psi, noise_mode, plan, None if grid is None else Path(grid),
                         grid_cols, source=str(path))


def generate_files(path: str | Path, seeds: Sequence[int], outdir: str | Path | None = None,
                   grid: str | Path | None = None, truncation_psi: float = 1.0, class_idx: int | None = None,
                   noise_mode: str = "const", translate: Sequence[float] = (0.0, 0.0), rotate: float = 0.0,
                   device: str | None = None, which: str = "G_ema", grid_cols: int | None = None,
                   progress: Callable[[int], None] | None = None, overwrite: bool = False) -> list[Path]:
    """Write `seed{seed:04d}.png` per seed into `outdir` and/or one tiled `grid` PNG; returns the files written.

    `path` is any network file `model_zoo.load` reads (ganbench checkpoint, NVlabs or TF-era pickle); `which` is
    the generator to draw from, G_ema or G. Every option is checked before the first image is drawn, and nothing
    is written unless every image is finite (a NaN or inf output is a NonFiniteError naming the file and seed).
    An `outdir` holding images this run would not replace is refused (a ConfigError) unless `overwrite`, which
    deletes them once this run's images are in place; the same network and options may add seeds to its own set.
    """
    return prepare_files(path, seeds, outdir=outdir, grid=grid, truncation_psi=truncation_psi, class_idx=class_idx,
                         noise_mode=noise_mode, translate=translate, rotate=rotate, device=device, which=which,
                         grid_cols=grid_cols, overwrite=overwrite).run(progress)
