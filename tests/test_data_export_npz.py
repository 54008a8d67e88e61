"""Export / convert to a `.npz` file (the format ganbench reads), refused output suffixes, and --verify on npz CRCs."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.data import ShapesDataset, open_dataset
from ganbench.data.base import ImageDataset
from ganbench.data.export import export_dataset
from ganbench.errors import DataError

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANBENCH_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)


def assert_same(got, want) -> None:
    """Same count, size, channels, label space, pixels and labels."""
    assert (len(got), got.resolution, got.num_channels, got.label_dim) == \
           (len(want), want.resolution, want.num_channels, want.label_dim)
    for i in range(len(want)):
        assert np.array_equal(got.image(i), want.image(i)), i
        assert got.label(i).dtype == np.float32 and np.array_equal(got.label(i), want.label(i)), i


def one_error_line(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output, (word, result.output)


# -- export / convert to .npz -------------------------------------------------------------------

def test_cli_export_shapes_to_npz_writes_the_array_format_and_reads_back_equal(tmp_path):
    result = runner.invoke(app, ["datasets", "export", "shapes:20", "out.npz", "-r", "32"])
    assert result.exit_code == 0, result.output
    assert "wrote 20 images" in result.output
    assert (tmp_path / "out.npz").is_file()
    with zipfile.ZipFile(tmp_path / "out.npz") as zf:
        assert sorted(zf.namelist()) == ["images.npy", "labels.npy"]
        assert zf.getinfo("images.npy").compress_type == zipfile.ZIP_STORED   # memory-mappable
    with np.load(tmp_path / "out.npz", allow_pickle=False) as data:
        images, labels = data["images"], data["labels"]
    assert images.dtype == np.uint8 and images.shape == (20, 32, 32, 3)
    reference = ShapesDataset(n=20, resolution=32)
    assert labels.shape == (20,) and np.issubdtype(labels.dtype, np.integer)
    assert labels.tolist() == [int(reference.label(i).argmax()) for i in range(20)]
    assert_same(open_dataset("out.npz"), reference)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["out.npz"]   # no temp files


def test_export_npz_round_trips_gray_vector_labels_unlabelled_and_wide_label_space(tmp_path):
    gray = np.random.default_rng(0).integers(0, 256, [3, 8, 8], dtype=np.uint8)
    vectors = np.array([[0.5, 0.0], [1.0, 0.0], [-2.0, 1e-7]], np.float32)
    np.savez(tmp_path / "g.npz", images=gray, labels=vectors)
    source = open_dataset("g.npz")
    assert_same(open_dataset(str(export_dataset(source, tmp_path / "g2.npz"))), source)
    with np.load(tmp_path / "g2.npz") as data:
        assert data["images"].shape == (3, 8, 8, 1) and data["labels"].dtype == np.float32
        assert np.array_equal(data["labels"], vectors)

    np.savez(tmp_path / "u.npz", images=gray)
    source = open_dataset("u.npz")
    assert_same(open_dataset(str(export_dataset(source, tmp_path / "u2.npz"))), source)
    with zipfile.ZipFile(tmp_path / "u2.npz") as zf:
        assert zf.namelist() == ["images.npy"]

    # classes 0 and 1 of a declared 5-class space: int classes would come back as 2 classes, so vectors
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full([8, 8, 3], 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "dataset.json").write_text(json.dumps({"labels": [["0.png", 0], ["1.png", 1]], "label_dim": 5}))
    source = open_dataset("f")
    assert source.label_dim == 5
    assert_same(open_dataset(str(export_dataset(source, tmp_path / "f.npz"))), source)


def test_cli_convert_to_npz_with_dropped_images_matches_the_zip_output(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    for name, (h, w) in {"a.png": (12, 16), "c.png": (8, 16), "d.png": (24, 32)}.items():
        Image.fromarray(rng.integers(0, 256, [h, w, 3], dtype=np.uint8)).save(src / name)
    (src / "dataset.json").write_text(json.dumps({"labels": [["a.png", 2], ["c.png", 1], ["d.png", 0]]}))
    args = ["--resolution", "8", "--crop", "center-wide:6", "--resize", "box"]
    for dest in ("out.zip", "out.npz"):
        result = runner.invoke(app, ["datasets", "convert", "src", dest, *args])
        assert result.exit_code == 0, result.output
        assert "wrote 2 images" in result.output and "dropped 1 image(s)" in result.output
    assert (tmp_path / "out.npz").is_file()
    zipped, arrays = open_dataset("out.zip"), open_dataset("out.npz")
    assert len(arrays) == 2 and arrays.label_dim == 3
    assert_same(arrays, zipped)
    result = runner.invoke(app, ["datasets", "convert", "out.npz", "again.npz"])
    assert result.exit_code == 0, result.output
    assert_same(open_dataset("again.npz"), arrays)


def test_npz_output_respects_overwrite_and_a_failed_export_keeps_the_old_file(tmp_path):
    assert runner.invoke(app, ["datasets", "export", "shapes:3", "o.npz", "-r", "8"]).exit_code == 0
    before = (tmp_path / "o.npz").read_bytes()
    result = runner.invoke(app, ["datasets", "export", "shapes:2", "o.npz", "-r", "8"])
    one_error_line(result, "o.npz", "already exists")
    assert (tmp_path / "o.npz").read_bytes() == before

    class Exploding(ShapesDataset):
        def image(self, index: int) -> np.ndarray:
            if index == 2:
                raise DataError("image 2 is broken")
            return super().image(index)

    with pytest.raises(DataError, match="broken"):
        export_dataset(Exploding(n=4, resolution=8), tmp_path / "o.npz", overwrite=True)
    assert (tmp_path / "o.npz").read_bytes() == before
    assert runner.invoke(app, ["datasets", "export", "shapes:2", "o.npz", "-r", "8", "--overwrite"]).exit_code == 0
    assert len(open_dataset("o.npz")) == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == ["o.npz"]


class Blank(ImageDataset):
    """Many large blank images, cheap to make: for the memory bound of an npz export."""

    name, resolution, num_channels = "blank", 256, 3

    def __init__(self, n: int) -> None:
        self.n = n

    @property
    def identity(self) -> str:
        return f"blank-{self.n}"

    def __len__(self) -> int:
        return self.n

    def image(self, index: int) -> np.ndarray:
        return np.full([3, 256, 256], index % 256, np.uint8)


@pytest.mark.parametrize("drop", [False, True])
def test_npz_export_memory_stays_bounded(tmp_path, drop):
    import tracemalloc

    dataset = Blank(160)   # 31 MB of pixels
    tracemalloc.start()
    try:
        export_dataset(dataset, tmp_path / "b.npz", on_drop=(lambda message: None) if drop else None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    back = open_dataset(str(tmp_path / "b.npz"))
    assert len(back) == 160 and int(back.image(159)[0, 0, 0]) == 159


@pytest.mark.parametrize("name", ["out.npy", "out.tar", "out.tar.gz", "out.png", "out.JPG", "out.pkl", "out.pt"])
def test_unwritable_file_suffixes_are_one_line_before_any_work(tmp_path, name):
    for command in (["datasets", "export", "shapes:3", name, "-r", "8"], ["datasets", "convert", "shapes:3", name],
                    ["datasets", "export", "missing-dir", name]):   # the output is judged before the source is read
        one_error_line(runner.invoke(app, command), name)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "cache") == []
    with pytest.raises(DataError, match=name.replace(".", r"\.")):
        export_dataset(ShapesDataset(n=2, resolution=8), tmp_path / name)
    assert not list(tmp_path.iterdir()) or [p.name for p in tmp_path.iterdir()] == ["cache"]


def test_folder_names_with_dots_and_help_texts_still_work(tmp_path):
    assert runner.invoke(app, ["datasets", "export", "shapes:2", "set.v1", "-r", "8"]).exit_code == 0
    assert (tmp_path / "set.v1").is_dir() and len(open_dataset("set.v1")) == 2
    for command in ("export", "convert"):
        text = " ".join(runner.invoke(app, ["datasets", command, "--help"]).output.split())
        assert ".npz" in text and "attributes" in text


# -- --verify on an uncompressed (memory-mapped) npz ----------------------------------------------

def _flip_middle_of_images(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("images.npy")
    raw = bytearray(path.read_bytes())
    name_len, extra_len = np.frombuffer(bytes(raw[info.header_offset + 26:info.header_offset + 30]), "<u2")
    start = info.header_offset + 30 + int(name_len) + int(extra_len)
    middle = start + info.file_size // 2
    for k in range(middle, middle + 7):
        raw[k] ^= 0xA5
    path.write_bytes(bytes(raw))


def test_verify_finds_flipped_bytes_inside_an_uncompressed_npz(tmp_path):
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, [20, 16, 16, 3], dtype=np.uint8),
             labels=np.arange(20) % 3)
    result = runner.invoke(app, ["datasets", "info", "d.npz", "--verify"])
    assert result.exit_code == 0, result.output
    open_dataset("d.npz").verify()

    _flip_middle_of_images(tmp_path / "d.npz")
    assert len(open_dataset("d.npz")) == 20           # opening stays cheap (header only): no full read
    one_error_line(runner.invoke(app, ["datasets", "info", "d.npz", "--verify"]), "d.npz", "images")
    with pytest.raises(DataError, match=r"d\.npz"):
        open_dataset("d.npz", n=2).verify()            # the whole member is checked, also for the first N
