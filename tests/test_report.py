"""Leaderboard: fixed column order, best snapshot per run (never mixed), per-run sections, escaping, CSV."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.report import build_leaderboard, leaderboard, render_html, write_report
from ganbench.results import write_results

EVIL = "<script>document.title='pwned'</script>"
KIMGS = (10, 20, 30)
GROUP = {"fid": "fid", "kid_mean": "kid", "kid_std": "kid", "is_mean": "is", "is_std": "is", "precision": "pr",
         "recall": "pr", "eqt50k_int": "eqt50k_int", "swd_avg": "swd", "ppl_wend": "ppl_wend"}
# Run a: FID best at 20 kimg, IS best at 30 (the row must still show IS at 20); run b: FID best at 30.
CURVES = {
    "a": {"fid": [30, 10, 12], "kid_mean": [0.03, 0.01, 0.012], "kid_std": [0.001] * 3, "is_mean": [2.0, 2.5, 2.9],
          "is_std": [0.1] * 3, "precision": [0.5, 0.7, 0.72], "recall": [0.3, 0.5, 0.45], "eqt50k_int": [20, 30, 31],
          "swd_avg": [9, 5, 6], "ppl_wend": [300, 200, 210]},
    "b": {"fid": [25, 20, 15], "kid_mean": [0.025, 0.02, 0.015], "kid_std": [0.001] * 3, "is_mean": [1.0, 3.0, 2.0],
          "is_std": [0.1] * 3, "precision": [0.4, 0.6, 0.65], "recall": [0.2, 0.4, 0.42], "eqt50k_int": [19, 25, 27],
          "swd_avg": [8, 6, 4], "ppl_wend": [250, 240, 230]},
}


def results(runs=("a", "b"), seeds=(0, 1), **settings) -> pd.DataFrame:
    """Long-format rows of CURVES at 10/20/30 kimg, one per eval seed (values scaled by 0.99 / 1.01)."""
    rows = []
    for run, src in zip(runs, ("a", "b")):
        for metric, vals in CURVES[src].items():
            for kimg, v in zip(KIMGS, vals):
                for seed in seeds:
                    jitter = 1.0 + (0.01 if seed % 2 else -0.01) if len(seeds) > 1 else 1.0
                    rows.append({"run": run, "checkpoint": f"network-snapshot-{kimg:06d}.pt", "kimg": kimg,
                                 "metric": metric, "value": v * jitter, "metric_group": GROUP[metric],
                                 "n_samples": 10000, "n_real": 70000, "extractor": "inception",
                                 "extractor_sha256": "ab" * 32, "resize_mode": "pil-bicubic", "dataset": "ffhq-256",
                                 "seed": seed, "params": "{}", **settings})
    return pd.DataFrame(rows)


def test_leaderboard_columns_in_a_fixed_meaningful_order_with_n_and_extractor():
    """Issue 11: FID first, then KID, IS, precision, recall, then the rest; headers say n and extractor."""
    board = build_leaderboard(results())
    labels = [c.label for c in board.columns]
    assert labels[:5] == ["FID (n=10k, inception)", "KID (n=10k, inception)", "IS (n=10k, inception)",
                          "Precision (n=10k, inception)", "Recall (n=10k, inception)"]
    assert set(labels[5:8]) == {"swd_avg (n=10k, inception)", "ppl_wend (n=10k, inception)",
                                "eqt50k_int (n=10k, inception)"}
    assert board.primary is board.columns[0]
    assert [c.direction for c in board.columns[:5]] == ["lower", "lower", "higher", "higher", "higher"]
    assert labels[-2:] == ["kid_std (n=10k, inception)", "is_std (n=10k, inception)"]   # informational last


def test_rows_ranked_by_primary_metric_with_all_metrics_of_the_best_snapshot():
    """Issue 11: each run shows its best snapshot by FID and every metric of that snapshot (never mixed)."""
    board = leaderboard(results())
    assert list(board["run"]) == ["a", "b"] and list(board["rank"]) == [1, 2]
    a = board.set_index("run").loc["a"]
    assert a["kimg"] == 20 and a["checkpoint"] == "network-snapshot-000020.pt"
    assert a["FID (n=10k, inception)"] == pytest.approx(10.0, rel=1e-12)
    assert a["IS (n=10k, inception)"] == pytest.approx(2.5, rel=1e-12)          # not the 2.9 reached at 30 kimg
    assert a["Recall (n=10k, inception)"] == pytest.approx(0.5, rel=1e-12)
    assert a["FID (n=10k, inception) std"] == pytest.approx(np.std([9.9, 10.1], ddof=1), rel=1e-9)
    b = board.set_index("run").loc["b"]
    assert b["kimg"] == 30 and b["IS (n=10k, inception)"] == pytest.approx(2.0, rel=1e-12)
    flipped = results()
    flipped.loc[(flipped["run"] == "b") & (flipped["metric"] == "fid"), "value"] -= 10.0
    assert list(leaderboard(flipped)["run"]) == ["b", "a"]


def test_mean_and_std_share_one_cell_when_there_are_seeds():
    page = render_html(results())
    assert "10 \u00b1 0.14" in page and "2.5 \u00b1 0.035" in page
    single = render_html(results(seeds=(0,)))
    assert "\u00b1" not in single.split("<tbody>")[1].split("</tbody>")[0]


def test_report_never_averages_rows_made_with_different_settings():
    """Issue 15.1: n=10000 vs n=32 and another FID covariance are separate columns, not one mean."""
    df = results()
    df.loc[df["metric"] == "fid", "params"] = '{"covariance":"biased"}'
    fid = df[df["metric"] == "fid"]
    other_n = fid.assign(n_samples=32, value=fid["value"] + 100.0)
    unbiased = fid.assign(params='{"covariance":"unbiased"}', value=fid["value"] + 1.0)
    board = build_leaderboard(pd.concat([df, other_n, unbiased]))
    labels = [c.label for c in board.columns]
    assert "FID (n=32, inception)" in labels
    assert "FID (n=10k, inception, covariance=unbiased)" in labels
    frame = board.frame().set_index("run")
    assert frame.loc["a", "FID (n=32, inception)"] == pytest.approx(110.0, rel=1e-12)
    assert frame.loc["a", "FID (n=10k, inception, covariance=unbiased)"] == pytest.approx(11.0, rel=1e-12)
    assert frame.loc["a", "FID (n=10k, inception, covariance=biased)"] == pytest.approx(10.0, rel=1e-12)
    assert board.primary.label == "FID (n=10k, inception, covariance=biased)"


def _png(color, size=(24, 16)) -> Image.Image:
    return Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8))


def _make_run_dir(tmp_path, name="a"):
    from ganbench.checkpoint import save_checkpoint

    run = tmp_path / name
    run.mkdir()
    _png((10, 200, 10)).save(run / "reals.png")
    for kimg, color in zip(KIMGS, ((200, 0, 0), (0, 0, 200), (200, 200, 0))):
        _png(color).save(run / f"fakes{kimg:06d}.png")
    save_checkpoint(run / "network-snapshot-000020.pt", {"G_ema": {}, "cur_nimg": 20000},
                    {"arch": "stylegan2", "config": {"name": "stylegan2", "resolution": 16, "z_dim": 8, "note": EVIL},
                     "resolution": 16, "kimg": 20.0,
                     "train": {"batch": 32, "data": "shapes"}})
    lines = [{"tick": i, "kimg": i * 5.0, "loss/G": 2.0 - 0.05 * i, "loss/D": 1.0 + 0.01 * i, EVIL: 1.0}
             for i in range(7)]
    (run / "stats.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    return run


def _images(section: str) -> dict[str, Image.Image]:
    out = {}
    for alt, data in re.findall(r'<img class="grid" alt="([^"]*)" src="data:image/png;base64,([^"]+)"', section):
        out[alt] = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
    return out


def test_per_run_section_has_snapshots_plots_losses_config_and_real_vs_generated_at_the_best_snapshot(tmp_path):
    """Issue 11: every snapshot, metric-vs-kimg plots, loss curves, config, reals beside the best snapshot's fakes."""
    run = _make_run_dir(tmp_path)
    page = render_html(results(), run_dirs={"a": run})
    sections = re.findall(r'<details class="run"[^>]*>.*?</details>', page, flags=re.S)
    assert len(sections) == 2
    a = next(s for s in sections if "<summary>" in s and ">a<" in s)
    assert a.startswith('<details class="run" id="run-1" open')           # the top-ranked run is expanded
    snapshot_rows = re.findall(r'<tr class="snapshot[^"]*"', a)
    assert len(snapshot_rows) == 3 and a.count('<tr class="snapshot best"') == 1
    assert 'aria-label="a: metrics vs kimg"' in a and 'aria-label="a: training losses' in a
    assert a.count('<svg class="chart"') >= 8 + 1                          # a panel per plotted column + losses
    assert "z_dim" in a and "stylegan2" in a
    grids = _images(a)
    assert set(grids) == {"a: real images (reals.png)", "a: generated at 20 kimg (fakes000020.png)"}
    assert grids["a: generated at 20 kimg (fakes000020.png)"].getpixel((0, 0)) == (0, 0, 200)
    assert grids["a: real images (reals.png)"].getpixel((0, 0)) == (10, 200, 10)
    b = next(s for s in sections if s is not a)
    assert "No run folder" in b                                             # b has no folder: said, not hidden
    assert 'href="#run-1"' in page                                          # the leaderboard links to the section


