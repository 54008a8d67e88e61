"""Datasets of encoded image files: a folder (searched recursively) or a .zip archive.

Opening lists the files, checks their extensions, reads the header of the first image (for the
channel count and native size) and parses `dataset.json` / `attributes.json`; pixels are decoded one
image at a time on access. Files are sorted by their relative path, so the order never depends on
the file system.

Choices (documented here because they decide what counts as bad input):
- image extensions: .png .jpg .jpeg .bmp .webp (any case);
- hidden files and folders (`.name`), `__MACOSX/` and the side files `dataset.json` /
  `attributes.json` at the root are ignored;
- any other file is an error naming it, because a stray file usually means a wrong folder;
  `skip_unknown=True` skips such files with a warning instead;
- the first image decides the channel count (1 for grayscale, 3 otherwise) unless `channels` is
  given; an image with another count is an error naming it (pass `channels` to convert them all);
- without `resolution`, every image must be square with the first image's power-of-two size; with it,
  `crop` and `resize` choose NVlabs dataset_tool's geometry (see preprocess.py).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
import zipfile
import zlib
from abc import abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ganbench.data.base import ImageDataset
from ganbench.data.labels import ATTRIBUTE_FILE, LABEL_FILE, normalise_name, parse_attributes, parse_labels
from ganbench.data.preprocess import (AUTO, auto_resolution, check_resolution, fit, is_power_of_two, mode_channels,
                                     parse_geometry, pil_to_array)
from ganbench.errors import DataError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SIDE_FILES = frozenset({LABEL_FILE, ATTRIBUTE_FILE})
PREPROCESS_VERSION = 1  # bump when decoding/cropping/resizing changes pixels, so cached statistics expire
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)


def is_ignored(name: str) -> bool:
    """Hidden files/folders and macOS resource forks, which never count as dataset content."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts)


def folder_files(folder: Path) -> list[str]:
    """Every file under `folder` (recursively, hidden folders skipped) as sorted relative names: what a folder
    dataset lists (also `generate`'s view of what eval would read from an --outdir)."""
    names = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(root).relative_to(folder)
        names += [(rel / f).as_posix() for f in files]
    return sorted(normalise_name(n) for n in names)


def _plural(items: list[str]) -> str:
    return f" (and {len(items) - 1} more)" if len(items) > 1 else ""


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in text)[:40] or "data"


