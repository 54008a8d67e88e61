"""The embedded shapes dataset: determinism, geometry against closed-form areas, labels, errors."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from ganbench.data.shapes import (
    BINARY_ATTRIBUTE_NAMES,
    COLOR_CLASSES,
    COLOR_RGB,
    POSITION_RANGE,
    SHAPE_CLASSES,
    SIZE_RANGE,
    ShapeAttributes,
    ShapesDataset,
    _inside,
    binary_attributes,
    render,
    sample_attributes,
)
from ganbench.errors import DataError


def reference_render(attrs: ShapeAttributes, resolution: int) -> np.ndarray:
    """Supersample the whole frame (no bounding box): the definition `render` must reproduce exactly."""
    ss = 4 if resolution <= 64 else 2
    n = resolution * ss
    coords = (np.arange(n, dtype=np.float64) + 0.5) / n
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    dx, dy = xx - attrs.x, yy - attrs.y
    c, s = np.cos(attrs.rotation), np.sin(attrs.rotation)
    u, v = c * dx + s * dy, -s * dx + c * dy
    alpha = _inside(SHAPE_CLASSES[attrs.shape], u, v, attrs.size).astype(np.float64)
    alpha = alpha.reshape(resolution, ss, resolution, ss).mean(axis=(1, 3))
    bg = np.full(3, attrs.background, dtype=np.float64)
    fg = np.asarray(COLOR_RGB[COLOR_CLASSES[attrs.color]], dtype=np.float64)
    img = bg[:, None, None] * (1 - alpha[None]) + fg[:, None, None] * alpha[None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("resolution", [8, 16, 32, 64, 128])
def test_render_matches_full_frame_reference(resolution):
    for i in range(40):
        attrs = sample_attributes(7, i)
        assert np.array_equal(render(attrs, resolution), reference_render(attrs, resolution)), i


def test_render_matches_reference_at_extremes_and_256():
    # Largest shapes at the edge of the position range, every rotation: the bounding box must be conservative.
    for shape in range(len(SHAPE_CLASSES)):
        for x in POSITION_RANGE:
            for rotation in np.linspace(0, 2 * np.pi, 9):
                attrs = ShapeAttributes(shape, 1, SIZE_RANGE[1], x, 1 - x, float(rotation), 30)
                assert np.array_equal(render(attrs, 32), reference_render(attrs, 32))
    attrs = sample_attributes(0, 3)
    assert np.array_equal(render(attrs, 256), reference_render(attrs, 256))


@pytest.mark.parametrize("shape,area", [
    ("circle", lambda s: np.pi * s * s),
    ("square", lambda s: (1.6 * s) ** 2),
    ("triangle", lambda s: 3 * np.sqrt(3) / 4 * s * s),
    ("cross", lambda s: 2 * (2 * s) * (0.7 * s) - (0.7 * s) ** 2),
])
def test_rendered_area_and_centroid_match_geometry(shape, area):
    res, size = 128, 0.3
    attrs = ShapeAttributes(SHAPE_CLASSES.index(shape), 0, size, 0.45, 0.55, 0.7, 0)
    img = render(attrs, res).astype(np.float64)
    alpha = img[0] / COLOR_RGB["red"][0]  # background 0, so coverage = red / red_fg
    assert alpha.sum() / res**2 == pytest.approx(area(size), rel=0.01)
    ys, xs = np.mgrid[0:res, 0:res] + 0.5
    assert (alpha * xs).sum() / alpha.sum() / res == pytest.approx(0.45, abs=0.5 / res)
    # An equilateral triangle's centroid is its circumcentre, so every shape is centred on (x, y).
    assert (alpha * ys).sum() / alpha.sum() / res == pytest.approx(0.55, abs=0.5 / res)


def test_colour_and_background():
    attrs = ShapeAttributes(0, COLOR_CLASSES.index("cyan"), 0.3, 0.5, 0.5, 0.0, 40)
    img = render(attrs, 32)
    assert tuple(img[:, 16, 16]) == COLOR_RGB["cyan"]
    assert tuple(img[:, 0, 0]) == (40, 40, 40)
    assert img.dtype == np.uint8 and img.shape == (3, 32, 32)


def test_deterministic_and_seed_dependent():
    a, b = ShapesDataset(n=20, seed=1), ShapesDataset(n=20, seed=1)
    c = ShapesDataset(n=20, seed=2)
    assert all(np.array_equal(a.image(i), b.image(i)) for i in range(20))
    assert not all(np.array_equal(a.image(i), c.image(i)) for i in range(20))
    # Attributes do not depend on resolution or on n (image i is the same in a bigger set).
    assert ShapesDataset(n=5, resolution=8, seed=1).attributes(3) == ShapesDataset(n=50, seed=1).attributes(3)


def test_attribute_ranges_and_class_balance():
    ds = ShapesDataset(n=2400, seed=0)
    table = ds.attribute_table()
    assert table["size"].min() >= SIZE_RANGE[0] and table["size"].max() <= SIZE_RANGE[1]
    assert table["x"].min() >= POSITION_RANGE[0] and table["y"].max() <= POSITION_RANGE[1]
    shape_counts = np.bincount(table["shape"], minlength=4)
    color_counts = np.bincount(table["color"], minlength=6)
    # Uniform classes: counts within 5 binomial standard deviations of the expectation.
    assert np.all(np.abs(shape_counts - 600) < 5 * np.sqrt(2400 * 0.25 * 0.75))
    assert np.all(np.abs(color_counts - 400) < 5 * np.sqrt(2400 / 6 * 5 / 6))


def test_labels_binary_attributes_and_annotations():
    ds = ShapesDataset(n=30, seed=4)
    attrs = [ds.attributes(i) for i in range(30)]
    for i, a in enumerate(attrs):
        assert ds.label(i).dtype == np.float32 and ds.label(i).argmax() == a.shape and ds.label(i).sum() == 1
        assert ds.annotations(i) == asdict(a)
    table = binary_attributes(attrs)
    assert table.shape == (30, len(BINARY_ATTRIBUTE_NAMES)) == (30, 13)
    for row, a in zip(table, attrs):
        assert row[a.shape] and row[:4].sum() == 1
        assert row[4 + a.color] and row[4:10].sum() == 1
        assert row[10] == (a.size > sum(SIZE_RANGE) / 2)
        assert row[11] == (a.x < 0.5) and row[12] == (a.y < 0.5)


def test_restricted_classes_keep_label_space_and_change_identity():
    ds = ShapesDataset(n=50, shapes=("circle",), colors=("red", "blue"))
    assert {ds.attributes(i).shape for i in range(50)} == {0}
    assert {ds.attributes(i).color for i in range(50)} == {0, 2}
    assert ds.label_dim == 4
    assert ds.identity != ShapesDataset(n=50).identity
    assert ds.identity != ShapesDataset(n=50, shapes=("square",), colors=("red", "blue")).identity


@pytest.mark.parametrize("bad", [{"resolution": 12}, {"resolution": 4}, {"resolution": 512}, {"n": 0},
                                 {"shapes": ("hexagon",)}, {"colors": ()}])
def test_bad_arguments_are_data_errors(bad):
    with pytest.raises(DataError):
        ShapesDataset(**bad)


def test_loader_batches_are_uint8_nchw():
    ds = ShapesDataset(n=10, resolution=16)
    images, labels = next(iter(ds.loader(batch_size=4)))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 16, 16)
    assert labels.dtype == torch.float32 and labels.shape == (4, 4)
    shuffled = [x for x, _ in ds.loader(batch_size=10, shuffle=True, seed=3)][0]
    again = [x for x, _ in ds.loader(batch_size=10, shuffle=True, seed=3)][0]
    assert torch.equal(shuffled, again)
    with pytest.raises(IndexError):
        ds.attributes(10)


def test_attributes_are_frozen():
    a = sample_attributes(0, 0)
    with pytest.raises(AttributeError):
        a.size = 0.1  # type: ignore[misc]