def test_diverged_rows_are_shown_in_red(tmp_path):
    """Issue 15.5: flag=diverged rows are red; a run whose FID is all NaN ranks last; a run keeps its best snapshot."""
    df = results(runs=("a", "b"))
    c = results(runs=("c", "x")).query("run == 'c'")
    c.loc[(c["kimg"] == 30), ["value", "flag"]] = [float("nan"), "diverged"]
    d = results(runs=("d", "x")).query("run == 'd'").assign(value=float("nan"), flag="diverged")
    board = leaderboard(pd.concat([df, c, d]))
    assert list(board["run"]) == ["a", "c", "b", "d"]                      # c's best (20 kimg) = a's curve
    assert board.set_index("run").loc["c", "kimg"] == 20
    assert board.set_index("run").loc["d", "flag"] == "diverged"
    page = render_html(pd.concat([df, c, d]))
    body = page.split("<tbody>")[1].split("</tbody>")[0]
    rows = re.findall(r"<tr[^>]*>", body)
    assert rows[3].startswith('<tr class="diverged"') and "diverged" not in rows[0]
    assert "diverged at 30 kimg" in body
    assert re.search(r"\.diverged[^{]*\{[^}]*color: #b00020", page)


def test_every_user_string_is_escaped(tmp_path):
    df = results(runs=(EVIL, "b & <c>"))
    df.loc[df["metric"] == "fid", "extractor"] = "inception\"><img src=x onerror=alert(1)>"
    df.loc[df["metric"] == "kid_mean", "params"] = json.dumps({"evil": EVIL})
    df.loc[df["metric"] == "kid_mean", "dataset"] = EVIL
    run = _make_run_dir(tmp_path, name="b & <c>")
    files = write_report(df, tmp_path / "out", run_dirs={"b & <c>": run}, title=EVIL, sources=["<x>.csv"])
    page = files.html.read_text()
    assert "<script>document.title" not in page and "&lt;script&gt;document.title=&#x27;pwned&#x27;" in page
    assert "<img src=x" not in page and "&lt;c&gt;" in page and "<x>.csv" not in page
    assert page.count("<script>") == 1                                      # only the sorting script
    assert "http://" not in page and "https://" not in page                 # self-contained
    board = pd.read_csv(files.csv)
    assert set(board["run"]) == {EVIL, "b & <c>"}


