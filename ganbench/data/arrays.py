"""Datasets stored as numpy arrays: `.npz` (images + optional labels) or a bare `.npy` of images.

Accepted `.npz` keys:
- `images` (required): uint8, shape [N, H, W, C] (NHWC) or [N, C, H, W] (NCHW) with C in 1..4, or
  [N, H, W] for grayscale. The layout is the one whose channel axis has 1-4 entries; when both could
  be, square H == W decides (NHWC first). 2 channels = gray + alpha, 4 = RGBA; alpha is dropped.
- `labels` (optional): int [N] classes (one-hot, label_dim = max + 1) or float [N, D] vectors.
- `attributes` are not read from arrays; export a folder or zip for those.

An uncompressed member (what `np.savez` writes) is memory-mapped, so opening a 50k-image file reads
only its header; a compressed one (`np.savez_compressed`) is loaded on first access.

Every array's header is checked against the bytes that follow it before anything is read or
allocated, so a damaged or hostile file (a header claiming 10^12 entries) is a one-line error.
Memory-mapped pixels bypass zipfile's CRC-32 check, so `verify` reads every member through it once
(in chunks) to find damage inside the data as well.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ganbench.data.base import ImageDataset
from ganbench.data.files import PREPROCESS_VERSION, _safe
from ganbench.data.labels import MAX_LABEL_DIM, LabelTable, class_labels, vector_labels
from ganbench.data.preprocess import (AUTO, auto_resolution, check_resolution, drop_alpha, fit, is_power_of_two,
                                     parse_geometry)
from ganbench.errors import DataError

IMAGES_KEY, LABELS_KEY = "images", "labels"
CRC_CHUNK = 1 << 20


def _read_npy_header(f: Any, where: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(f)
    except (ValueError, OSError, EOFError, struct.error, SyntaxError, TypeError) as exc:
        raise DataError(f"{where} is not a valid .npy array ({str(exc)[:120]})") from None
    if dtype.hasobject:
        raise DataError(f"{where} holds Python objects ({dtype}); ganbench never unpickles data, store numbers")
    return shape, fortran, dtype


def _check_size(where: str, shape: tuple[int, ...], dtype: np.dtype, header_len: int, total: int) -> None:
    """The bytes after the header must be exactly what the header's shape and dtype say (numpy writes no more)."""
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if total - header_len != expected:
        raise DataError(f"{where}: its header says shape {list(shape)} {dtype} ({expected} bytes) but the file "
                        f"holds {total - header_len} bytes of data; the file is truncated or damaged")


def array_layout(shape: tuple[int, ...], where: str) -> str:
    """'NHWC', 'NCHW' or 'NHW' for an images array of `shape`, or a DataError saying why not."""
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        raise DataError(f"{where} must be [N, H, W, C], [N, C, H, W] or [N, H, W], got shape {list(shape)}")
    last, second = shape[3] in (1, 2, 3, 4), shape[1] in (1, 2, 3, 4)
    if last and (not second or shape[1] == shape[2]):
        return "NHWC"
    if second and (not last or shape[2] == shape[3]):
        return "NCHW"
    raise DataError(f"{where} has shape {list(shape)}: cannot tell the channel axis (1-4 channels expected)")


