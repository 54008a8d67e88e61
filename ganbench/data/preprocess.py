"""Turning decoded pictures into the dataset's uint8 CHW images: channel count, centre crop, resize.

These choices change every number computed on the data, so they are few, fixed and documented:
- grayscale modes (1, L, LA, I, I;16, F) become 1 channel (16-bit scaled, not clipped); everything else
  becomes RGB (3 channels); `channels=1` on colour images uses PIL's ITU-R 601-2 luma;
  alpha is dropped, palette images are expanded;
- an image already at the target size passes through untouched (no resampling);
- otherwise it is cropped and resized to `resolution` x `resolution` the way NVlabs' dataset_tool.py
  `--transform` does (`crop`):
  - `center` (default, NVlabs `center-crop`): the largest centred square, rows and columns
    `(size - side) // 2 : (size + side) // 2`, resized;
  - `center-wide[:H]` (NVlabs `center-crop-wide` with `--resolution=RxH`, H default 3R/4 as for LSUN
    cars' 512x384): `ch = round(R * height / width)` rows are cut from the middle of the *source*
    image, that strip is resized to R x H, and pasted into the middle rows of a black R x R canvas.
    NVlabs applies `ch` (a target-scale row count) to source rows, which squashes sources wider than
    R horizontally; this is kept so ganbench's images equal the tool's. Images narrower than R, or whose
    `ch` is below H, are dropped by the tool: here they raise `UnfitImage` (`datasets convert` drops them);
  - `none` (NVlabs without `--transform`): the whole image resized, aspect ratio not kept;
- the resize filter (`resize`) is PIL's `lanczos` (default, NVlabs) or `box` (stylegan2-ada's
  `--resize-filter=box`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ganbench.errors import ConfigError, DataError

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
MIN_RESOLUTION, MAX_RESOLUTION = 4, 4096


def is_power_of_two(value: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    return value > 0 and value & (value - 1) == 0


def check_resolution(resolution: int, what: str = "resolution") -> int:
    """Return `resolution` as int, or raise DataError unless it is a power of two in the supported range."""
    try:
        value = int(resolution)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be an integer power of two, got {resolution!r}") from None
    if value != resolution or not is_power_of_two(value) or not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
        raise DataError(f"{what} must be a power of two from {MIN_RESOLUTION} to {MAX_RESOLUTION}, got {resolution!r}")
    return value


AUTO = "auto"


def auto_resolution(width: int, height: int) -> int:
    """The resolution `resolution="auto"` picks for an image of `width` x `height`: its own size when that is a
    square power of two, else the largest power of two that fits in its shorter side (then center-cropped and
    resized like any other image)."""
    if width == height and is_power_of_two(width):
        return int(width)
    side = min(int(width), int(height))
    return 1 << (side.bit_length() - 1) if side > 0 else 0


def mode_channels(mode: str) -> int:
    """Channel count a PIL image of `mode` gets in a dataset: 1 for grayscale, else 3."""
    return 1 if mode in GRAY_MODES else 3


def pil_to_array(img: Image.Image, channels: int) -> np.ndarray:
    """Convert a decoded PIL image to uint8 HWC with `channels` (1 or 3) channels."""
    if channels == 1:
        if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
            # Wide grayscale: map the type's full range onto 0..255 rather than clipping.
            arr = np.asarray(img, dtype=np.float64)
            top = 65535.0 if img.mode.startswith("I") else 1.0
            arr = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
            return arr[:, :, None]
        return np.asarray(img.convert("L"), dtype=np.uint8)[:, :, None]
    if img.mode != "RGB":
        img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "PA") else img.convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def drop_alpha(arr: np.ndarray) -> np.ndarray:
    """uint8 HWC with 1-4 channels -> 1 (gray, gray+alpha) or 3 (RGB, RGBA) channels."""
    return arr[:, :, :1] if arr.shape[2] in (1, 2) else arr[:, :, :3]


CROPS = ("center", "center-wide", "none")
RESIZE_FILTERS = {"lanczos": Image.Resampling.LANCZOS, "box": Image.Resampling.BOX}


class UnfitImage(DataError):
    """An image the chosen crop cannot use (NVlabs' dataset tool drops it)."""


@dataclass(frozen=True)
class Geometry:
    """How an image becomes `resolution` x `resolution`: crop mode, band height (center-wide), filter."""

    crop: str = "center"
    band: int | None = None
    resize: str = "lanczos"

    @property
    def is_default(self) -> bool:
        return self == Geometry()

    def describe(self) -> str:
        """Part of a dataset's identity; empty for the default, so existing cache keys stay valid."""
        if self.is_default:
            return ""
        crop = f"{self.crop}:{self.band}" if self.band is not None else self.crop
        return f"{crop},{self.resize}"


def parse_geometry(crop: str | None, resize: str | None, resolution: int | None) -> Geometry:
    """Check `crop` (center, center-wide[:H], none) and `resize` (lanczos, box) for `resolution`."""
    for flag, value in (("--crop", crop), ("--resize", resize)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{flag} {value!r}: must be a name such as {'center' if flag == '--crop' else 'lanczos'}")
    if resolution is None:
        if crop is not None or resize is not None:
            raise ConfigError("--crop and --resize need a --resolution to crop and resize to")
        return Geometry()
    mode, _, arg = (crop or "center").partition(":")
    if mode not in CROPS:
        raise ConfigError(f"--crop {crop!r}: must be one of center, center-wide[:H], none")
    band = None
    if mode == "center-wide":
        try:
            band = int(arg) if arg else resolution * 3 // 4
        except ValueError:
            raise ConfigError(f"--crop {crop!r}: H in center-wide:H must be an integer number of rows") from None
        if not 1 <= band <= resolution:
            raise ConfigError(f"--crop {crop!r}: the band height must be from 1 to the resolution {resolution}")
    elif arg:
        raise ConfigError(f"--crop {crop!r}: only center-wide takes a height (center-wide:H)")
    name = resize or "lanczos"
    if name not in RESIZE_FILTERS:
        raise ConfigError(f"--resize {resize!r}: must be one of {', '.join(RESIZE_FILTERS)}")
    return Geometry(mode, band, name)


def _resize(arr: np.ndarray, width: int, height: int, name: str) -> np.ndarray:
    if arr.shape[1] == width and arr.shape[0] == height:
        return arr
    channels = arr.shape[2]
    img = Image.fromarray(arr[:, :, 0] if channels == 1 else arr)
    out = np.asarray(img.resize((width, height), RESIZE_FILTERS[name]), dtype=np.uint8)
    return out[:, :, None] if channels == 1 else out


def fit(arr: np.ndarray, resolution: int, geometry: Geometry = Geometry(), where: str = "image") -> np.ndarray:
    """uint8 HWC -> uint8 HWC of `resolution` x `resolution` (see the module docstring for the crops)."""
    h, w = arr.shape[:2]
    if h == w == resolution and geometry.crop != "center-wide":
        return arr
    if geometry.crop == "none":
        return _resize(arr, resolution, resolution, geometry.resize)
    if geometry.crop == "center-wide":
        band = geometry.band if geometry.band is not None else resolution * 3 // 4
        rows = int(np.round(resolution * h / w))
        if w < resolution or rows < band:
            raise UnfitImage(f"{where} is {w}x{h}: too small for --crop center-wide:{band} at {resolution}px "
                             f"(needs width >= {resolution} and >= {band} rows once scaled to that width); "
                             f"NVlabs' dataset tool drops such images, as `ganbench datasets convert` does")
        strip = _resize(arr[(h - rows) // 2:(h + rows) // 2], resolution, band, geometry.resize)
        canvas = np.zeros([resolution, resolution, arr.shape[2]], dtype=np.uint8)
        canvas[(resolution - band) // 2:(resolution + band) // 2] = strip
        return canvas
    side = min(h, w)
    square = arr[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
    return _resize(square, resolution, resolution, geometry.resize)