def test_leaderboard_csv_columns_and_integers(tmp_path):
    files = write_report(results(), tmp_path / "out")
    raw = pd.read_csv(files.csv, dtype=str, keep_default_na=False)
    assert list(raw.columns[:6]) == ["rank", "run", "kimg", "checkpoint", "FID (n=10k, inception)",
                                     "FID (n=10k, inception) std"]
    assert list(raw["kimg"]) == ["20", "30"] and list(raw["rank"]) == ["1", "2"]


def test_report_cli_finds_run_folders_beside_results(tmp_path):
    (tmp_path / "runs").mkdir()
    run = _make_run_dir(tmp_path / "runs", name="a")
    df = results()
    write_results(run / "results.csv", df[df["run"] == "a"])
    write_results(tmp_path / "b.csv", df[df["run"] == "b"])
    r = CliRunner().invoke(app, ["report", str(run / "results.csv"), str(tmp_path / "b.csv"),
                                 "--out", str(tmp_path / "rep")])
    assert r.exit_code == 0, r.output
    page = (tmp_path / "rep" / "leaderboard.html").read_text()
    assert "a: generated at 20 kimg (fakes000020.png)" in page
    assert (tmp_path / "rep" / "leaderboard.csv").is_file()
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing.csv")])
    assert r.exit_code == 2 and "missing.csv" in r.output


