"""The embedded `shapes` dataset: one anti-aliased shape per image on a plain background.

Every image is a pure function of (seed, index, resolution), so the dataset needs no files, can be
read in any order, and its attributes (shape class, colour class, size, position, rotation) are
known exactly; that makes recall, precision and linear separability testable against ground truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ganbench.data.base import ImageDataset
from ganbench.errors import DataError

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
COLOR_CLASSES: tuple[str, ...] = ("red", "green", "blue", "yellow", "magenta", "cyan")
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 45, 45),
    "green": (45, 185, 65),
    "blue": (50, 85, 225),
    "yellow": (230, 210, 45),
    "magenta": (205, 55, 205),
    "cyan": (45, 205, 215),
}
SIZE_RANGE = (0.14, 0.34)      # half-extent of the shape as a fraction of the image side
POSITION_RANGE = (0.32, 0.68)  # centre x and y as a fraction of the image side
BACKGROUND_RANGE = (16, 72)    # grey level of the plain background
BINARY_ATTRIBUTE_NAMES: tuple[str, ...] = (
    tuple(f"shape_{s}" for s in SHAPE_CLASSES)
    + tuple(f"color_{c}" for c in COLOR_CLASSES)
    + ("size_large", "pos_left", "pos_top")
)


@dataclass(frozen=True)
class ShapeAttributes:
    """Ground truth for one image; sizes and positions are fractions of the image side."""

    shape: int       # index into SHAPE_CLASSES
    color: int       # index into COLOR_CLASSES
    size: float
    x: float
    y: float
    rotation: float  # radians
    background: int  # grey level 0..255


def sample_attributes(seed: int, index: int, shapes: tuple[int, ...] = tuple(range(len(SHAPE_CLASSES))),
                      colors: tuple[int, ...] = tuple(range(len(COLOR_CLASSES)))) -> ShapeAttributes:
    """Attributes of image `index` of the dataset with `seed`; independent of resolution."""
    rng = np.random.default_rng([seed, index])
    u = rng.random(7)
    return ShapeAttributes(
        shape=int(shapes[min(int(u[0] * len(shapes)), len(shapes) - 1)]),
        color=int(colors[min(int(u[1] * len(colors)), len(colors) - 1)]),
        size=float(SIZE_RANGE[0] + u[2] * (SIZE_RANGE[1] - SIZE_RANGE[0])),
        x=float(POSITION_RANGE[0] + u[3] * (POSITION_RANGE[1] - POSITION_RANGE[0])),
        y=float(POSITION_RANGE[0] + u[4] * (POSITION_RANGE[1] - POSITION_RANGE[0])),
        rotation=float(u[5] * 2 * np.pi),
        background=int(BACKGROUND_RANGE[0] + u[6] * (BACKGROUND_RANGE[1] - BACKGROUND_RANGE[0])),
    )


def _inside(shape: str, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """Boolean mask of points (u, v), in the shape's own rotated frame, that lie inside it."""
    if shape == "circle":
        return u * u + v * v <= s * s
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.8 * s
    if shape == "triangle":  # equilateral, circumradius s, inradius s/2
        inside = np.ones_like(u, dtype=bool)
        for angle in (-np.pi / 2, np.pi / 6, 5 * np.pi / 6):
            inside &= u * np.cos(angle) + v * np.sin(angle) <= s / 2
        return inside
    if shape == "cross":
        arm = 0.35 * s
        return ((np.abs(u) <= s) & (np.abs(v) <= arm)) | ((np.abs(v) <= s) & (np.abs(u) <= arm))
    raise DataError(f"unknown shape class {shape!r}; known: {', '.join(SHAPE_CLASSES)}")


BOUND_RADIUS = 1.15  # every shape lies within this multiple of its size from its centre (square: 0.8*sqrt(2))


def render(attrs: ShapeAttributes, resolution: int) -> np.ndarray:
    """Render one image as uint8 CHW with 4x4 supersampling (2x2 above 64 px) for anti-aliasing.

    Only the pixels of the shape's bounding box are supersampled; the rest is background. The
    sample coordinates are the same numbers a full-image pass would use, so pixels do not change.
    """
    ss = 4 if resolution <= 64 else 2
    n = resolution * ss
    coords = (np.arange(n, dtype=np.float64) + 0.5) / n
    reach = BOUND_RADIUS * attrs.size
    (r0, r1), (c0, c1) = _pixel_span(attrs.y, reach, resolution), _pixel_span(attrs.x, reach, resolution)
    img = np.full([3, resolution, resolution], attrs.background, dtype=np.uint8)
    if r1 <= r0 or c1 <= c0:
        return img
    yy, xx = np.meshgrid(coords[r0 * ss:r1 * ss], coords[c0 * ss:c1 * ss], indexing="ij")
    dx, dy = xx - attrs.x, yy - attrs.y
    c, s = np.cos(attrs.rotation), np.sin(attrs.rotation)
    u, v = c * dx + s * dy, -s * dx + c * dy
    mask = _inside(SHAPE_CLASSES[attrs.shape], u, v, attrs.size).astype(np.float64)
    alpha = mask.reshape(r1 - r0, ss, c1 - c0, ss).mean(axis=(1, 3))[None]
    bg = np.full([3, 1, 1], attrs.background, dtype=np.float64)
    fg = np.asarray(COLOR_RGB[COLOR_CLASSES[attrs.color]], dtype=np.float64)[:, None, None]
    # A convex mix of two 0..255 values, so rounding alone keeps it in range.
    img[:, r0:r1, c0:c1] = np.rint(bg * (1 - alpha) + fg * alpha).astype(np.uint8)
    return img


