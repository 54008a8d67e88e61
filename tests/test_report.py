"""Leaderboard: direction-aware best values, CSV/HTML files, escaping of every user string, sample grids."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.report import leaderboard, render_html, write_report
from ganbench.results import write_results

EVIL = "<script>document.title='pwned'</script>"


def results(runs=("a", "b")) -> pd.DataFrame:
    """FID falls then rises for run a (best at 20 kimg); IS peaks at 20 for b; two eval seeds."""
    curves = {"a": {"fid": [30, 10, 12], "is_mean": [2.0, 2.5, 2.4]},
              "b": {"fid": [25, 20, 15], "is_mean": [1.0, 3.0, 2.0]}}
    direction = {"fid": "lower", "is_mean": "higher"}
    rows = []
    for run, src in zip(runs, ("a", "b")):
        for metric, vals in curves[src].items():
            for kimg, v in zip((10, 20, 30), vals):
                for seed, jitter in ((0, -0.1), (1, 0.1)):
                    rows.append({"run": run, "checkpoint": f"network-snapshot-{kimg:06d}.pt", "kimg": kimg,
                                 "metric": metric, "value": v + jitter, "direction": direction[metric],
                                 "metric_group": metric.split("_")[0], "extractor": "shapes-net", "seed": seed})
    return pd.DataFrame(rows)


def test_leaderboard_is_direction_aware():
    board = leaderboard(results()).set_index(["run", "metric"])
    assert board.loc[("a", "fid"), "best"] == pytest.approx(10.0, abs=1e-12)      # mean over the two seeds
    assert board.loc[("a", "fid"), "kimg_best"] == 20
    assert board.loc[("b", "fid"), "best"] == pytest.approx(15.0, abs=1e-12)
    assert board.loc[("b", "fid"), "kimg_best"] == 30
    assert board.loc[("b", "is_mean"), "best"] == pytest.approx(3.0, abs=1e-12)   # higher is better
    assert board.loc[("b", "is_mean"), "kimg_best"] == 20
    assert board.loc[("a", "is_mean"), "last"] == pytest.approx(2.4, abs=1e-12)
    ordered = leaderboard(results())
    assert list(ordered[ordered["metric"] == "fid"]["run"]) == ["a", "b"]         # better first
    assert list(ordered[ordered["metric"] == "is_mean"]["run"]) == ["b", "a"]


def test_write_report_files_and_escaping(tmp_path):
    df = results(runs=(EVIL, "b & <c>"))
    df.loc[df["metric"] == "fid", "extractor"] = "shapes-net\"><img src=x onerror=alert(1)>"
    run_dir = tmp_path / "b & <c>"
    run_dir.mkdir()
    Image.fromarray(np.full((16, 32, 3), 200, np.uint8)).save(run_dir / "fakes000010.png")
    files = write_report(df, tmp_path / "out", run_dirs={"b & <c>": run_dir}, sources=["<x>.csv"])
    board = pd.read_csv(files.csv)
    assert set(board["run"]) == {EVIL, "b & <c>"}
    page = files.html.read_text()
    assert "<script>document.title" not in page and "&lt;script&gt;document.title=&#x27;pwned&#x27;" in page
    assert "<img src=x" not in page and "&lt;c&gt;" in page and "<x>.csv" not in page
    assert page.count("<script>") == 1                    # only the sorting script
    assert len(re.findall(r'<img class="plot"', page)) == 2   # one plot per metric key
    grids = re.findall(r'<img class="grid" alt="[^"]*" src="data:image/png;base64,([^"]+)"', page)
    assert len(grids) == 1
    with Image.open(__import__("io").BytesIO(base64.b64decode(grids[0]))) as img:
        assert img.size == (32, 16)
    assert "http://" not in page and "https://" not in page   # self-contained


def test_report_cli_finds_grids_beside_results(tmp_path):
    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    for name in ("fakes_init.png", "fakes000020.png", "fakes000004.png"):   # the newest numbered grid is shown
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(run / name)
    df = results()
    write_results(run / "results.csv", df[df["run"] == "a"])
    write_results(tmp_path / "b.csv", df[df["run"] == "b"])
    r = CliRunner().invoke(app, ["report", str(run / "results.csv"), str(tmp_path / "b.csv"),
                                 "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "rep" / "leaderboard.html").read_text()
    assert "a: fakes000020.png" in page
    assert (tmp_path / "rep" / "leaderboard.csv").is_file()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "missing.csv" in r.output


def test_empty_and_nan_values_render(tmp_path):
    df = results(runs=("a$^{$", "b"))   # `$` must not reach matplotlib's mathtext parser
    df.loc[0, "value"] = float("nan")
    assert "n/a" not in render_html(df.iloc[:0])
    page = render_html(df)
    assert "leaderboard" in page
