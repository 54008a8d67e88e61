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
    assert "warning: skipping 1 file(s): mixed/notes.txt is not an image" in result.output


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
