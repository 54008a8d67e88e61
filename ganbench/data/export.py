"""Write any dataset out as PNG files plus `dataset.json` (labels) and `attributes.json` (ground truth), or as `.npz`.

The layout is NVlabs' dataset_tool.py output (`00000/img00000000.png`, 1000 images per folder, names
numbered by source index, `dataset.json` = `{"labels": [[name, class or vector], ...] or null}`), so
the output also feeds their training and metrics code (which ignores ganbench's extra keys and files). Writes are atomic: a zip is written to a temp file and renamed; a folder is built under a
temp name and renamed, so an interrupted export never leaves a half-written dataset behind.
The zip bytes are deterministic (fixed timestamps, stored PNGs), so the same export gives the same file.

An `.npz` output is the array format `ganbench.data.arrays` reads: `images` uint8 [N, H, W, C] (stored
uncompressed, so readers memory-map it) and `labels` (int [N] classes, or float32 [N, D] vectors when a
label is not one-hot or the classes present would not reproduce the label space); attributes are not
stored. It is written atomically too, streaming one image at a time into the zip member.
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
from ganbench.data.files import IMAGE_EXTENSIONS
from ganbench.data.labels import (ATTRIBUTE_FILE, ATTRIBUTE_FORMAT, LABEL_FILE, compact_label, labels_document,
                                  written_as_classes)
from ganbench.data.preprocess import UnfitImage
from ganbench.errors import DataError

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# File types export cannot write: an output path ending in one is refused instead of becoming a folder of that name.
UNWRITABLE_SUFFIXES = frozenset({
    *IMAGE_EXTENSIONS, ".gif", ".tif", ".tiff", ".npy", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".7z", ".rar",
    ".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".safetensors", ".h5", ".hdf5", ".mat", ".json", ".csv", ".txt",
    ".parquet", ".tfrecord", ".tfrecords", ".bin"})
CHUNK = 1 << 20


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


def _kept(dataset: ImageDataset, progress: Callable[[int], None] | None,
          on_drop: Callable[[str], None] | None) -> Iterator[tuple[int, np.ndarray]]:
    """(source index, uint8 CHW pixels) of every image the export keeps; an error when none is left.

    With `on_drop`, an image the crop cannot use is left out (its number stays unused, as in NVlabs'
    tool) and `on_drop(message)` is called; without it the UnfitImage error stops the export.
    """
    kept = 0
    for i in range(len(dataset)):
        try:
            pixels = dataset.image(i)
        except UnfitImage as exc:
            if on_drop is None:
                raise
            on_drop(str(exc))
            if progress is not None:
                progress(1)
            continue
        kept += 1
        yield i, pixels
        if progress is not None:
            progress(1)
    if not kept:
        raise DataError(f"no image of {dataset.source} is left to write: the crop dropped all {len(dataset)}")


def _files(dataset: ImageDataset, progress: Callable[[int], None] | None,
           on_drop: Callable[[str], None] | None = None) -> Iterator[tuple[str, bytes]]:
    """(relative name, bytes) for every kept image, then the label and attribute files."""
    names, labels, annotations = [], [], []
    for i, pixels in _kept(dataset, progress, on_drop):
        name = image_name(i)
        yield name, encode_png(pixels)
        names.append(name)
        if dataset.label_dim > 0:
            labels.append(compact_label(dataset.label(i)))
        annotations.append(dataset.annotations(i))
    yield LABEL_FILE, _json(labels_document(names, labels, dataset.label_dim))
    if annotations and all(a is not None for a in annotations):
        doc = {"format": ATTRIBUTE_FORMAT, "dataset": dataset.identity,
               "attributes": [[n, a] for n, a in zip(names, annotations)]}
        yield ATTRIBUTE_FILE, _json(doc)


def _json(doc: object) -> bytes:
    return json.dumps(doc, indent=None, separators=(",", ":")).encode("utf-8")


def output_kind(out: str | os.PathLike, overwrite: bool = False) -> str:
    """'zip', 'npz' or 'folder': what export writes at `out`; a one-line DataError (before any work) if it cannot."""
    out = Path(out)
    suffix = out.suffix.lower()
    kind = {".zip": "zip", ".npz": "npz"}.get(suffix, "folder")
    if kind == "folder" and suffix in UNWRITABLE_SUFFIXES and not out.is_dir():
        raise DataError(f"{out}: cannot write a {suffix} file; give a .zip or .npz file, or a folder name")
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; choose another path or pass --overwrite")
    if kind != "folder" and out.is_dir():
        raise DataError(f"{out} is a folder; a {suffix} output must be a file path")
    if kind == "folder" and out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; give a folder path or a .zip or .npz name")
    return kind


def export_dataset(dataset: ImageDataset, out: str | os.PathLike, overwrite: bool = False,
                   progress: Callable[[int], None] | None = None,
                   on_drop: Callable[[str], None] | None = None) -> Path:
    """Write `dataset` to `out` (a `.zip` or `.npz` file, or else a folder) atomically; returns `out`.

    `progress(k)` is called per image; `on_drop(message)` makes images the crop cannot use (NVlabs'
    center-crop-wide on small images) dropped instead of an error.
    """
    out = Path(out)
    kind = output_kind(out, overwrite)
    if kind == "zip":
        atomic_write_bytes(out, lambda f: _write_zip(f, dataset, progress, on_drop))
        return out
    if kind == "npz":
        atomic_write_bytes(out, lambda f: _write_npz(f, dataset, progress, on_drop, spool_dir=out.parent))
        return out
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


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    return info


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(dtype),
                                               "fortran_order": False, "shape": shape})
    return buf.getvalue()


def label_array(labels: list[int | np.ndarray], label_dim: int) -> np.ndarray | None:
    """The `labels` array of an .npz that `ArrayDataset` reads back to the same label vectors, or None.

    Int classes [N] when every label is one-hot and the largest class present is label_dim - 1 (the reader
    takes max + 1 as the label space); else float32 vectors [N, label_dim], which it keeps exactly.
    """
    if label_dim == 0 or not labels:
        return None
    if written_as_classes(labels, label_dim):
        return np.asarray(labels, dtype=np.int64)
    rows = np.zeros([len(labels), label_dim], dtype=np.float32)
    for k, x in enumerate(labels):
        if isinstance(x, (int, np.integer)):
            rows[k, int(x)] = 1.0
        else:
            rows[k] = x
    return rows


def _write_npz(f: IO[bytes], dataset: ImageDataset, progress: Callable[[int], None] | None,
               on_drop: Callable[[str], None] | None, spool_dir: Path) -> None:
    """`images` (uint8 NHWC, stored) then `labels`, one image in memory at a time.

    The npy header states N before the pixels. Without `on_drop` N is len(dataset) and the pixels stream
    straight into the zip; with it N is known only at the end, so the pixels go to an unnamed temp file
    beside the output first (same disk, never memory) and are copied in after.
    """
    r, c = dataset.resolution, dataset.num_channels
    labels: list[int | np.ndarray] = []

    def pixels() -> Iterator[bytes]:
        for i, chw in _kept(dataset, progress, on_drop):
            if chw.shape != (c, r, r) or chw.dtype != np.uint8:
                raise DataError(f"{dataset.source}: image {i} is {chw.dtype} {list(chw.shape)}, expected uint8 "
                                f"{[c, r, r]} like the dataset")
            if dataset.label_dim > 0:
                labels.append(compact_label(dataset.label(i)))
            yield np.ascontiguousarray(chw.transpose(1, 2, 0)).tobytes()

    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        if on_drop is None:
            _images_member(zf, len(dataset), (r, r, c), pixels())
        else:
            with tempfile.TemporaryFile(dir=spool_dir, prefix=".ganbench-npz-") as spool:
                count = 0
                for chunk in pixels():
                    spool.write(chunk)
                    count += 1
                spool.seek(0)
                _images_member(zf, count, (r, r, c), iter(lambda: spool.read(CHUNK), b""))
        array = label_array(labels, dataset.label_dim)
        if array is not None:
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            zf.writestr(_member("labels.npy"), buf.getvalue())


def _images_member(zf: zipfile.ZipFile, count: int, hwc: tuple[int, int, int], chunks: Iterator[bytes]) -> None:
    header = _npy_header((count, *hwc), np.dtype(np.uint8))
    size = len(header) + count * int(np.prod(hwc))
    with zf.open(_member("images.npy"), "w", force_zip64=size > zipfile.ZIP64_LIMIT) as member:
        member.write(header)
        for chunk in chunks:
            member.write(chunk)