def test_empty_nan_and_odd_names_render(tmp_path):
    df = results(runs=("a$^{$", "b"))   # `$` must not reach matplotlib's mathtext parser
    df.loc[0, "value"] = float("nan")
    assert "No results" in render_html(df.iloc[:0])
    page = render_html(df)
    assert "leaderboard" in page
    unknown = df.assign(metric="custom_score", metric_group="not-registered")   # no registry entry: still shown
    assert "custom_score (n=10k, inception)" in render_html(unknown)


def test_metric_that_does_not_apply_to_a_run_is_a_dash_not_an_empty_cell():
    """Issue 11: EQ does not apply to run b's family; its leaderboard cell shows '\u2013', as eval's table does."""
    df = results(seeds=(0,))
    page = render_html(df[~((df["run"] == "b") & (df["metric"] == "eqt50k_int"))])
    table = page.split("<table", 1)[1].split("</table>", 1)[0]
    rows = {re.search(r'<td[^>]*class="run"[^>]*>.*?(a|b)<', r, re.S).group(1): r
            for r in table.split("<tr")[1:] if 'class="run"' in r}
    cells = lambda r: re.findall(r"<td[^>]*>(.*?)</td>", r, re.S)       # noqa: E731
    assert len(cells(rows["a"])) == len(cells(rows["b"]))
    assert "\u2013" in cells(rows["b"]) and "\u2013" not in cells(rows["a"])
    assert not [c for c in cells(rows["b"]) if not c.strip()]           # no empty cell


def test_svg_chart_ticks_gaps_and_escaping():
    """The inline charts: round ticks, a NaN leaves a gap, text is escaped, nothing external is referenced."""
    from ganbench.svgplot import Series, line_chart, nice_ticks, tick_text

    assert nice_ticks(0.0, 1.0) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert nice_ticks(9.5, 31.0) == [10.0, 20.0, 30.0]
    assert [tick_text(v) for v in (0.1 + 0.2, 25000.0, 3.0)] == ["0.3", "25k", "3"]
    svg = line_chart("<t>", [Series("a&b", [1, 2, 3, 4], [1.0, float("nan"), 3.0, 4.0], err=[0.1] * 4)], marks=[2])
    assert svg.count("<polyline") == 2 and svg.count("<circle") == 3 and 'class="mark"' in svg
    assert "&lt;t&gt;" in svg and "<t>" not in svg and "http" not in svg


