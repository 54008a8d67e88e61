"""Write any dataset out as PNG files plus `dataset.json` (labels) and `attributes.json` (ground truth).

The layout is NVlabs' dataset_tool.py output (`00000/img00000000.png`, 1000 images per folder, names
numbered by source index, `dataset.json` = `{"labels": [[name, class or vector], ...] or null}`), so
the output also feeds their training and metrics code (which ignores ganbench's extra keys and files). Writes are atomic: a zip is written to a temp file and renamed; a folder is built under a
temp name and renamed, so an interrupted export never leaves a half-written dataset behind.
The zip bytes are deterministic (fixed timestamps, stored PNGs), so the same export gives the same file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Callable, Iterator

import numpy as np
from PIL import Image

from ganbench.checkpoint import atomic_write_bytes, default_file_mode
from ganbench.data.base import ImageDataset
from ganbench.data.labels import ATTRIBUTE_FILE, ATTRIBUTE_FORMAT, LABEL_FILE, compact_label, labels_document
from ganbench.data.preprocess import UnfitImage
from ganbench.errors import DataError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def image_name(index: int) -> str:
    """Relative file name of image `index` in an exported dataset."""
    return f"{index // 1000:05d}/img{index:08d}.png"


def encode_png(image: np.ndarray) -> bytes:
    """uint8 CHW (1 or 3 channels) -> PNG bytes."""
    hwc = image.transpose(1, 2, 0)
    img = Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def _files(dataset: ImageDataset, progress: Callable[[int], None] | None,
           on_drop: Callable[[str], None] | None = None) -> Iterator[tuple[str, bytes]]:
    """(relative name, bytes) for every image, then the label and attribute files.

    With `on_drop`, an image the crop cannot use is left out (its number stays unused, as in NVlabs'
    tool) and `on_drop(message)` is called; without it the UnfitImage error stops the export.
    """
    names, labels, annotations = [], [], []
    for i in range(len(dataset)):
        name = image_name(i)
        try:
            pixels = dataset.image(i)
        except UnfitImage as exc:
            if on_drop is None:
                raise
            on_drop(str(exc))
            if progress is not None:
                progress(1)
            continue
        yield name, encode_png(pixels)
        names.append(name)
        if dataset.label_dim > 0:
            labels.append(compact_label(dataset.label(i)))
        annotations.append(dataset.annotations(i))
        if progress is not None:
            progress(1)
    if not names:
        raise DataError(f"no image of {dataset.source} is left to write: the crop dropped all {len(dataset)}")
    yield LABEL_FILE, _json(labels_document(names, labels, dataset.label_dim))
    if annotations and all(a is not None for a in annotations):
        doc = {"format": ATTRIBUTE_FORMAT, "dataset": dataset.identity,
               "attributes": [[n, a] for n, a in zip(names, annotations)]}
        yield ATTRIBUTE_FILE, _json(doc)


def _json(doc: object) -> bytes:
    return json.dumps(doc, indent=None, separators=(",", ":")).encode("utf-8")


def export_dataset(dataset: ImageDataset, out: str | os.PathLike, overwrite: bool = False,
                   progress: Callable[[int], None] | None = None,
                   on_drop: Callable[[str], None] | None = None) -> Path:
    """Write `dataset` to `out` (a `.zip` file, or else a folder) atomically; returns `out`.

    `progress(k)` is called per image; `on_drop(message)` makes images the crop cannot use (NVlabs'
    center-crop-wide on small images) dropped instead of an error.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another path or pass --overwrite")
    if out.suffix.lower() == ".zip":
        if out.is_dir():
            raise DataError(f"{out} is a folder; a .zip output must be a file path")
        atomic_write_bytes(out, lambda f: _write_zip(f, dataset, progress, on_drop))
        return out
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder path or a .zip name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(tmp, default_file_mode(directory=True))
        for name, data in _files(dataset, progress, on_drop):
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, old / "data")
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_zip(f: IO[bytes], dataset: ImageDataset, progress: Callable[[int], None] | None,
               on_drop: Callable[[str], None] | None) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in _files(dataset, progress, on_drop):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