class FileImageDataset(ImageDataset):
    """Common logic for folders and zips: listing, validation, decoding, labels, identity."""

    kind = "files"

    def __init__(self, path: str | os.PathLike, resolution: int | None = None, channels: int | None = None,
                 n: int | None = None, use_labels: bool = True, skip_unknown: bool = False,
                 crop: str | None = None, resize: str | None = None) -> None:
        self.path = Path(path)
        self.name = self.path.stem if self.kind == "zip" else self.path.name
        if channels is not None and channels not in (1, 3):
            raise DataError(f"channels must be 1 or 3, got {channels!r}")
        self._forced_channels = channels
        self.skipped: list[str] = []   # non-image files left out (skip_unknown)
        entries = self._list()
        images, unknown = [], []
        for name in entries:
            if is_ignored(name) or name in SIDE_FILES:
                continue
            (images if name.lower().endswith(IMAGE_EXTENSIONS) else unknown).append(name)
        if unknown:
            message = (f"{self._where(unknown[0])} is not an image{_plural(unknown)}; expected "
                       f"{' '.join(IMAGE_EXTENSIONS)}")
            if not skip_unknown:
                raise DataError(message + " (remove it, or skip such files with --skip-unknown / skip_unknown=True)")
            warnings.warn(f"skipping {len(unknown)} non-image file(s): {message}", stacklevel=2)
            self.skipped = unknown
        if not images:
            raise DataError(f"{self.path} holds no images (looked for {' '.join(IMAGE_EXTENSIONS)}, recursively)")
        if n is not None and (not isinstance(n, int) or n < 1 or n > len(images)):
            raise DataError(f"n={n!r} is not between 1 and the {len(images)} images in {self.path}")
        self.names: list[str] = images[:n]
        self._first_size, first_mode = self._peek(0)
        self.source_size = tuple(self._first_size)
        if resolution == AUTO:
            resolution = auto_resolution(*self._first_size)
        self._geometry = parse_geometry(crop, resize, resolution)
        self.num_channels = channels if channels is not None else mode_channels(first_mode)
        if resolution is None:
            w, h = self._first_size
            if w != h or not is_power_of_two(w):
                raise DataError(f"{self._where(images[0])} is {w}x{h}, not a square power-of-two size; pass a "
                                f"resolution (e.g. --resolution {max(4, 1 << (min(w, h).bit_length() - 1))}) "
                                f"to crop and resize every image (--crop, --resize)")
            self.resolution = check_resolution(w, f"native size of {self._where(images[0])}")
        else:
            self.resolution = check_resolution(resolution)
        self._native = resolution is None
        # Side files describe every image, so they are checked against all of them, then cut to the first n.
        present = set(entries)
        self._labels = None
        if use_labels and LABEL_FILE in present:
            labels = parse_labels(self._read(LABEL_FILE), images, self._where(LABEL_FILE))
            self._labels = None if labels is None else labels.head(n)
        self.label_dim = 0 if self._labels is None else self._labels.dim
        self._attributes = None
        if ATTRIBUTE_FILE in present:
            self._attributes = parse_attributes(self._read(ATTRIBUTE_FILE), images, self._where(ATTRIBUTE_FILE))[:n]
        self._n, self._use_labels = n, use_labels
        self._identity: str | None = None

    # -- storage, implemented by folder / zip ---------------------------------------------------
    @abstractmethod
    def _list(self) -> list[str]:
        """Every file's relative name (with `/`), sorted."""

    @abstractmethod
    def _read(self, name: str) -> bytes:
        """The bytes of the file `name`."""

    @abstractmethod
    def _fingerprint(self) -> list[Any]:
        """Cheap data that changes when a file's content changes (sizes and times, or CRCs)."""

    def _where(self, name: str) -> str:
        return str(self.path / name)

    # -- dataset interface ----------------------------------------------------------------------
    @property
    def source(self) -> str:
        return str(self.path)

    @property
    def identity(self) -> str:
        if self._identity is None:
            h = hashlib.sha256()
            geometry = [self._geometry.describe()] if not self._geometry.is_default else []
            for item in [self.kind, PREPROCESS_VERSION, self.resolution, self.num_channels, self._native,
                         self._use_labels, *geometry, *self.names, *self._fingerprint()]:
                h.update(repr(item).encode() + b"\0")
            self._identity = (f"{self.kind}-{_safe(self.name)}-n{len(self)}-r{self.resolution}-"
                              f"c{self.num_channels}-{h.hexdigest()[:16]}")
        return self._identity

    def __len__(self) -> int:
        return len(self.names)

    def _peek(self, index: int) -> tuple[tuple[int, int], str]:
        """Size and mode from the header of image `index`, without decoding its pixels."""
        name = self.names[index]
        try:
            with Image.open(io.BytesIO(self._read(name))) as img:
                return img.size, img.mode
        except _DECODE_ERRORS as exc:
            raise DataError(f"{self._where(name)} is not a readable image ({_reason(exc)})") from None

    def image(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.names):
            raise IndexError(f"index {index} out of range for {len(self.names)} images")
        name = self.names[index]
        raw = self._read(name)
        try:
            with Image.open(io.BytesIO(raw)) as img:
                img.load()
                channels = mode_channels(img.mode)
                if self._forced_channels is None and channels != self.num_channels:
                    raise DataError(f"{self._where(name)} has {channels} channel(s) but the dataset has "
                                    f"{self.num_channels} (from {self.names[0]}); mixed channel counts: pass "
                                    f"channels={self.num_channels} (--channels) to convert every image")
                if self._native and img.size != (self.resolution, self.resolution):
                    raise DataError(f"{self._where(name)} is {img.size[0]}x{img.size[1]} but the dataset's "
                                    f"images are {self.resolution}x{self.resolution} (from {self.names[0]}); "
                                    f"pass a resolution to centre-crop and resize every image")
                arr = pil_to_array(img, self.num_channels)
        except _DECODE_ERRORS as exc:
            raise DataError(f"{self._where(name)} is corrupt or not an image ({_reason(exc)})") from None
        return np.ascontiguousarray(fit(arr, self.resolution, self._geometry, self._where(name)).transpose(2, 0, 1))

    def label(self, index: int) -> np.ndarray:
        if self._labels is None:
            return np.zeros([0], dtype=np.float32)
        return self._labels.row(index)

    def annotations(self, index: int) -> dict[str, Any] | None:
        return None if self._attributes is None else dict(self._attributes[index])


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnidentifiedImageError):
        return "unrecognised or damaged image data"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


class FolderDataset(FileImageDataset):
    """Images under a folder, recursively; labels from `<folder>/dataset.json`."""

    kind = "folder"

    def _list(self) -> list[str]:
        if not self.path.is_dir():
            raise DataError(f"{self.path} is not a folder")
        return folder_files(self.path)

    def _read(self, name: str) -> bytes:
        try:
            return (self.path / name).read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read {self.path / name} ({exc.strerror or type(exc).__name__})") from None

    def _fingerprint(self) -> list[Any]:
        out = []
        for name in [*self.names, *sorted(SIDE_FILES)]:
            try:
                st = (self.path / name).stat()
                out.append((st.st_size, st.st_mtime_ns))
            except FileNotFoundError:
                out.append(None)
        return out


class ZipDataset(FileImageDataset):
    """Images inside a .zip (any folder depth); labels from `dataset.json` at the archive root.

    The archive is opened lazily and once per process, so DataLoader workers never share a handle.
    """

    kind = "zip"

    def __init__(self, path: str | os.PathLike, **kw: Any) -> None:
        self._zip: zipfile.ZipFile | None = None
        self._zip_pid: int | None = None
        self._members: dict[str, zipfile.ZipInfo] = {}
        super().__init__(path, **kw)

    def _archive(self) -> zipfile.ZipFile:
        if self._zip is None or self._zip_pid != os.getpid():
            try:
                self._zip = zipfile.ZipFile(self.path)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise DataError(f"{self.path} is not a readable zip archive ({_reason(exc)})") from None
            self._zip_pid = os.getpid()
        return self._zip

    def _list(self) -> list[str]:
        if not self.path.is_file():
            raise DataError(f"{self.path} does not exist")
        self._members = {normalise_name(i.filename): i for i in self._archive().infolist() if not i.is_dir()}
        return sorted(self._members)

    def _read(self, name: str) -> bytes:
        try:
            return self._archive().read(self._members[name].filename)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, KeyError) as exc:
            raise DataError(f"cannot read {self._where(name)} from the archive ({_reason(exc)})") from None

    def _fingerprint(self) -> list[Any]:
        infos = self._members
        return [(infos[n].CRC, infos[n].file_size) if n in infos else None for n in [*self.names, *sorted(SIDE_FILES)]]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_zip"], state["_zip_pid"] = None, None
        return state