def test_fakes_grid_name_of_a_snapshot():
    from ganbench.report import fakes_name

    assert fakes_name("network-snapshot-000020.pt", 20.0) == "fakes000020.png"
    assert fakes_name("network-snapshot-000000.250.pt", 0.25) == "fakes000000.250.png"
    assert fakes_name("network-snapshot-000040.pkl", 40.0) == "fakes000040.png"     # NVlabs' own runs
    assert fakes_name("", 3.0) == "fakes000003.png"


def test_an_infinite_value_is_never_the_best_snapshot_nor_ranks_first():
    """An edited -inf FID (or +inf IS) won the leaderboard; a non-finite value is not a measurement: the run's best
    snapshot is its best finite one, and a run whose shown value is not finite ranks after every measured run."""
    df = results()
    df.loc[(df["run"] == "b") & (df["metric"] == "fid") & (df["kimg"] == 10), "value"] = -np.inf
    board = leaderboard(df).set_index("run")
    assert board.loc["b", "kimg"] == 30 and board.loc["a", "rank"] == 1   # b's best finite FID is 15 (a: 10)
    df.loc[(df["run"] == "b") & (df["metric"] == "fid"), "value"] = -np.inf
    assert list(leaderboard(df)["run"]) == ["a", "b"]
    html = render_html(df)
    assert html.count('class="best"') >= 1


def test_report_of_a_header_only_table_keeps_the_leaderboard(tmp_path):
    """`report header-only.csv --out rep` replaced rep's leaderboard with an empty one (exit 0): one line, exit 2,
    the leaderboard left as it was."""
    write_results(tmp_path / "r.csv", results())
    rep = tmp_path / "rep"
    assert CliRunner().invoke(app, ["report", str(tmp_path / "r.csv"), "--out", str(rep)]).exit_code == 0
    before = (rep / "leaderboard.csv").read_bytes(), (rep / "leaderboard.html").read_bytes()
    (tmp_path / "hdr.csv").write_text("run,kimg,metric,value\n")
    r = CliRunner().invoke(app, ["report", str(tmp_path / "hdr.csv"), "--out", str(rep)])
    assert r.exit_code == 2 and "hdr.csv" in r.output and "no rows" in r.output, r.output
    assert ((rep / "leaderboard.csv").read_bytes(), (rep / "leaderboard.html").read_bytes()) == before


def test_a_run_not_measured_at_the_primary_settings_gets_no_rank_and_says_why(tmp_path):
    """Run c measured FID only at other settings (a 32 px model, another n) got rank 3 and its last snapshot under a
    header saying 'best by FID': it is not comparable, so it has no rank and says which snapshot is shown."""
    other = results(runs=("c",), n_samples=50)
    board = build_leaderboard(pd.concat([results(), other], ignore_index=True))
    assert [(r.run, r.ranked) for r in board.rows] == [("a", True), ("b", True), ("c", False)]
    frame = board.frame().set_index("run")
    assert pd.isna(frame.loc["c", "rank"]) and frame.loc["c", "kimg"] == 30 and frame.loc["a", "rank"] == 1
    html = render_html(pd.concat([results(), other], ignore_index=True))
    assert "not ranked: no FID" in html and ">\u2013</span> <b>c</b>" in html


def test_leaderboard_csv_says_how_many_seeds_each_value_has(tmp_path):
    """A CSV reader could not tell 2 seeds from 5, nor a single seed's empty std from a NaN."""
    frame = leaderboard(pd.concat([results(runs=("a",)), results(runs=("b",), seeds=(0,))], ignore_index=True))
    seeds = frame.set_index("run")["FID (n=10k, inception) seeds"]
    assert seeds.to_dict() == {"a": 2, "b": 1}
