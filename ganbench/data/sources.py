"""`open_dataset(spec)`: one entry point for embedded datasets and every on-disk format.

Embedded datasets are registered by name in `EMBEDDED`; on-disk formats in `FORMATS`, each with a
predicate on the path. `ganbench datasets list` prints both registries, so adding a format here
documents it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ganbench.data.arrays import ArrayDataset
from ganbench.data.base import ImageDataset
from ganbench.data.files import IMAGE_EXTENSIONS, FolderDataset, ZipDataset
from ganbench.data.mirror import MirroredDataset
from ganbench.data.shapes import ShapesDataset
from ganbench.errors import ConfigError, DataError
from ganbench.registry import Registry


@dataclass(frozen=True)
class Source:
    """How to open one kind of dataset, and the line `datasets list` shows for it."""

    name: str
    description: str
    usage: str
    open: Callable[..., ImageDataset]
    options: tuple[str, ...]  # keyword arguments `open_dataset` passes through
    matches: Callable[[Path], bool] | None = None  # formats only: does this path look like one?

    def check_options(self, kw: dict[str, Any]) -> None:
        """Misspelled options are errors, not silently ignored."""
        bad = sorted(set(kw) - set(self.options))
        if bad:
            raise ConfigError(f"option(s) {', '.join(bad)} do not apply to the {self.name} dataset; "
                              f"it accepts: {', '.join(self.options)}")


EMBEDDED: Registry[Source] = Registry("embedded dataset")
FORMATS: Registry[Source] = Registry("dataset format")


def _register(registry: Registry[Source], source: Source) -> None:
    registry.register(source.name)(source)


def _open_shapes(arg: str | None, resolution: int | None, n: int | None = None, **kw: Any) -> ImageDataset:
    if arg is not None:
        try:
            spec_n = int(arg)
        except ValueError:
            raise DataError(f"shapes:{arg}: the part after ':' must be the number of images, e.g. shapes:10000") from None
        if n is not None and n != spec_n:
            raise DataError(f"shapes:{arg} conflicts with n={n}; give the size once")
        n = spec_n
    return ShapesDataset(n=10000 if n is None else n, resolution=32 if resolution is None else resolution, **kw)


_FILE_OPTIONS = ("n", "channels", "use_labels", "skip_unknown", "crop", "resize")
_register(EMBEDDED, Source(
    name="shapes",
    description="procedural shapes (4 classes x 6 colours) with known attributes; labels = shape class",
    usage="shapes, shapes:N (n 10000, seed 0, res 8-256, default 32)",
    open=_open_shapes, options=("n", "seed", "shapes", "colors")))
_register(FORMATS, Source(
    name="folder",
    description=f"image files ({' '.join(IMAGE_EXTENSIONS)}), recursive, sorted; labels from dataset.json",
    usage="path/to/folder/",
    open=lambda path, resolution, **kw: FolderDataset(path, resolution=resolution, **kw),
    options=_FILE_OPTIONS, matches=lambda path: path.is_dir()))
_register(FORMATS, Source(
    name="zip",
    description="a .zip of image files, same rules as a folder, read lazily",
    usage="path/to/images.zip",
    open=lambda path, resolution, **kw: ZipDataset(path, resolution=resolution, **kw),
    options=_FILE_OPTIONS, matches=lambda path: path.suffix.lower() == ".zip"))
_register(FORMATS, Source(
    name="npz",
    description="'images' uint8 NHWC/NCHW/NHW + optional 'labels' (int [N] or float [N, D])",
    usage="path/to/arrays.npz, images.npy",
    open=lambda path, resolution, **kw: ArrayDataset(path, resolution=resolution, **kw),
    options=("n", "use_labels", "crop", "resize"), matches=lambda path: path.suffix.lower() in (".npz", ".npy")))


def open_dataset(spec: str, resolution: int | None = None, mirror: bool = False, skip_unknown: bool = False,
                 **kw: Any) -> ImageDataset:
    """Open `spec`: an embedded name (`shapes`, `shapes:N`) or a path to a folder, .zip, .npz or .npy.

    `resolution` (a power of two) crops and resizes every image (`crop`, `resize`: see
    ganbench.data.preprocess); None keeps the native size, which must then be square and a power of two.
    Extra keywords go to the dataset (`n`, `seed` for shapes; `n`, `channels`, `use_labels`, `crop`,
    `resize` for files). Every source accepts `skip_unknown` (non-image files in folders and zips are
    skipped with one warning; other sources have none) and `mirror` (x-flip doubling, for training).
    """
    spec = str(spec)
    name, _, arg = spec.partition(":")
    if name in EMBEDDED:
        source = EMBEDDED.get(name)
        source.check_options(kw)
        dataset = source.open(arg or None, resolution, **kw)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise DataError(f"dataset {spec!r} not found: not an embedded dataset ({', '.join(EMBEDDED.names())}) "
                            f"nor an existing path")
        for fmt in FORMATS.names():
            source = FORMATS.get(fmt)
            if source.matches is not None and source.matches(path):
                break
        else:
            raise DataError(f"unsupported dataset file {path}: expected a folder, .zip, .npz or .npy")
        source.check_options(kw)
        if skip_unknown and "skip_unknown" in source.options:
            kw["skip_unknown"] = True
        dataset = source.open(path, resolution, **kw)
    return MirroredDataset(dataset) if mirror else dataset
