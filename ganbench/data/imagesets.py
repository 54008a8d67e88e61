"""Image sets as evaluation targets: a folder, `.zip` or `.npz`/`.npy` of images from any model.

An image set is opened at `resolution="auto"`: its own size when that is a square power of two, else the
largest power of two within the first image's shorter side, every image then center-cropped and resized with
the same rule `--real` data follows (see preprocess.py). Its rows in a results table are keyed by its name
(folder name or file stem) and `content_hash`, a sha256 over the decoded pixels in order: the same images give
the same key whether they sit in a folder, a zip or an npz, and changing one image gives a new key. The hash
costs one decoding pass, so it is remembered under `$GANBENCH_CACHE/imagesets/`, keyed by the dataset's
identity (which changes with any file's size, time or CRC).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ganbench.data.base import ImageDataset
from ganbench.data.preprocess import AUTO

ARRAY_SUFFIXES = (".npz", ".npy")
HASH_LENGTH = 16
HASH_FORMAT = 1   # bump when the hashed bytes change
RUN_LOG = "stats.jsonl"   # what `train` writes at its first tick (ganbench.train.output.STATS_FILE)


def is_image_set(path: str | os.PathLike) -> bool:
    """Whether eval target `path` is a set of images rather than a network file or run folder: a `.zip`,
    `.npz` or `.npy` file, or a folder that holds image files and no network snapshots (in it or one level down,
    where `eval` looks for runs). A folder with a training run's log (`stats.jsonl`) is a run even before its
    first snapshot: its `fakes*.png` grids are not a sample set."""
    from ganbench.data.files import IMAGE_EXTENSIONS
    from model_zoo import snapshot_kimg

    path = Path(path)
    if path.is_file():
        return path.suffix.lower() in (".zip", *ARRAY_SUFFIXES)
    if not path.is_dir():
        return False
    for item in path.iterdir():
        if item.is_file() and (snapshot_kimg(item.name) is not None or item.name == RUN_LOG):
            return False
        if item.is_dir() and any(p.is_file() and snapshot_kimg(p.name) is not None for p in item.iterdir()):
            return False
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(f.lower().endswith(IMAGE_EXTENSIONS) and not f.startswith(".") for f in files):
            return True
    return False


def open_image_set(path: str | os.PathLike, skip_unknown: bool = False) -> ImageDataset:
    """The images of set `path` at their automatic resolution (see the module docstring)."""
    from ganbench.data.sources import open_dataset

    return open_dataset(str(path), resolution=AUTO, skip_unknown=skip_unknown)


def set_name(path: str | os.PathLike) -> str:
    """The name rows give an image set: the folder's name or the file's stem."""
    path = Path(path).resolve()
    return path.name if path.is_dir() else path.stem


def content_hash(dataset: ImageDataset, cache_dir: str | os.PathLike | None = None) -> str:
    """sha256 (first 16 hex digits) over the set's decoded uint8 images, in order, with their shapes."""
    cache = _cache_file(dataset, cache_dir)
    if cache is not None and cache.is_file():
        try:
            return str(json.loads(cache.read_text())["content_hash"])
        except (OSError, ValueError, KeyError, TypeError):
            pass   # damaged: recompute and rewrite
    h = hashlib.sha256(f"ganbench-imageset-{HASH_FORMAT}".encode())
    for i in range(len(dataset)):
        img = dataset.image(i)
        h.update(repr(tuple(img.shape)).encode())
        h.update(img.tobytes())
    digest = h.hexdigest()[:HASH_LENGTH]
    if cache is not None:
        from ganbench.checkpoint import atomic_write_bytes

        try:
            atomic_write_bytes(cache, lambda f: f.write(json.dumps({"content_hash": digest}).encode()))
        except OSError:
            pass   # a read-only cache only costs the next run a decoding pass
    return digest


def _cache_file(dataset: ImageDataset, cache_dir: str | os.PathLike | None) -> Path | None:
    if cache_dir is False:
        return None
    if cache_dir is None:
        from ganbench.assets import cache_root

        cache_dir = cache_root() / "imagesets"
    key = hashlib.sha256(f"{HASH_FORMAT}|{dataset.identity}".encode()).hexdigest()[:24]
    return Path(cache_dir) / f"{key}.json"


__all__ = ["content_hash", "is_image_set", "open_image_set", "set_name"]
