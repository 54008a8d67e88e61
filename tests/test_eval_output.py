"""Issue 11 for `ganbench eval` and the metric listings: what a person sees while and after evaluating."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.data.shapes import ShapesDataset
from ganbench.evaluate import EvalOptions, _Plan, evaluate
from ganbench.results import read_results

from orchestrator_helpers import make_run, register_inapplicable, register_toys

runner = CliRunner()


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TOY_FAIL", raising=False)
    register_toys()
    register_inapplicable()


def eval_args(run: Path, out: Path, metrics: str = "toy-stat,toy-score", *extra: str) -> list[str]:
    return ["eval", str(run), "--metrics", metrics, "--n", "20", "--real", "shapes:32", "--extractor", "toy-pixels",
            "--out", str(out), "--batch-size", "10", "--device", "cpu", *extra]


def table_rows(output: str, run: str) -> list[list[str]]:
    """The cells of the end table's rows for `run` (rich box drawing, one line per row)."""
    return [[c.strip() for c in line.strip("│ ").split("│")] for line in output.splitlines() if line.startswith(f"│ {run}")]


def test_eval_prints_one_plain_line_per_checkpoint_and_metric_with_its_values(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    out = tmp_path / "r.csv"
    result = runner.invoke(app, eval_args(run, out))
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.output            # not a terminal: no bar, no escape codes, plain lines
    lines = [line for line in result.output.splitlines() if re.match(r"runA  kimg \d", line)]
    assert len(lines) == 4
    table = read_results(out)
    for r in table.itertuples():
        line = next(line for line in lines if f"kimg {r.kimg:g}  {r.metric_group}:" in line)
        assert f"{r.metric}={r.value:.5g}" in line and "(n=20, " in line


def test_eval_ends_with_a_table_of_values_sorted_by_kimg_with_n(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(10, 2, 1))
    out = tmp_path / "r.csv"
    result = runner.invoke(app, eval_args(run, out))
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output, "runA")
    assert [r[1] for r in rows] == ["1", "2", "10"]
    assert "n=20" in result.output and "values computed" in result.output
    table = read_results(out)
    gap = table[(table["metric"] == "toy_gap") & (table["kimg"] == 2.0)]["value"].iloc[0]
    assert f"{gap:.5g}" in rows[1]


def test_metrics_that_do_not_apply_are_dashes_and_one_quiet_line(tmp_path):
    make_run(tmp_path / "runs" / "runA", kimgs=(1, 2))
    make_run(tmp_path / "runs" / "runB", kimgs=(1,), seed=1)
    result = runner.invoke(app, eval_args(tmp_path / "runs", tmp_path / "r.csv", "toy-w,toy-score"))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output.lower()
    quiet = [line for line in result.output.splitlines() if "not applicable" in line]
    assert quiet == ["not applicable (shown as –): toy-w for runA, runB"]
    for run in ("runA", "runB"):
        assert all(r[2] == "–" for r in table_rows(result.output, run))   # toy_w column, before toy_score


