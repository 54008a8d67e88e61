"""Image folders, zips and npz arrays through open_dataset: pixels, labels, preprocessing, bad input, export."""

from __future__ import annotations

import json
import os
import pickle
import warnings
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganbench.data import ShapesDataset, open_dataset
from ganbench.data.export import export_dataset, image_name
from ganbench.errors import ConfigError, DataError, GanbenchError


def rgb_images(n: int, size: int = 16, seed: int = 0) -> list[np.ndarray]:
    """Random uint8 HWC RGB images."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, [size, size, 3], dtype=np.uint8) for _ in range(n)]


def write_folder(root: Path, images: list[np.ndarray], fmt: str = "png", names: list[str] | None = None) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    names = names or [f"img{i:03d}.{fmt}" for i in range(len(images))]
    for name, img in zip(names, images):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        extra = {"lossless": True} if name.endswith(".webp") else {}
        Image.fromarray(img.squeeze(-1) if img.ndim == 3 and img.shape[2] == 1 else img).save(root / name, **extra)
    return names


def chw(img: np.ndarray) -> np.ndarray:
    return img.transpose(2, 0, 1)


# -- folders ------------------------------------------------------------------------------------

def test_folder_pixels_order_and_recursion(tmp_path):
    images = rgb_images(5)
    names = ["b.png", "a.png", "sub/c.png", "sub/deeper/d.bmp", "e.webp"]
    write_folder(tmp_path / "data", images, names=names)
    ds = open_dataset(str(tmp_path / "data"))
    assert ds.names == sorted(names)  # sorted by relative path, independent of the file system
    assert (len(ds), ds.resolution, ds.num_channels, ds.label_dim) == (5, 16, 3, 0)
    for name, img in zip(names, images):
        assert np.array_equal(ds.image(ds.names.index(name)), chw(img))
    assert ds.label(0).shape == (0,)
    x, c = ds[0]
    assert x.dtype == torch.uint8 and x.shape == (3, 16, 16) and c.dtype == torch.float32


def test_jpeg_and_hidden_and_side_files(tmp_path):
    write_folder(tmp_path, rgb_images(2), fmt="jpg")
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.txt").write_text("ignored")
    ds = open_dataset(str(tmp_path))
    assert len(ds) == 2 and ds.image(1).shape == (3, 16, 16)


def test_grayscale_rgba_and_la_channels(tmp_path):
    gray = [np.random.default_rng(1).integers(0, 256, [8, 8, 1], dtype=np.uint8) for _ in range(2)]
    write_folder(tmp_path / "g", gray)
    ds = open_dataset(str(tmp_path / "g"))
    assert ds.num_channels == 1 and np.array_equal(ds.image(0), chw(gray[0]))
    rgba = np.random.default_rng(2).integers(0, 256, [8, 8, 4], dtype=np.uint8)
    (tmp_path / "a").mkdir()
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a" / "x.png")
    ds = open_dataset(str(tmp_path / "a"))
    assert ds.num_channels == 3 and np.array_equal(ds.image(0), chw(rgba[:, :, :3]))
    (tmp_path / "la").mkdir()
    Image.fromarray(rgba[:, :, :2], "LA").save(tmp_path / "la" / "x.png")
    ds = open_dataset(str(tmp_path / "la"))
    assert ds.num_channels == 1 and np.array_equal(ds.image(0)[0], rgba[:, :, 0])


def test_sixteen_bit_gray_and_palette_images(tmp_path):
    (tmp_path / "g16").mkdir()
    wide = np.array([[0, 65535], [32896, 257]], dtype=np.uint16).repeat(2, 0).repeat(2, 1)
    Image.fromarray(wide).save(tmp_path / "g16" / "a.png")  # a 16-bit grayscale PNG
    ds = open_dataset(str(tmp_path / "g16"))
    assert ds.num_channels == 1 and ds.image(0)[0, ::2, ::2].tolist() == [[0, 255], [128, 1]]
    (tmp_path / "p").mkdir()
    rgb = np.zeros([4, 4, 3], np.uint8)
    rgb[:2] = (200, 30, 60)
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=2).save(tmp_path / "p" / "a.png")
    ds = open_dataset(str(tmp_path / "p"))
    assert ds.num_channels == 3 and np.array_equal(ds.image(0), chw(rgb))


def test_mixed_channel_counts_error_names_file_unless_converted(tmp_path):
    write_folder(tmp_path, rgb_images(1), names=["a.png"])
    Image.fromarray(np.zeros([16, 16], np.uint8)).save(tmp_path / "b.png")
    ds = open_dataset(str(tmp_path))
    with pytest.raises(DataError, match=r"b\.png has 1 channel.*mixed channel"):
        ds.image(1)
    converted = open_dataset(str(tmp_path), channels=3)
    assert converted.image(1).shape == (3, 16, 16) and converted.image(1).max() == 0
    gray = open_dataset(str(tmp_path), channels=1)
    assert gray.num_channels == 1 and gray.image(0).shape == (1, 16, 16)


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        open_dataset(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="not found"):
        open_dataset(str(tmp_path / "nope"))
    (tmp_path / "x.tar").write_bytes(b"")
    with pytest.raises(DataError, match="unsupported dataset file"):
        open_dataset(str(tmp_path / "x.tar"))


def test_stray_non_image_file_is_an_error_or_skipped_with_warning(tmp_path):
    write_folder(tmp_path, rgb_images(2))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt is not an image"):
        open_dataset(str(tmp_path))
    with pytest.warns(UserWarning, match=r"notes\.txt"):
        ds = open_dataset(str(tmp_path), skip_unknown=True)
    assert len(ds) == 2


def test_corrupt_images_are_errors_naming_the_file(tmp_path):
    names = write_folder(tmp_path, rgb_images(3))
    (tmp_path / names[0]).write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"img000\.png is not a readable image"):
        open_dataset(str(tmp_path))  # the first image is read at open time
    write_folder(tmp_path, rgb_images(1), names=[names[0]])
    raw = (tmp_path / names[2]).read_bytes()
    (tmp_path / names[2]).write_bytes(raw[: len(raw) // 2])  # truncated: header fine, pixels missing
    ds = open_dataset(str(tmp_path))
    ds.image(1)
    with pytest.raises(DataError, match=r"img002\.png is corrupt"):
        ds.image(2)
    with pytest.raises(DataError, match=r"img002\.png"):
        ds.verify()
    (tmp_path / names[2]).write_bytes(b"")
    with pytest.raises(DataError, match=r"img002\.png"):
        open_dataset(str(tmp_path)).image(2)


def test_resolution_rules(tmp_path):
    write_folder(tmp_path / "odd", [np.zeros([24, 24, 3], np.uint8)])
    with pytest.raises(DataError, match=r"24x24, not a square power-of-two"):
        open_dataset(str(tmp_path / "odd"))
    assert open_dataset(str(tmp_path / "odd"), resolution=16).image(0).shape == (3, 16, 16)
    for bad in (12, 0, -8, 3, 8192, 16.5):
        with pytest.raises(DataError, match="power of two"):
            open_dataset(str(tmp_path / "odd"), resolution=bad)
    with pytest.raises(DataError, match="power of two"):
        open_dataset("shapes", resolution=48)
    write_folder(tmp_path / "sizes", [np.zeros([16, 16, 3], np.uint8), np.zeros([32, 32, 3], np.uint8)])
    ds = open_dataset(str(tmp_path / "sizes"))
    with pytest.raises(DataError, match=r"img001\.png is 32x32 but the dataset's images are 16x16"):
        ds.image(1)
    assert open_dataset(str(tmp_path / "sizes"), resolution=16).image(1).shape == (3, 16, 16)


def test_centre_crop_keeps_the_middle_and_resize_preserves_content(tmp_path):
    wide = np.zeros([32, 64, 3], np.uint8)
    wide[:, :16] = 255  # left and right quarters are cropped away
    wide[:, 48:] = 255
    wide[:, 16:48] = np.arange(32, dtype=np.uint8)[:, None, None] * 8
    write_folder(tmp_path / "w", [wide])
    ds = open_dataset(str(tmp_path / "w"), resolution=32)
    assert np.array_equal(ds.image(0), chw(wide[:, 16:48]))
    # Downsampling a smooth ramp by 2: Lanczos agrees with 2x2 box averaging to within 1.5 grey levels.
    ramp = (np.add.outer(np.arange(64), np.arange(64)) * 2).astype(np.uint8)[:, :, None].repeat(3, 2)
    write_folder(tmp_path / "r", [ramp])
    small = open_dataset(str(tmp_path / "r"), resolution=32).image(0).astype(np.float64)
    box = ramp.reshape(32, 2, 32, 2, 3).mean(axis=(1, 3)).transpose(2, 0, 1)
    assert np.abs(small - box)[:, 2:-2, 2:-2].max() <= 1.5


# -- labels -------------------------------------------------------------------------------------

def test_int_labels_become_one_hot(tmp_path):
    names = write_folder(tmp_path, rgb_images(3), names=["a.png", "sub/b.png", "c.png"])
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [["c.png", 0], ["a.png", 2], ["sub/b.png", 1]]}))
    ds = open_dataset(str(tmp_path))
    assert ds.label_dim == 3 and ds.names == ["a.png", "c.png", "sub/b.png"]
    assert [int(ds.label(i).argmax()) for i in range(3)] == [2, 0, 1]
    assert ds.label(0).dtype == np.float32 and ds.label(0).sum() == 1
    assert open_dataset(str(tmp_path), use_labels=False).label_dim == 0
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [[n, 0] for n in names], "label_dim": 5}))
    assert open_dataset(str(tmp_path)).label_dim == 5
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": None}))
    assert open_dataset(str(tmp_path)).label_dim == 0


def _nvlabs_label_dim(folder) -> int:
    """The label size NVlabs' training/dataset.py gives a dataset.json, re-derived by hand: int classes become
    one-hot rows of max + 1 (the file's `label_dim` key is not read); vectors keep their length."""
    labels = [lab for _name, lab in json.loads((folder / "dataset.json").read_text())["labels"]]
    return max(labels) + 1 if all(isinstance(x, int) for x in labels) else len(labels[0])


def test_exported_labels_have_the_same_size_in_nvlabs_loader_and_here(tmp_path):
    """Export wrote one-hot rows as int classes. With only classes 0-2 of 5 present (vectors of 5, or the first n of
    a 6-class set), NVlabs' loader then built a 3-class dataset while ganbench read 5 or 6 (its label_dim key): a
    conditional model's c_dim differed between the two codes. Such labels are now written as vectors."""
    write_folder(tmp_path / "vec", rgb_images(4), names=[f"{i}.png" for i in range(4)])
    rows = [np.eye(5)[c].tolist() for c in (0, 1, 2, 0)]
    (tmp_path / "vec" / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", r] for i, r in enumerate(rows)]}))
    write_folder(tmp_path / "cls", rgb_images(6), names=[f"{i}.png" for i in range(6)])
    (tmp_path / "cls" / "dataset.json").write_text(json.dumps({"labels": [[f"{i}.png", i] for i in range(6)]}))
    for src, kw, dim in (("vec", {}, 5), ("cls", {"n": 3}, 6), ("cls", {}, 6)):
        out = export_dataset(open_dataset(str(tmp_path / src), **kw), tmp_path / f"out-{src}-{len(kw)}")
        assert _nvlabs_label_dim(out) == dim == open_dataset(str(out)).label_dim, (src, kw)
    assert all(isinstance(lab, int) for _n, lab in json.loads((tmp_path / "out-cls-0" / "dataset.json").read_text())[
        "labels"])                                                    # every class present: still compact ints


def test_first_n_images_keep_their_labels_and_attributes(tmp_path):
    shapes = ShapesDataset(n=6, resolution=8, seed=1)
    export_dataset(shapes, tmp_path / "s.zip")
    head = open_dataset(str(tmp_path / "s.zip"), n=4)
    assert len(head) == 4 and head.label_dim == 4 and head.identity != open_dataset(str(tmp_path / "s.zip")).identity
    for i in range(4):
        assert np.array_equal(head.label(i), shapes.label(i)) and head.annotations(i) == asdict(shapes.attributes(i))


def test_vector_labels(tmp_path):
    names = write_folder(tmp_path, rgb_images(2))
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": [[names[0], [0.5, 1]], [names[1], [2, -1.5]]]}))
    ds = open_dataset(str(tmp_path))
    assert ds.label_dim == 2 and np.array_equal(ds.label(1), np.array([2, -1.5], np.float32))


@pytest.mark.parametrize("doc,match", [
    ({"labels": [["img000.png", 0], ["img001.png", 1], ["gone.png", 1]]}, r"references 'gone\.png'"),
    ({"labels": [["img000.png", 0]]}, r"no entry for image 'img001\.png'"),
    ({"labels": [["img000.png", 0], ["img001.png", [1.0]]]}, "all ints"),
    ({"labels": [["img000.png", [1, 2]], ["img001.png", [1.0]]]}, "same non-zero length"),
    ({"labels": [["img000.png", -1], ["img001.png", 1]]}, "negative"),
    ({"labels": [["img000.png", 0], ["img001.png", 1]], "label_dim": 1}, "label_dim"),
    ({"labels": [["img000.png", 0], ["img000.png", 1]]}, "twice"),
    ({"classes": []}, "'labels' key"),
])
def test_bad_label_files(tmp_path, doc, match):
    write_folder(tmp_path, rgb_images(2))
    (tmp_path / "dataset.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=match) as info:
        open_dataset(str(tmp_path))
    assert "dataset.json" in str(info.value) and "\n" not in str(info.value)


def test_label_file_that_is_not_json(tmp_path):
    write_folder(tmp_path, rgb_images(1))
    (tmp_path / "dataset.json").write_text("{not json")
    with pytest.raises(DataError, match=r"dataset\.json is not valid JSON"):
        open_dataset(str(tmp_path))


# -- zips ---------------------------------------------------------------------------------------

def test_zip_matches_folder_and_reads_labels(tmp_path):
    images = rgb_images(4)
    names = write_folder(tmp_path / "src", images, names=["x/a.png", "x/b.png", "c.png", "d.png"])
    labels = {"labels": [[n, i % 2] for i, n in enumerate(names)]}
    (tmp_path / "src" / "dataset.json").write_text(json.dumps(labels))
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as zf:
        zf.writestr("x/", "")  # explicit directory entry
        for name in [*names, "dataset.json"]:
            zf.write(tmp_path / "src" / name, name)
    folder, archive = open_dataset(str(tmp_path / "src")), open_dataset(str(tmp_path / "data.zip"))
    assert archive.names == folder.names and archive.label_dim == folder.label_dim == 2
    for i in range(4):
        assert np.array_equal(archive.image(i), folder.image(i))
        assert np.array_equal(archive.label(i), folder.label(i))
    assert archive.identity != folder.identity and archive.identity.startswith("zip-data-n4-r16")
    clone = pickle.loads(pickle.dumps(archive))  # what DataLoader workers receive
    assert np.array_equal(clone.image(3), archive.image(3))


def test_bad_zips(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"bad\.zip is not a readable zip"):
        open_dataset(str(tmp_path / "bad.zip"))
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as zf:
        zf.writestr("readme/", "")
    with pytest.raises(DataError, match="holds no images"):
        open_dataset(str(tmp_path / "empty.zip"))
    with zipfile.ZipFile(tmp_path / "junk.zip", "w") as zf:
        zf.writestr("a.png", b"garbage")
    with pytest.raises(DataError, match=r"junk\.zip/a\.png is not a readable image"):
        open_dataset(str(tmp_path / "junk.zip"))


# -- npz / npy ----------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NHWC", "NCHW", "NHW"])
@pytest.mark.parametrize("compressed", [False, True])
def test_npz_layouts(tmp_path, layout, compressed):
    rng = np.random.default_rng(0)
    nchw = rng.integers(0, 256, [5, 1 if layout == "NHW" else 3, 8, 8], dtype=np.uint8)
    arr = {"NHWC": nchw.transpose(0, 2, 3, 1), "NCHW": nchw, "NHW": nchw[:, 0]}[layout]
    labels = np.array([0, 3, 1, 1, 2])
    (np.savez_compressed if compressed else np.savez)(tmp_path / "d.npz", images=arr, labels=labels)
    ds = open_dataset(str(tmp_path / "d.npz"))
    assert (len(ds), ds.resolution, ds.num_channels, ds.label_dim) == (5, 8, nchw.shape[1], 4)
    assert (ds._offset is None) == compressed  # uncompressed members are memory-mapped
    for i in range(5):
        assert np.array_equal(ds.image(i), nchw[i])
        assert ds.label(i).argmax() == labels[i]
    assert np.array_equal(pickle.loads(pickle.dumps(ds)).image(4), nchw[4])
    assert open_dataset(str(tmp_path / "d.npz"), resolution=4).image(0).shape == (nchw.shape[1], 4, 4)
    assert len(open_dataset(str(tmp_path / "d.npz"), n=2)) == 2


def test_npz_rgba_float_labels_and_npy(tmp_path):
    rgba = np.random.default_rng(1).integers(0, 256, [2, 8, 8, 4], dtype=np.uint8)
    vectors = np.array([[0.5, 1.0], [2.0, 3.0]], dtype=np.float64)
    np.savez(tmp_path / "d.npz", images=rgba, labels=vectors)
    ds = open_dataset(str(tmp_path / "d.npz"))
    assert ds.num_channels == 3 and np.array_equal(ds.image(1), rgba[1, :, :, :3].transpose(2, 0, 1))
    assert np.array_equal(ds.label(1), vectors[1].astype(np.float32))
    np.save(tmp_path / "d.npy", rgba[:, :, :, :3])
    npy = open_dataset(str(tmp_path / "d.npy"))
    assert npy.label_dim == 0 and np.array_equal(npy.image(0), rgba[0, :, :, :3].transpose(2, 0, 1))


@pytest.mark.parametrize("arrays,match", [
    ({"x": np.zeros([2, 8, 8, 3], np.uint8)}, r"no 'images' array \(found keys: x\); save images with"),
    ({"mu": np.zeros([4]), "sigma": np.eye(4)}, r"statistics or features file: pass it as --real-stats"),
    ({"features": np.zeros([3, 4], np.float32)}, r"statistics or features file: pass it as --real-stats"),
    ({"images": np.zeros([2, 8, 8, 3], np.float32)}, "must be uint8"),
    ({"images": np.zeros([2, 8, 8, 7], np.uint8)}, "cannot tell the channel axis"),
    ({"images": np.zeros([2, 8], np.uint8)}, "must be"),
    ({"images": np.zeros([0, 8, 8, 3], np.uint8)}, "holds no images"),
    ({"images": np.zeros([2, 12, 12, 3], np.uint8)}, "not a square power-of-two"),
    ({"images": np.zeros([2, 8, 8, 3], np.uint8), "labels": np.zeros([3])}, "there are 2 images"),
    ({"images": np.zeros([2, 8, 8, 3], np.uint8), "labels": np.array([0, -1])}, "negative"),
])
def test_bad_npz(tmp_path, arrays, match):
    np.savez(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=match):
        open_dataset(str(tmp_path / "d.npz"))


def test_npz_that_is_not_a_zip(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"nonsense")
    with pytest.raises(DataError, match=r"d\.npz is not a readable \.npz"):
        open_dataset(str(tmp_path / "d.npz"))


# -- open_dataset and identity ------------------------------------------------------------------

def test_shapes_specs_and_options():
    assert len(open_dataset("shapes")) == 10000 and open_dataset("shapes").resolution == 32
    ds = open_dataset("shapes:50", resolution=16, seed=3)
    assert (len(ds), ds.resolution, ds.seed) == (50, 16, 3)
    assert np.array_equal(ds.image(7), ShapesDataset(n=50, resolution=16, seed=3).image(7))
    assert len(open_dataset("shapes", n=20)) == 20
    with pytest.raises(DataError, match="number of images"):
        open_dataset("shapes:many")
    with pytest.raises(DataError, match="conflicts"):
        open_dataset("shapes:5", n=6)
    with pytest.raises(ConfigError, match="seeed"):
        open_dataset("shapes", seeed=1)


def test_options_that_do_not_apply_are_errors(tmp_path):
    write_folder(tmp_path, rgb_images(1))
    with pytest.raises(ConfigError, match="seed do not apply to the folder dataset"):
        open_dataset(str(tmp_path), seed=1)
    with pytest.raises(DataError, match="channels must be 1 or 3"):
        open_dataset(str(tmp_path), channels=2)
    with pytest.raises(DataError, match="n=5"):
        open_dataset(str(tmp_path), n=5)


def test_identity_tracks_content_and_settings(tmp_path):
    names = write_folder(tmp_path, rgb_images(2))
    first = open_dataset(str(tmp_path)).identity
    assert open_dataset(str(tmp_path)).identity == first
    assert open_dataset(str(tmp_path), resolution=8).identity != first
    assert open_dataset(str(tmp_path), channels=1).identity != first
    write_folder(tmp_path, rgb_images(1, seed=9), names=[names[1]])
    os.utime(tmp_path / names[1], ns=(1, 1))  # a changed file changes its mtime (and here its size may not)
    assert open_dataset(str(tmp_path)).identity != first
    assert all(ch.isalnum() or ch in "._-" for ch in first)  # safe inside cache file names


# -- export -------------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["out.zip", "outdir"])
def test_export_round_trips_pixels_labels_attributes(tmp_path, target):
    shapes = ShapesDataset(n=12, resolution=16, seed=5)
    out = export_dataset(shapes, tmp_path / target)
    back = open_dataset(str(out))
    assert (len(back), back.resolution, back.num_channels, back.label_dim) == (12, 16, 3, 4)
    assert back.names == [image_name(i) for i in range(12)]
    for i in range(12):
        assert np.array_equal(back.image(i), shapes.image(i))
        assert np.array_equal(back.label(i), shapes.label(i))
        assert back.annotations(i) == asdict(shapes.attributes(i))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_export_zip_is_deterministic_and_refuses_to_clobber(tmp_path):
    shapes = ShapesDataset(n=3, resolution=8)
    export_dataset(shapes, tmp_path / "a.zip")
    export_dataset(shapes, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with pytest.raises(DataError, match="already exists"):
        export_dataset(shapes, tmp_path / "a.zip")
    export_dataset(ShapesDataset(n=2, resolution=8), tmp_path / "a.zip", overwrite=True)
    assert len(open_dataset(str(tmp_path / "a.zip"))) == 2


def test_export_grayscale_vector_labels_and_unlabelled(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, [3, 8, 8], dtype=np.uint8)
    np.savez(tmp_path / "g.npz", images=gray, labels=np.array([[0.5], [1.0], [-2.0]]))
    back = open_dataset(str(export_dataset(open_dataset(str(tmp_path / "g.npz")), tmp_path / "g.zip")))
    assert back.num_channels == 1 and np.array_equal(back.image(2)[0], gray[2])
    assert back.label_dim == 1 and back.label(2)[0] == -2.0 and back.annotations(0) is None
    np.savez(tmp_path / "u.npz", images=gray)
    back = open_dataset(str(export_dataset(open_dataset(str(tmp_path / "u.npz")), tmp_path / "u")))
    assert back.label_dim == 0 and json.loads((tmp_path / "u" / "dataset.json").read_text()) == {"labels": None}


class Exploding(ShapesDataset):
    """A dataset whose 5th image cannot be read: exports must fail without leaving partial output."""

    def image(self, index: int) -> np.ndarray:
        if index == 4:
            raise DataError("image 4 is broken")
        return super().image(index)


@pytest.mark.parametrize("target", ["out.zip", "outdir"])
def test_failed_export_leaves_old_output_and_no_temp_files(tmp_path, target):
    old = export_dataset(ShapesDataset(n=2, resolution=8), tmp_path / target)
    with pytest.raises(DataError, match="broken"):
        export_dataset(Exploding(n=8, resolution=8), tmp_path / target, overwrite=True)
    assert len(open_dataset(str(old))) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [target]
    with pytest.raises(GanbenchError):
        export_dataset(Exploding(n=8, resolution=8), tmp_path / ("new" + target))
    assert sorted(p.name for p in tmp_path.iterdir()) == [target]


def test_exported_files_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        export_dataset(ShapesDataset(n=1, resolution=8), tmp_path / "a.zip")
        export_dataset(ShapesDataset(n=1, resolution=8), tmp_path / "d")
    finally:
        os.umask(old)
    assert (tmp_path / "a.zip").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755


@pytest.mark.parametrize("workers", [0, 2])
def test_loaders_over_zip_and_npz_yield_uint8_nchw(tmp_path, workers):
    shapes = ShapesDataset(n=6, resolution=8)
    export_dataset(shapes, tmp_path / "s.zip")
    reference = torch.from_numpy(np.stack([shapes.image(i) for i in range(6)]))
    np.savez(tmp_path / "s.npz", images=reference.numpy(), labels=np.arange(6) % 4)
    for spec in ("s.zip", "s.npz"):
        ds = open_dataset(str(tmp_path / spec))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. torch's warning about non-writable numpy arrays
            batches = list(ds.loader(batch_size=4, num_workers=workers))
        images = torch.cat([x for x, _ in batches])
        assert images.dtype == torch.uint8 and torch.equal(images, reference)
        assert batches[0][1].shape == (4, 4) and batches[0][1].dtype == torch.float32


# -- issue 15 item 17: hostile dataset files --------------------------------------------------------

def _npy_bytes(header_shape: tuple[int, ...], dtype: str, payload: bytes) -> bytes:
    """A .npy file whose header claims `header_shape` but which holds only `payload`."""
    import io as _io

    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.dtype(dtype).str, "fortran_order": False,
                                               "shape": header_shape})
    return buf.getvalue() + payload


def _lying_npz(path: Path, members: dict[str, bytes], compressed: bool = False) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as zf:
        for name, raw in members.items():
            zf.writestr(name + ".npy", raw)


def _peak_bytes(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
    except GanbenchError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_issue15_17_npz_huge_class_label_is_an_error_before_allocating(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros([2, 8, 8, 3], np.uint8), labels=np.array([0, 2 ** 31]))
    with pytest.raises(DataError, match=r"labels.*2147483648") as info:
        open_dataset(str(tmp_path / "d.npz"))
    assert "\n" not in str(info.value)
    assert _peak_bytes(lambda: open_dataset(str(tmp_path / "d.npz"))) < 64 << 20


@pytest.mark.parametrize("compressed", [False, True])
def test_issue15_17_npz_header_that_lies_about_its_shape(tmp_path, compressed):
    real = np.zeros([2, 8, 8, 3], np.uint8).tobytes()
    _lying_npz(tmp_path / "d.npz", {"images": _npy_bytes((100000, 8, 8, 3), "|u1", real)}, compressed)
    with pytest.raises(DataError, match=r"images.*(header|holds)"):
        open_dataset(str(tmp_path / "d.npz"))
    good = np.zeros([2, 8, 8, 3], np.uint8)
    labels = _npy_bytes((10 ** 12,), "<f4", np.zeros(2, np.float32).tobytes())
    _lying_npz(tmp_path / "l.npz", {"images": _npy_bytes((2, 8, 8, 3), "|u1", good.tobytes()), "labels": labels},
               compressed)
    with pytest.raises(DataError, match=r"labels"):
        open_dataset(str(tmp_path / "l.npz"))
    assert _peak_bytes(lambda: open_dataset(str(tmp_path / "l.npz"))) < 64 << 20
    (tmp_path / "d.npy").write_bytes(_npy_bytes((1000, 8, 8, 3), "|u1", real))
    with pytest.raises(DataError, match=r"d\.npy"):
        open_dataset(str(tmp_path / "d.npy"))


@pytest.mark.parametrize("labels,match", [
    (np.array([0.5, np.nan]).reshape(2, 1), "not finite"),
    (np.array([[0.5, 1.0], [np.inf, 0.0]]), "not finite"),
])
def test_issue15_17_npz_nan_labels_are_rejected(tmp_path, labels, match):
    np.savez(tmp_path / "d.npz", images=np.zeros([2, 8, 8, 3], np.uint8), labels=labels)
    with pytest.raises(DataError, match=match):
        open_dataset(str(tmp_path / "d.npz"))


@pytest.mark.parametrize("text,match", [
    ('{"labels": [["img000.png", 0], ["img001.png", 2147483648]]}', "2147483648"),
    ('{"labels": [["img000.png", 0], ["img001.png", 1000000000000000000000000000000]]}', "class"),
    ('{"labels": [["img000.png", 0], ["img001.png", 1]], "label_dim": 1000000000000}', "label_dim"),
    ('{"labels": [["img000.png", [0.5]], ["img001.png", [NaN]]]}', "not finite"),
    ('{"labels": [["img000.png", [0.5]], ["img001.png", [1e999]]]}', "not finite"),
    ('{"labels": ' + "[" * 100000 + "]" * 100000 + "}", "nest"),
    ('{"labels": [["img000.png", ' + "[" * 900 + "]" * 900 + '], ["img001.png", 0]]}', "labels"),
])
def test_issue15_17_hostile_dataset_json_is_a_clear_error(tmp_path, text, match):
    write_folder(tmp_path, rgb_images(2))
    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(DataError, match=match) as info:
        open_dataset(str(tmp_path))
    assert "dataset.json" in str(info.value) and "\n" not in str(info.value)
    assert _peak_bytes(lambda: open_dataset(str(tmp_path))) < 64 << 20


# -- issue 11: NVlabs dataset_tool geometry (--crop, --resize), --mirror, --skip-unknown -------------

def _pair_constant(h: int, w: int, seed: int = 0) -> np.ndarray:
    """uint8 HWC RGB whose columns come in equal pairs, so a 2:1 box downscale of them is exact."""
    half = np.random.default_rng(seed).integers(0, 256, [h, w // 2, 3], dtype=np.uint8)
    return half.repeat(2, axis=1)


def test_center_wide_crop_matches_a_hand_computed_case(tmp_path):
    # NVlabs center-crop-wide at --resolution=8x6 on a 16x12 source: ch = round(8 * 12 / 16) = 6 source rows
    # from (12 - 6) // 2 = 3 to 9, resized to 8x6 (columns halve, rows stay), pasted into rows 1..6 of black 8x8.
    src = _pair_constant(12, 16)
    write_folder(tmp_path / "wide", [src])
    ds = open_dataset(str(tmp_path / "wide"), resolution=8, crop="center-wide:6", resize="box")
    expected = np.zeros([8, 8, 3], np.uint8)
    expected[1:7] = src[3:9, ::2]
    assert np.array_equal(ds.image(0), chw(expected))
    # default band 3/4 of the resolution and the Lanczos filter: PIL's resize of the same strip
    lanczos = open_dataset(str(tmp_path / "wide"), resolution=8, crop="center-wide").image(0)
    strip = np.asarray(Image.fromarray(src[3:9]).resize((8, 6), Image.Resampling.LANCZOS))
    assert np.array_equal(lanczos[:, 1:7], chw(strip)) and not lanczos[:, [0, 7]].any()
    # a 16x8 source gives ch = 4 < 6 rows: NVlabs drops it; reading it here says so, naming the file
    write_folder(tmp_path / "flat", [_pair_constant(8, 16)])
    with pytest.raises(DataError, match=r"img000\.png is 16x8: too small for --crop center-wide:6"):
        open_dataset(str(tmp_path / "flat"), resolution=8, crop="center-wide:6").image(0)


def test_center_and_none_crops_match_hand_computed_cases(tmp_path):
    src = _pair_constant(8, 11)                 # odd margin: columns (11 - 8) // 2 = 1 to (11 + 8) // 2 = 9
    write_folder(tmp_path / "c", [src])
    assert np.array_equal(open_dataset(str(tmp_path / "c"), resolution=8).image(0), chw(src[:, 1:9]))
    src = _pair_constant(8, 16)                 # none: the whole 16x8 image squashed to 8x8
    write_folder(tmp_path / "n", [src])
    assert np.array_equal(open_dataset(str(tmp_path / "n"), resolution=8, crop="none", resize="box").image(0),
                          chw(src[:, ::2]))
    ids = {open_dataset(str(tmp_path / "n"), resolution=8, **kw).identity
           for kw in ({}, {"crop": "none"}, {"resize": "box"}, {"crop": "center", "resize": "lanczos"})}
    assert len(ids) == 3                        # geometry is part of the identity; the default spelled out is not new


def test_crop_and_resize_work_on_npz_and_reject_bad_values(tmp_path):
    src = _pair_constant(12, 16)
    np.savez(tmp_path / "d.npz", images=src[None])
    ds = open_dataset(str(tmp_path / "d.npz"), resolution=8, crop="center-wide:6", resize="box")
    assert np.array_equal(ds.image(0)[:, 1:7], chw(src[3:9, ::2]))
    for kw, match in (({"crop": "middle"}, "--crop 'middle'"), ({"resize": "cubic"}, "--resize 'cubic'"),
                      ({"crop": "center-wide:99"}, "band height"), ({"crop": "none:4"}, "only center-wide"),
                      ({"crop": 5}, "--crop 5")):
        with pytest.raises(ConfigError, match=match):
            open_dataset(str(tmp_path / "d.npz"), resolution=8, **kw)
    with pytest.raises(ConfigError, match="need a --resolution"):
        open_dataset(str(tmp_path / "d.npz"), crop="none")
    with pytest.raises(ConfigError, match="crop do not apply to the shapes"):
        open_dataset("shapes:4", resolution=8, crop="none")


def test_mirror_doubles_the_dataset_with_flipped_copies(tmp_path):
    shapes = ShapesDataset(n=3, resolution=8)
    ds = open_dataset("shapes:3", resolution=8, mirror=True)
    assert len(ds) == 6 and ds.identity == shapes.identity + "-xflip" and ds.label_dim == 4
    for i in range(3):
        assert np.array_equal(ds.image(i), shapes.image(i))
        assert np.array_equal(ds.image(3 + i), shapes.image(i)[:, :, ::-1])
        assert np.array_equal(ds.label(3 + i), shapes.label(i))
    assert ds.annotations(0) == asdict(shapes.attributes(0)) and ds.annotations(3) is None
    with pytest.raises(IndexError):
        ds.image(6)


def test_skip_unknown_is_accepted_by_every_source(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros([2, 8, 8, 3], np.uint8))
    assert len(open_dataset(str(tmp_path / "d.npz"), skip_unknown=True)) == 2
    assert len(open_dataset("shapes:2", skip_unknown=True)) == 2
    write_folder(tmp_path / "f", rgb_images(2))
    (tmp_path / "f" / "LICENSE.txt").write_text("CC-BY")
    with pytest.warns(UserWarning, match=r"skipping 1 non-image file\(s\): .*LICENSE\.txt"):
        ds = open_dataset(str(tmp_path / "f"), skip_unknown=True)
    assert len(ds) == 2 and ds.skipped == ["LICENSE.txt"]


def test_items_hand_torch_writable_arrays(tmp_path, monkeypatch):
    """A grayscale folder printed torch's 'The given NumPy array is not writable' warning into every eval that
    read it (the decoded image was a read-only view)."""
    from PIL import Image

    import ganbench.data.base as base

    folder = tmp_path / "gray"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full([8, 8], 40 * i, np.uint8), "L").save(folder / f"{i}.png")
    ds = open_dataset(str(folder), resolution=8)
    seen = []
    real = torch.from_numpy
    monkeypatch.setattr(base.torch, "from_numpy", lambda a: (seen.append(a.flags.writeable), real(a))[1])
    image, _ = ds[1]
    assert seen and all(seen) and image.shape == (1, 8, 8) and int(image[0, 0, 0]) == 40
