"""Turning decoded pictures into the dataset's uint8 CHW images: channel count, centre crop, resize.

These choices change every number computed on the data, so they are few, fixed and documented:
- grayscale modes (1, L, LA, I, I;16, F) become 1 channel (16-bit scaled, not clipped); everything else
  becomes RGB (3 channels); `channels=1` on colour images uses PIL's ITU-R 601-2 luma;
  alpha is dropped, palette images are expanded;
- an image already at the target size passes through untouched (no resampling);
- otherwise the largest centred square is cropped and resized with PIL's Lanczos filter (as NVlabs'
  dataset_tool `center-crop` does).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from ganbench.errors import DataError

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


def fit(arr: np.ndarray, resolution: int) -> np.ndarray:
    """uint8 HWC -> uint8 HWC of `resolution` x `resolution`: centre crop to square, Lanczos resize."""
    h, w = arr.shape[:2]
    if h == w == resolution:
        return arr
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = arr[top:top + side, left:left + side]
    if side == resolution:
        return square
    channels = square.shape[2]
    img = Image.fromarray(square[:, :, 0] if channels == 1 else square)
    out = np.asarray(img.resize((resolution, resolution), Image.Resampling.LANCZOS), dtype=np.uint8)
    return out[:, :, None] if channels == 1 else out