def test_quiet_prints_nothing_and_json_prints_one_object(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    result = runner.invoke(app, eval_args(run, tmp_path / "q.csv", "toy-stat,toy-score", "--quiet"))
    assert result.exit_code == 0 and result.output == "", result.output
    assert len(read_results(tmp_path / "q.csv")) == 3
    result = runner.invoke(app, eval_args(run, tmp_path / "j.csv", "toy-w,toy-score", "--json"))
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [r["metric"] for r in data["rows"]] == ["toy_score"] and data["skipped"] == 0
    assert data["not_applicable"][0]["metric"] == "toy-w" and data["outputs"] == [str(tmp_path / "j.csv")]
    assert "toy-score: toy_score=" in result.stderr   # the log lines stay off stdout


def test_one_progress_bar_for_the_whole_job_weighted_by_samples_with_eta(tmp_path, monkeypatch):
    from rich.console import Console
    from rich.progress import TimeRemainingColumn

    import ganbench.cli.common as common
    from ganbench.cli.eval_cmd import EvalDisplay

    terminal = Console(file=io.StringIO(), force_terminal=True, width=150, emoji=False)
    monkeypatch.setattr(common, "console", terminal)
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    opts = EvalOptions(metrics=["toy-stat", "toy-score"], real=ShapesDataset(n=24, resolution=16), n=20,
                       extractor="toy-pixels", device="cpu", batch_size=10)
    seen = []
    with EvalDisplay() as display:
        original = display.working
        monkeypatch.setattr(display, "working", lambda d, done: seen.append(done) or original(d, done))
        evaluate([run], opts, out=tmp_path / "r.csv", progress=display)
    assert display.bar is not None and len(display.bar.tasks) == 1
    task = display.bar.tasks[0]
    # 2 checkpoints x (toy-stat: its 20-sample feature pass + toy-score: its own 20 samples)
    assert task.total == pytest.approx(80) and task.completed == pytest.approx(80)
    assert seen == sorted(seen) and 0 < seen[1] < 80               # moves forward only, and inside passes
    assert any(isinstance(c, TimeRemainingColumn) for c in display.bar.columns)
    assert "runA @ 2 kimg" in terminal.file.getvalue()


def test_result_lines_print_above_the_live_bar_not_glued_to_it(tmp_path, monkeypatch):
    """On a terminal the result lines (stdout) were written by a console of their own straight after the bar's text
    (stderr) on the same screen: 'runA @ 1 kimg: toy-score ━━━ 98% 0:00:01runA  kimg 1  toy-score…'. Now each
    one goes through the bar's console, which clears the bar's line first and redraws the bar below it."""
    import re

    from rich.console import Console

    import ganbench.cli.common as common
    import ganbench.cli.eval_cmd as eval_cmd

    screen = io.StringIO()   # stdout and stderr on one terminal
    monkeypatch.setattr(common, "console", Console(file=screen, force_terminal=True, width=150, emoji=False))
    monkeypatch.setattr(common, "make_console", lambda **kw: Console(file=screen, force_terminal=True, width=150))
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    opts = EvalOptions(metrics=["toy-score"], real=ShapesDataset(n=24, resolution=16), n=20, extractor="toy-pixels",
                       device="cpu", batch_size=10)
    with eval_cmd.EvalDisplay() as display:
        evaluate([run], opts, out=tmp_path / "r.csv", progress=display)
    text = screen.getvalue()
    lines = [m.start() for m in re.finditer(r"runA  kimg \d  toy-score", text)]
    assert len(lines) == 2
    assert all(text[:start].endswith(("\r\x1b[2K", "\n")) for start in lines), [text[s - 30:s] for s in lines]


def test_work_weights_count_a_shared_feature_pass_once():
    plan = _Plan.make(EvalOptions(metrics=["fid", "kid", "is", "ppl_zend", "swd"], n=100))
    work = plan.work(["fid", "kid", "is", "ppl_zend", "swd"])
    assert work["fid"] == 100 and work["kid"] == work["is"] == pytest.approx(2)   # one shared pass
    assert work["ppl_zend"] == 300 and work["swd"] == 100                          # their own generator calls


def test_metrics_list_names_needs_defaults_reference_and_cost():
    from ganbench.metrics import list_metrics

    result = runner.invoke(app, ["metrics", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert set(rows) == set(list_metrics())
    fid = rows["fid"]
    assert fid["outputs"] == {"fid": "lower"} and fid["needs"] == ["gen_features", "real_features"]
    assert fid["defaults"]["covariance"] == "biased" and "NVlabs" in fid["reference"] and fid["cost"]
    standard = [n for n in rows if not n.startswith("toy")]
    assert all(rows[n]["reference"] and rows[n]["cost"] for n in standard if n != "ms_ssim_real")
    table = runner.invoke(app, ["metrics", "list"])
    assert table.exit_code == 0 and "ppl_wend" in table.output and "perceptual_path_length" in table.output


def test_extractors_list_names_size_outputs_and_options():
    result = runner.invoke(app, ["extractors", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["shapes-net"]["feature_dim"] == 256 and "attributes" in rows["shapes-net"]["outputs"]
    assert rows["inception"]["options"] == {"mode": "clean", "weights": None, "compile": False}
    assert runner.invoke(app, ["extractors", "list"]).exit_code == 0


def test_eval_skip_unknown_ignores_non_image_files_in_the_real_folder(tmp_path):
    from ganbench.data.export import encode_png

    real = tmp_path / "real"
    real.mkdir()
    shapes = ShapesDataset(n=12, resolution=16)
    for i in range(12):
        (real / f"{i}.png").write_bytes(encode_png(shapes.image(i)))
    (real / "LICENSE.txt").write_text("CC-BY")
    run = make_run(tmp_path / "runA", kimgs=(1,))
    args = ["eval", str(run), "-m", "toy-stat", "--n", "8", "--real", str(real), "-e", "toy-pixels",
            "--out", str(tmp_path / "r.csv"), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "LICENSE.txt" in result.output and "--skip-unknown" in result.output
    result = runner.invoke(app, args + ["--skip-unknown"])
    assert result.exit_code == 0, result.output
    assert "skipping 1 non-image file(s)" in result.output and len(read_results(tmp_path / "r.csv")) == 2


def test_timings_from_the_summary_are_one_line(tmp_path, monkeypatch):
    import ganbench.evaluate as ev

    real_evaluate = ev.evaluate

    def timed(*args, **kwargs):
        summary = real_evaluate(*args, **kwargs)
        summary.timings = {"real_images": 1.25, "generation": 3.5, "feature_extraction": 0.5}
        return summary

    monkeypatch.setattr(ev, "evaluate", timed)
    run = make_run(tmp_path / "runA", kimgs=(1,))
    result = runner.invoke(app, eval_args(run, tmp_path / "r.csv"))
    assert result.exit_code == 0, result.output
    assert "time: real images 1.2 s, generation 3.5 s, feature extraction 0.5 s" in result.output


def test_bench_lists_metrics_that_do_not_apply_in_one_line(tmp_path):
    from ganbench.bench import run_suite
    from ganbench.config import suite_from_table

    suite = suite_from_table("t", {"dataset": "shapes:24", "resolution": 16, "models": ["toy-gan"], "kimg": 0.05,
                                   "seeds": [0, 1], "metrics": ["toy-w", "toy-score"], "n": 10,
                                   "extractor": "toy-pixels"}, source=tmp_path / "b.toml")
    logs = []
    run_suite(suite, tmp_path / "out", log=logs.append, progress=lambda: __import__("ganbench.cli.eval_cmd",
                                                                                       fromlist=["x"]).progress_bar())
    quiet = [line for line in logs if "toy-w for" in line or "not computed" in line]
    assert quiet == ["not applicable (shown as –): toy-w for toy-gan-s0, toy-gan-s1"], logs