class ArrayDataset(ImageDataset):
    """Images from a .npz (`images` + optional `labels`) or .npy file, memory-mapped when stored uncompressed."""

    def __init__(self, path: str | os.PathLike, resolution: int | None = None, n: int | None = None,
                 use_labels: bool = True, crop: str | None = None, resize: str | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.stem
        if not self.path.is_file():
            raise DataError(f"{self.path} does not exist")
        self._npz = self.path.suffix.lower() == ".npz"
        self._label_header: tuple[tuple[int, ...], bool, np.dtype] | None = None
        self._where = f"{self.path}:{IMAGES_KEY}" if self._npz else str(self.path)
        shape, dtype, self._offset, crc = self._inspect()
        if dtype != np.uint8:
            raise DataError(f"{self._where} must be uint8 (0..255), got {dtype}; scale and cast it first")
        self._layout = array_layout(shape, self._where)
        total = shape[0]
        if total == 0:
            raise DataError(f"{self._where} holds no images (shape {list(shape)})")
        if n is not None and (not isinstance(n, int) or not 1 <= n <= total):
            raise DataError(f"n={n!r} is not between 1 and the {total} images in {self.path}")
        self._shape, self._count = shape, total if n is None else n
        h, w, c = self._hwc(shape)
        self.num_channels = 1 if c in (1, 2) else 3
        self.source_size = (int(w), int(h))
        if resolution == AUTO:
            resolution = auto_resolution(w, h)
        self._geometry = parse_geometry(crop, resize, resolution)
        if resolution is None:
            if h != w or not is_power_of_two(h):
                raise DataError(f"{self._where} images are {w}x{h}, not a square power-of-two size; pass a "
                                f"resolution to crop and resize them (--crop, --resize)")
            self.resolution = check_resolution(h, f"image size in {self._where}")
        else:
            self.resolution = check_resolution(resolution)
        self._labels = self._read_labels(total) if use_labels and self._npz else None
        self.label_dim = 0 if self._labels is None else self._labels.dim
        self._identity_parts = [PREPROCESS_VERSION, shape, crc, self.path.stat().st_size, self.resolution,
                                self._count, use_labels]
        if not self._geometry.is_default:
            self._identity_parts.append(self._geometry.describe())
        self._array: np.ndarray | None = None

    def _hwc(self, shape: tuple[int, ...]) -> tuple[int, int, int]:
        if self._layout == "NHW":
            return shape[1], shape[2], 1
        if self._layout == "NHWC":
            return shape[1], shape[2], shape[3]
        return shape[2], shape[3], shape[1]

    def _inspect(self) -> tuple[tuple[int, ...], np.dtype, int | None, Any]:
        """Shape, dtype, byte offset of the raw data when memory-mappable (else None), content checksum."""
        if not self._npz:
            with open(self.path, "rb") as f:
                shape, fortran, dtype = _read_npy_header(f, self._where)
                header_len = f.tell()
            st = self.path.stat()
            _check_size(self._where, shape, dtype, header_len, st.st_size)
            return shape, dtype, None if fortran else header_len, (st.st_size, st.st_mtime_ns)
        try:
            with zipfile.ZipFile(self.path) as zf:
                members = {i.filename: i for i in zf.infolist()}
                info = members.get(IMAGES_KEY + ".npy")
                if info is None:
                    keys = sorted(k[:-4] for k in members if k.endswith(".npy"))
                    hint = ("it is a statistics or features file: pass it as --real-stats or --real-features"
                            if {"mu", "sigma"} <= set(keys) or "features" in keys
                            else "save images with np.savez(path, images=...)")
                    raise DataError(f"{self.path} has no {IMAGES_KEY!r} array (found keys: "
                                    f"{', '.join(keys) or 'none'}); {hint}")
                shape, fortran, dtype, header_len = self._member_header(zf, info, self._where)
                labels = members.get(LABELS_KEY + ".npy")
                self._label_header = (None if labels is None else
                                      self._member_header(zf, labels, f"{self.path}:{LABELS_KEY}")[:3])
                crc = tuple((i.filename, i.CRC, i.file_size) for i in sorted(members.values(), key=lambda i: i.filename))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{self.path} is not a readable .npz file ({type(exc).__name__}: {exc})") from None
        offset = None
        if info.compress_type == zipfile.ZIP_STORED and not fortran:
            with open(self.path, "rb") as raw:
                raw.seek(info.header_offset)
                local = raw.read(30)
                if len(local) == 30 and local[:4] == b"PK\x03\x04":
                    name_len, extra_len = struct.unpack("<HH", local[26:30])
                    offset = info.header_offset + 30 + name_len + extra_len + header_len
        return shape, dtype, offset, crc

    @staticmethod
    def _member_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
        """Shape, fortran order, dtype and header length of one .npz member, checked against its size."""
        with zf.open(info) as f:
            shape, fortran, dtype = _read_npy_header(f, where)
            header_len = f.tell()
        _check_size(where, shape, dtype, header_len, info.file_size)
        return shape, fortran, dtype, header_len

    def _read_labels(self, total: int) -> LabelTable | None:
        if self._label_header is None:
            return None
        where = f"{self.path}:{LABELS_KEY}"
        shape, _, dtype = self._label_header
        if shape[:1] != (total,) or len(shape) not in (1, 2):
            raise DataError(f"{where} has shape {list(shape)} but there are {total} images; expected [{total}] "
                            f"classes or [{total}, D] vectors")
        if len(shape) == 2 and not 0 < shape[1] <= MAX_LABEL_DIM:
            raise DataError(f"{where} has {shape[1]} entries per label; 1 to {MAX_LABEL_DIM} are supported")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                raw = data[LABELS_KEY]
        except ValueError as exc:
            raise DataError(f"{where} cannot be read without pickle ({exc})") from None
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{where} is damaged ({type(exc).__name__}: {str(exc)[:120]})") from None
        if raw.ndim == 1 and np.issubdtype(raw.dtype, np.integer):
            return class_labels(raw, where).head(self._count)
        if raw.ndim == 2 and (np.issubdtype(raw.dtype, np.number) or raw.dtype == bool):
            if np.iscomplexobj(raw):
                raise DataError(f"{where} holds complex numbers; labels must be real")
            return vector_labels(raw.astype(np.float64), where).head(self._count)
        raise DataError(f"{where} must be int [N] classes or numeric [N, D] vectors, got {raw.dtype} {list(raw.shape)}")

    def _images(self) -> np.ndarray:
        if self._array is None:
            if self._offset is not None:
                self._array = np.memmap(self.path, dtype=np.uint8, mode="r", offset=self._offset, shape=self._shape)
            else:
                try:
                    if self._npz:
                        with np.load(self.path, allow_pickle=False) as data:
                            self._array = data[IMAGES_KEY]
                    else:
                        self._array = np.load(self.path, allow_pickle=False)
                except (ValueError, zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                    raise DataError(f"{self._where} cannot be read ({type(exc).__name__}: {str(exc)[:120]})") from None
        return self._array

    def verify(self, progress: Callable[[int], None] | None = None) -> None:
        """Check every .npz member against its zip CRC-32, then decode every image and label."""
        if self._npz:
            self._check_crcs()
        super().verify(progress)

    def _check_crcs(self) -> None:
        """Read each member to its end through zipfile, which compares the CRC-32 the zip stores for it."""
        member = "?"
        try:
            with zipfile.ZipFile(self.path) as zf:
                for info in zf.infolist():
                    member = info.filename
                    with zf.open(info) as f:
                        while f.read(CRC_CHUNK):
                            pass
        except zipfile.BadZipFile as exc:
            raise DataError(f"{self.path}: member {member} is damaged ({str(exc)[:120]}); the file changed after "
                            f"it was written, re-create or re-download it") from None
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{self.path}: member {member} cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:120]})") from None

    @property
    def source(self) -> str:
        return str(self.path)

    @property
    def identity(self) -> str:
        digest = hashlib.sha256(repr(self._identity_parts).encode()).hexdigest()[:16]
        return f"npz-{_safe(self.name)}-n{self._count}-r{self.resolution}-c{self.num_channels}-{digest}"

    def __len__(self) -> int:
        return self._count

    def image(self, index: int) -> np.ndarray:
        if not 0 <= index < self._count:
            raise IndexError(f"index {index} out of range for {self._count} images")
        arr = np.asarray(self._images()[index])
        if self._layout == "NHW":
            arr = arr[:, :, None]
        elif self._layout == "NCHW":
            arr = arr.transpose(1, 2, 0)
        # A copy, so callers get a writable array they own rather than a view into the (read-only) memmap.
        fitted = fit(drop_alpha(arr), self.resolution, self._geometry, f"{self._where}[{index}]")
        return np.array(fitted.transpose(2, 0, 1), dtype=np.uint8, order="C", copy=True)

    def label(self, index: int) -> np.ndarray:
        if self._labels is None:
            return np.zeros([0], dtype=np.float32)
        return self._labels.row(index)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None  # never pickle pixels (or a memmap) into DataLoader workers
        return state
