"""The `ganbench` command line: help everywhere, datasets commands, one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.data import ShapesDataset, open_dataset
from ganbench.data.export import encode_png
from ganbench.errors import DataError

runner = CliRunner()
TOP_LEVEL = ("train", "eval", "report", "check", "bench", "zoo", "datasets", "assets")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANBENCH_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)


def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand of the app, as argument prefixes."""
    paths = []

    def walk(cmd, prefix):
        paths.append(prefix)
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*prefix, name))

    walk(typer.main.get_command(app), ())
    return paths


def test_top_level_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in TOP_LEVEL:
        assert name in result.output
    assert runner.invoke(app, ["--version"]).exit_code == 0


def test_python_dash_m_ganbench_is_the_cli():
    """`python -m ganbench` (what `torchrun -m ganbench eval ...` runs on every rank) is the same app."""
    import subprocess
    import sys

    from ganbench import __version__

    proc = subprocess.run([sys.executable, "-m", "ganbench", "--version"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == f"ganbench {__version__}", proc.stderr
    proc = subprocess.run([sys.executable, "-m", "ganbench", "eval", "/nonexistent/run"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "/nonexistent/run does not exist" in proc.stderr + proc.stdout


def test_every_command_answers_help():
    paths = command_paths()
    assert {p[0] for p in paths if p} >= set(TOP_LEVEL)
    assert ("datasets", "export") in paths and ("datasets", "list") in paths and ("datasets", "info") in paths
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_usage_errors_are_one_line_with_exit_code_2():
    """typer printed a 4-line box (usage, hint, framed message) for a mistyped option or a missing argument; now one
    'error:' line like every other mistake, naming the command's --help. A group without arguments shows its help."""
    for args, said in ((["eval", "x", "--bogus"], "No such option: --bogus"),
                       (["eval"], "Missing argument 'targets'"),
                       (["--bogus"], "No such option: --bogus"),
                       (["stats", "export", "x.npz"], "Missing option '--real'"),
                       (["eval", "x", "--n", "abc"], "Invalid value for '--n'"),
                       (["nosuch"], "No such command 'nosuch'")):
        result = runner.invoke(app, args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, (args, result.output)
        assert lines[0].startswith("error: ") and said in lines[0] and "--help')" in lines[0], lines[0]
    result = runner.invoke(app, ["eval", "x", "--out"])   # an error without its command's context
    assert result.exit_code == 2 and "requires an argument" in result.output and " eval --help'" in result.output
    result = runner.invoke(app, ["stats"])
    assert "stats [OPTIONS] COMMAND" in result.output and "export" in result.output


def test_datasets_list_names_embedded_sets_and_formats():
    result = runner.invoke(app, ["datasets", "list"])
    assert result.exit_code == 0, result.output
    for word in ("shapes", "folder", "zip", "npz", ".png", "dataset.json"):
        assert word in result.output


def test_export_shapes_zip_round_trips_pixels_and_attributes(tmp_path):
    result = runner.invoke(app, ["datasets", "export", "shapes", "--n", "64", "x.zip"])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(tmp_path / "x.zip") as zf:
        pngs = [n for n in zf.namelist() if n.endswith(".png")]
        attributes = json.loads(zf.read("attributes.json"))
        labels = json.loads(zf.read("dataset.json"))
    assert len(pngs) == 64 and len(labels["labels"]) == 64
    reference = ShapesDataset(n=64, resolution=32, seed=0)
    back = open_dataset("x.zip")
    assert (len(back), back.resolution, back.label_dim) == (64, 32, 4)
    table = dict(attributes["attributes"])
    for i, name in enumerate(back.names):
        assert np.array_equal(back.image(i), reference.image(i))
        assert table[name] == asdict(reference.attributes(i))
        assert back.annotations(i) == table[name]
        assert np.array_equal(back.label(i), reference.label(i))


def test_export_options_and_folder_output(tmp_path):
    result = runner.invoke(app, ["datasets", "export", "shapes", "out", "--n", "5", "--resolution", "16", "--seed", "2"])
    assert result.exit_code == 0, result.output
    back = open_dataset("out")
    assert np.array_equal(back.image(4), ShapesDataset(n=5, resolution=16, seed=2).image(4))
    again = runner.invoke(app, ["datasets", "export", "shapes", "out", "--n", "5"])
    assert again.exit_code == 2 and "already exists" in again.output
    assert runner.invoke(app, ["datasets", "export", "shapes", "out", "--n", "3", "--overwrite"]).exit_code == 0
    assert len(open_dataset("out")) == 3


def test_info_prints_facts_and_json(tmp_path):
    result = runner.invoke(app, ["datasets", "info", "shapes:20", "--resolution", "16", "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts == {**facts, "images": 20, "resolution": 16, "channels": 3, "label_dim": 4,
                     "identity": "shapes-n20-r16-seed0"}
    table = runner.invoke(app, ["datasets", "info", "shapes:20"])
    assert table.exit_code == 0 and "identity" in table.output and "shapes-n20-r32-seed0" in table.output


def write_pngs(folder, n=3):
    folder.mkdir()
    shapes = ShapesDataset(n=n, resolution=8)
    for i in range(n):
        (folder / f"img{i}.png").write_bytes(encode_png(shapes.image(i)))


def test_corrupt_png_in_folder_exits_2_naming_the_file(tmp_path):
    write_pngs(tmp_path / "data")
    raw = (tmp_path / "data" / "img2.png").read_bytes()
    (tmp_path / "data" / "img2.png").write_bytes(raw[:40])
    for command in (["datasets", "info", "data", "--verify"], ["datasets", "export", "data", "o.zip"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "img2.png" in errors[0] and "Traceback" not in result.output
    assert not (tmp_path / "o.zip").exists()
    (tmp_path / "data" / "img0.png").write_bytes(b"garbage")  # the first image is checked at open time
    result = runner.invoke(app, ["datasets", "info", "data"])
    assert result.exit_code == 2 and "img0.png" in result.output


@pytest.mark.parametrize("args,words", [
    (["datasets", "info", "empty"], ["empty", "holds no images"]),
    (["datasets", "info", "shapes", "--resolution", "48"], ["power of two", "48"]),
    (["datasets", "info", "mixed"], ["notes.txt", "not an image"]),
    (["datasets", "info", "missing-dir"], ["missing-dir", "not found"]),
    (["datasets", "info", "mixed", "--seed", "1", "--skip-unknown"], ["seed"]),
])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, args, words):
    (tmp_path / "empty").mkdir()
    write_pngs(tmp_path / "mixed", n=1)
    (tmp_path / "mixed" / "notes.txt").write_text("x")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1
    for word in words:
        assert word in result.output


def test_mixed_channels_exit_2(tmp_path):
    write_pngs(tmp_path / "data", n=2)
    from PIL import Image
    Image.fromarray(np.zeros([8, 8], np.uint8)).save(tmp_path / "data" / "img1.png")
    result = runner.invoke(app, ["datasets", "export", "data", "o.zip"])
    assert result.exit_code == 2 and "img1.png" in result.output and "channel" in result.output
    assert runner.invoke(app, ["datasets", "export", "data", "o.zip", "--channels", "3"]).exit_code == 0


def test_skip_unknown_flag_warns_and_continues(tmp_path):
    write_pngs(tmp_path / "mixed", n=2)
    (tmp_path / "mixed" / "notes.txt").write_text("x")
    result = runner.invoke(app, ["datasets", "info", "mixed", "--skip-unknown", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["images"] == 2
    assert "warning: skipping 1 non-image file(s): mixed/notes.txt is not an image" in result.output


def test_debug_shows_the_exception_and_does_not_leak(tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(app, ["--debug", "datasets", "info", "empty"])
    assert isinstance(result.exception, DataError) and result.exit_code != 2
    assert "GANBENCH_DEBUG" not in os.environ
    assert runner.invoke(app, ["datasets", "info", "empty"]).exit_code == 2


def test_error_messages_are_not_parsed_as_markup(tmp_path):
    (tmp_path / "[bold]x").mkdir()
    result = runner.invoke(app, ["datasets", "info", "[bold]x"])
    assert result.exit_code == 2 and "[bold]x" in result.output


def test_handle_errors_collapses_messages_and_maps_interrupts():
    from ganbench.cli.common import handle_errors

    demo = typer.Typer()

    @demo.command()
    @handle_errors
    def run(kind: str) -> None:
        if kind == "data":
            raise DataError("first line\n  second line")
        if kind == "interrupt":
            raise KeyboardInterrupt
        raise RuntimeError("a bug keeps its traceback")

    result = runner.invoke(demo, ["data"])
    assert result.exit_code == 2 and result.output == "error: first line second line\n"
    result = runner.invoke(demo, ["interrupt"])
    assert result.exit_code == 130 and "interrupted" in result.output
    result = runner.invoke(demo, ["bug"])
    assert isinstance(result.exception, RuntimeError)


# -- issue 11: the dataset tool people expect --------------------------------------------------------

def _nvlabs_read(zip_path):
    """Read a dataset zip the way NVlabs' ImageFolderDataset does: image names sorted, labels from dataset.json."""
    from PIL import Image as PILImage

    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(n for n in zf.namelist() if os.path.splitext(n)[1].lower() in (".png", ".jpg", ".jpeg"))
        images = [np.array(PILImage.open(zf.open(n))) for n in names]
        labels = json.loads(zf.read("dataset.json"))["labels"]
    if labels is not None:
        table = dict(labels)
        labels = np.array([table[n] for n in names])
        labels = labels.astype({1: np.int64, 2: np.float32}[labels.ndim])
    return names, images, labels


def test_convert_writes_an_nvlabs_zip_that_loads_back_equal(tmp_path):
    from PIL import Image as PILImage

    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    sources = {}
    for name, (h, w) in {"a.png": (12, 16), "b.png": (12, 16), "c.png": (8, 16), "d.png": (24, 32)}.items():
        # columns in equal groups of w / 8, so the box filter's horizontal averages are exact
        sources[name] = rng.integers(0, 256, [h, 8, 3], dtype=np.uint8).repeat(w // 8, axis=1)
        PILImage.fromarray(sources[name]).save(src / name)
    (src / "dataset.json").write_text(json.dumps({"labels": [["a.png", 2], ["b.png", 0], ["c.png", 1], ["d.png", 2]]}))
    (src / "LICENSE.txt").write_text("CC-BY")

    result = runner.invoke(app, ["datasets", "convert", "src", "out.zip", "--resolution", "8", "--crop",
                                 "center-wide:6", "--resize", "box"])
    assert result.exit_code == 2 and "--skip-unknown" in result.output       # the stray file is named first
    result = runner.invoke(app, ["datasets", "convert", "src", "out.zip", "--resolution", "8", "--crop",
                                 "center-wide:6", "--resize", "box", "--skip-unknown"])
    assert result.exit_code == 0, result.output
    assert "skipping 1 non-image file(s): src/LICENSE.txt" in result.output
    assert "wrote 3 images (8x8, 3 channel(s), label_dim 3)" in result.output and "━" not in result.output
    assert "dropped 1 image(s)" in result.output and "c.png is 16x8" in result.output

    names, images, labels = _nvlabs_read(tmp_path / "out.zip")
    # NVlabs' names: 00000/img<source index>.png (c.png, source index 2, was dropped), then dataset.json
    assert names == ["00000/img00000000.png", "00000/img00000001.png", "00000/img00000003.png"]
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        assert sorted(zf.namelist()) == [*names, "dataset.json"]
        assert all(zf.getinfo(n).compress_type == zipfile.ZIP_STORED for n in names)
        assert json.loads(zf.read("dataset.json"))["labels"] == [[names[0], 2], [names[1], 0], [names[2], 2]]
    assert labels.tolist() == [2, 0, 2] and labels.dtype == np.int64
    for got, source in zip(images, ("a.png", "b.png", "d.png")):   # hand-computed center-crop-wide, box filter
        s = sources[source]
        h, w = s.shape[:2]
        rows = round(8 * h / w)                                        # 6 for the 4:3 sources
        strip = s[(h - rows) // 2:(h + rows) // 2]
        expected = np.zeros([8, 8, 3], np.uint8)
        expected[1:7] = strip[:, ::w // 8]      # (NVlabs squashes d.png's 6 middle rows of 24: kept as is)
        assert np.array_equal(got, expected), source
    back = open_dataset("out.zip")
    assert (len(back), back.resolution, back.label_dim) == (3, 8, 3)
    for i in range(3):
        assert np.array_equal(back.image(i), images[i].transpose(2, 0, 1))
        assert int(back.label(i).argmax()) == labels[i]


def test_convert_keeps_vector_labels_and_unlabelled_sets(tmp_path):
    vectors = np.array([[0.5, -1.0], [2.0, 0.25], [1.0, 1.0]], np.float32)
    np.savez(tmp_path / "v.npz", images=np.random.default_rng(1).integers(0, 256, [3, 8, 8, 3], dtype=np.uint8),
             labels=vectors)
    assert runner.invoke(app, ["datasets", "convert", "v.npz", "v.zip"]).exit_code == 0
    _, images, labels = _nvlabs_read(tmp_path / "v.zip")
    assert labels.dtype == np.float32 and np.array_equal(labels, vectors)
    source = open_dataset("v.npz")
    assert all(np.array_equal(images[i].transpose(2, 0, 1), source.image(i)) for i in range(3))
    assert runner.invoke(app, ["datasets", "convert", "shapes:3", "s.zip", "-r", "8"]).exit_code == 0
    assert _nvlabs_read(tmp_path / "s.zip")[2].tolist() == [int(ShapesDataset(n=3, resolution=8).label(i).argmax())
                                                           for i in range(3)]
    np.savez(tmp_path / "u.npz", images=np.zeros([2, 8, 8, 3], np.uint8))
    assert runner.invoke(app, ["datasets", "convert", "u.npz", "u.zip"]).exit_code == 0
    assert _nvlabs_read(tmp_path / "u.zip")[2] is None


def test_train_has_the_dataset_flags(tmp_path, monkeypatch):
    import model_zoo
    from _toy_family import build_toy

    model_zoo.list_models()
    monkeypatch.setitem(model_zoo.MODELS._items, "toy", build_toy)
    write_pngs(tmp_path / "data", n=4)
    (tmp_path / "data" / "LICENSE.txt").write_text("CC-BY")
    args = ["train", "--model", "toy", "--data", "data", "-r", "8", "--kimg", "0.004", "--batch", "4",
            "--device", "cpu"]
    result = runner.invoke(app, [*args, "--out", "run1"])
    assert result.exit_code == 2 and "LICENSE.txt" in result.output and "--skip-unknown" in result.output
    assert not (tmp_path / "run1").exists()
    result = runner.invoke(app, [*args, "--out", "run2", "--skip-unknown", "--mirror", "--crop", "none",
                                 "--resize", "box"])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stdout.splitlines() if "LICENSE.txt" in line]
    assert len(notes) == 1 and "skipping 1 non-image file(s)" in notes[0]
    assert "(8 images, 3 ch, folder-data-n4-r8-" in result.stdout and "-xflip)" in result.stdout