def _pixel_span(centre: float, reach: float, resolution: int) -> tuple[int, int]:
    """Half-open pixel range covering [centre - reach, centre + reach], widened by one pixel each side."""
    lo = int(np.floor((centre - reach) * resolution)) - 1
    hi = int(np.ceil((centre + reach) * resolution)) + 1
    return max(lo, 0), min(hi, resolution)


def binary_attributes(attrs: list[ShapeAttributes]) -> np.ndarray:
    """Bool matrix [N, len(BINARY_ATTRIBUTE_NAMES)]: one-vs-rest shape/colour plus size/position halves."""
    out = np.zeros([len(attrs), len(BINARY_ATTRIBUTE_NAMES)], dtype=bool)
    size_mid = sum(SIZE_RANGE) / 2
    pos_mid = sum(POSITION_RANGE) / 2
    ns, nc = len(SHAPE_CLASSES), len(COLOR_CLASSES)
    for i, a in enumerate(attrs):
        out[i, a.shape] = True
        out[i, ns + a.color] = True
        out[i, ns + nc + 0] = a.size > size_mid
        out[i, ns + nc + 1] = a.x < pos_mid
        out[i, ns + nc + 2] = a.y < pos_mid
    return out


def _check_resolution(resolution: int) -> None:
    if not (8 <= resolution <= 256) or resolution & (resolution - 1):
        raise DataError(f"shapes resolution must be a power of two from 8 to 256, got {resolution}")


class ShapesDataset(ImageDataset):
    """`n` deterministic shapes images at `resolution`; labels are one-hot shape classes (label_dim 4).

    `shapes` / `colors` restrict which classes are drawn (e.g. to build a mode-dropped set for tests);
    the label space stays the full one so restricted and full sets are comparable.
    """

    name = "shapes"
    num_channels = 3
    label_dim = len(SHAPE_CLASSES)

    def __init__(self, n: int = 10000, resolution: int = 32, seed: int = 0,
                 shapes: tuple[str, ...] = SHAPE_CLASSES, colors: tuple[str, ...] = COLOR_CLASSES) -> None:
        _check_resolution(resolution)
        if n < 1:
            raise DataError(f"shapes dataset size must be positive, got n={n}")
        for kind, given, known in (("shape", shapes, SHAPE_CLASSES), ("colour", colors, COLOR_CLASSES)):
            bad = [g for g in given if g not in known]
            if bad or not given:
                raise DataError(f"unknown or empty {kind} classes {list(given)}; known: {', '.join(known)}")
        self.n, self.resolution, self.seed = int(n), int(resolution), int(seed)
        self.shapes, self.colors = tuple(shapes), tuple(colors)
        self._shape_ids = tuple(SHAPE_CLASSES.index(s) for s in shapes)
        self._color_ids = tuple(COLOR_CLASSES.index(c) for c in colors)

    @property
    def identity(self) -> str:
        restrict = ""
        if self.shapes != SHAPE_CLASSES:
            restrict += "-s" + "+".join(self.shapes)
        if self.colors != COLOR_CLASSES:
            restrict += "-c" + "+".join(self.colors)
        return f"shapes-n{self.n}-r{self.resolution}-seed{self.seed}{restrict}"

    def __len__(self) -> int:
        return self.n

    def attributes(self, index: int) -> ShapeAttributes:
        """Ground-truth attributes of image `index`."""
        if not 0 <= index < self.n:
            raise IndexError(f"index {index} out of range for {self.n} images")
        return sample_attributes(self.seed, index, self._shape_ids, self._color_ids)

    def attribute_table(self) -> dict[str, np.ndarray]:
        """All attributes as columns (name -> array of length n)."""
        rows = [asdict(self.attributes(i)) for i in range(self.n)]
        return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}

    def annotations(self, index: int) -> dict[str, Any]:
        return asdict(self.attributes(index))

    def image(self, index: int) -> np.ndarray:
        return render(self.attributes(index), self.resolution)

    def label(self, index: int) -> np.ndarray:
        onehot = np.zeros([self.label_dim], dtype=np.float32)
        onehot[self.attributes(index).shape] = 1.0
        return onehot
