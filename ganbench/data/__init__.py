"""Datasets as uint8 NCHW images plus optional labels: the embedded `shapes` set, image folders, zips, .npz.

`open_dataset(spec, resolution=None, **options)` is the one entry point:

- `shapes` / `shapes:N`: rendered on the fly, deterministic from `seed` (options `n`, `seed`, `shapes`,
  `colors`; resolution 8-256, default 32). A folder that happens to be called `shapes` needs `./shapes`.
- a folder or `.zip` of .png/.jpg/.jpeg/.bmp/.webp files (recursive, sorted by relative path), with
  optional NVlabs `dataset.json` labels and ganbench `attributes.json` ground truth at the root
  (options `n`, `channels`, `use_labels`, `skip_unknown`). A stray non-image file is an error naming it
  unless `skip_unknown=True` (then a warning); hidden files and `__MACOSX/` are ignored.
- a `.npz` with `images` (uint8 NHWC, NCHW or NHW) and optional `labels`, or a bare `.npy` of images
  (options `n`, `use_labels`).

`resolution` (a power of two) centre-crops to a square and resizes with Lanczos; without it the native
size must already be a square power of two. Grayscale stays 1 channel, everything else becomes RGB,
alpha is dropped. Pixels are decoded lazily, one image per access. Every problem is a `DataError` whose
one-line message names the file or value at fault. `ganbench.data.export.export_dataset` writes any
dataset back out as PNGs + `dataset.json` (+ `attributes.json`), atomically.
"""

from ganbench.data.base import ImageDataset
from ganbench.data.shapes import ShapesDataset
from ganbench.data.sources import EMBEDDED, FORMATS, open_dataset

__all__ = ["EMBEDDED", "FORMATS", "ImageDataset", "ShapesDataset", "open_dataset"]
