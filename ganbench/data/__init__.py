"""Datasets as uint8 NCHW images plus optional labels: the embedded `shapes` set, image folders, zips, .npz.

`open_dataset(spec, resolution=None, **options)` is the one entry point:

- `shapes` / `shapes:N`: rendered on the fly, deterministic from `seed` (options `n`, `seed`, `shapes`,
  `colors`; resolution 8-256, default 32). A folder that happens to be called `shapes` needs `./shapes`.
- a folder or `.zip` of .png/.jpg/.jpeg/.bmp/.webp files (recursive, sorted by relative path), with
  optional NVlabs `dataset.json` labels and ganbench `attributes.json` ground truth at the root
  (options `n`, `channels`, `use_labels`, `crop`, `resize`). A stray non-image file is an error naming it
  unless `skip_unknown=True` (then one warning counting them); hidden files and `__MACOSX/` are ignored.
- a `.npz` with `images` (uint8 NHWC, NCHW or NHW) and optional `labels`, or a bare `.npy` of images
  (options `n`, `use_labels`, `crop`, `resize`).

`resolution` (a power of two) crops and resizes every image as NVlabs' dataset_tool.py does (`crop`:
center, center-wide[:H], none; `resize`: lanczos, box; see preprocess.py); without it the native size
must already be a square power of two. Grayscale stays 1 channel, everything else becomes RGB, alpha
is dropped. Pixels are decoded lazily, one image per access. Every source accepts `skip_unknown` and
`mirror=True` (x-flip doubling for training, mirror.py). Every problem is a `DataError` whose one-line
message names the file or value at fault; sizes and labels are checked before anything large is
allocated. `ganbench.data.export.export_dataset` writes any dataset back out in NVlabs' layout
(PNGs + `dataset.json`, + `attributes.json`), atomically.
"""

from ganbench.data.base import ImageDataset
from ganbench.data.shapes import ShapesDataset
from ganbench.data.sources import EMBEDDED, FORMATS, open_dataset

__all__ = ["EMBEDDED", "FORMATS", "ImageDataset", "ShapesDataset", "open_dataset"]
