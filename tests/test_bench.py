"""benchmarks.toml: shipped suites validate, unknown keys are named, and a tiny suite runs end to end."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.bench import run_suite, validate_suite
from ganbench.cli import app
from ganbench.config import default_benchmarks_path, load_suite, load_suites, suite_from_table
from ganbench.errors import ConfigError
from ganbench.results import read_results

from orchestrator_helpers import register_toys

REPO = Path(__file__).resolve().parents[1]


def test_shipped_suites_load_and_name_registered_things():
    suites = load_suites(REPO / "benchmarks.toml")
    assert {"smoke", "paper"} <= set(suites)
    for suite in suites.values():
        validate_suite(suite)
    smoke = suites["smoke"]
    import model_zoo
    families = {"progan", "stylegan", "stylegan2", "stylegan2-ada", "stylegan3-t", "stylegan3-r"}
    assert {m.name for m in smoke.models} == families and families <= set(model_zoo.list_models())
    assert all(m.preset == "tiny" for m in smoke.models)
    assert (smoke.dataset, smoke.resolution, smoke.extractor) == ("shapes", 32, "shapes-net")
    from ganbench.metrics import list_metrics
    assert set(smoke.metrics) <= set(list_metrics())
    assert suites["paper"].extractor == "inception" and "fid50k_full" in suites["paper"].metrics


GOOD = {"dataset": "shapes", "resolution": 16, "models": ["stylegan2"], "metrics": ["fid"]}


@pytest.mark.parametrize("table, message", [
    ({**GOOD, "kimgs": 3}, "unknown key 'kimgs'"),
    ({**GOOD, "models": [{"name": "stylegan2", "presett": "tiny"}]}, "unknown key 'presett'"),
    ({k: v for k, v in GOOD.items() if k != "metrics"}, "missing required key 'metrics'"),
    ({**GOOD, "resolution": 24}, "power of two"),
    ({**GOOD, "n": "many"}, "'n' must be int"),
    ({**GOOD, "batch": True}, "'batch' must be int"),
    ({**GOOD, "tolerances": {"fid": "lots"}}, "tolerance for 'fid'"),
    ({**GOOD, "models": ["stylegan2", "stylegan2"]}, "models repeat"),
    ({**GOOD, "k": -1}, "k must be a finite number >= 0"),
    ({**GOOD, "tolerances": {"fid": ["+0.5", "+0.2"]}}, "absolute part twice"),
])
def test_bad_suite_tables_are_config_errors(table, message):
    with pytest.raises(ConfigError, match=message):
        suite_from_table("t", table, source=Path("b.toml"))


def test_unknown_tolerance_key_in_a_suite_lists_valid_names(tmp_path):
    """15.4: a misspelled tolerance key in benchmarks.toml fails validation before any training."""
    path = tmp_path / "b.toml"
    path.write_text('[check]\nk = 2\n[check.tolerances]\n"*" = "1%"\n\n[suites.x]\ndataset = "shapes"\n'
                    'resolution = 16\nmodels = ["stylegan2"]\nmetrics = ["fid"]\nk = 4\n'
                    '[suites.x.tolerances]\nfdi = "+1"\n')
    suite = load_suite("x", path)
    assert suite.check_settings().k == 4.0 and str(suite.check_settings().tolerances["*"]) == "1%"
    with pytest.raises(ConfigError, match=r"unknown tolerance key 'fdi' \(did you mean 'fid'\?\); valid: \*, "):
        validate_suite(suite)


def test_tolerance_with_absolute_and_relative_parts():
    """max(abs, rel x baseline): `fid=+0.5,fid=+2%` on the command line, a list in benchmarks.toml."""
    from ganbench.config import parse_tolerance
    from ganbench.regress import parse_tolerance_option

    tol = parse_tolerance_option("fid=+0.5,fid=+2%")["fid"]
    assert tol == parse_tolerance("fid", ["+0.5", "+2%"])
    assert (tol.allowed(10.0), tol.allowed(100.0)) == (0.5, 2.0)
    assert str(tol) == "+0.5 or +2%"
    with pytest.raises(ConfigError, match="opposite signs"):
        parse_tolerance("fid", ["+0.5", "-2%"])


def test_cli_option_parsers():
    from ganbench.config import parse_metric_list, parse_metric_params
    from ganbench.regress import parse_tolerance_option as parse_tolerances

    assert parse_metric_list("fid, kid,fid") == ["fid", "kid"]
    assert parse_metric_params(["ls.n_gen=2000", "fid.covariance=unbiased"]) == \
        {"ls": {"n_gen": 2000}, "fid": {"covariance": "unbiased"}}
    tol = parse_tolerances("fid=+0.5,is=-0.2,kid=5%")
    assert (tol["fid"].sign, tol["is"].allowed(1.0), tol["kid"].allowed(2.0)) == (1, 0.2, 0.1)
    for bad in (["ls=3"], ["n_gen=3"]):
        with pytest.raises(ConfigError, match="METRIC.PARAM=VALUE"):
            parse_metric_params(bad)
    with pytest.raises(ConfigError, match="no metrics"):
        parse_metric_list(" , ")


def test_file_level_errors(tmp_path):
    path = tmp_path / "b.toml"
    path.write_text("[suite.x]\ndataset = 'shapes'\n")
    with pytest.raises(ConfigError, match="unknown key 'suite'"):
        load_suites(path)
    path.write_text("[suites.x\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_suites(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_suites(tmp_path / "nope.toml")
    path.write_text(textwrap.dedent("""
        [suites.x]
        dataset = "shapes"
        resolution = 16
        models = ["nosuchgan"]
        metrics = ["fid"]
    """))
    with pytest.raises(ConfigError, match="unknown suite 'y'"):
        load_suite("y", path)
    with pytest.raises(ConfigError, match="unknown model 'nosuchgan'"):
        validate_suite(load_suite("x", path))


def test_default_suite_file_is_the_shipped_one(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert default_benchmarks_path().resolve() == (REPO / "benchmarks.toml").resolve()


TINY = """
[suites.tiny]
dataset = "shapes:96"
resolution = 16
models = [{{ name = "toy-gan", overrides = {{ z_dim = 8 }} }}]
kimg = 2
snapshot_kimg = 1
batch = 8
seeds = [0, 1]
metrics = ["fid", "toy-score"]
n = 48
extractor = "toy-pixels"
baseline = "{baseline}"

[suites.tiny.tolerances]
fid = "+5%"
"""


def test_tiny_suite_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    toml = tmp_path / "bench.toml"
    toml.write_text(TINY.format(baseline="base.csv"))
    out = tmp_path / "out"
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "baseline: created" in r.output
    runs = sorted(p.name for p in (out / "runs" / "tiny").iterdir())
    assert runs == ["toy-gan-s0", "toy-gan-s1"]
    assert (out / "runs" / "tiny" / "toy-gan-s0" / "network-snapshot-000002.pt").is_file()
    table = read_results(out / "results-tiny.csv")
    assert set(table["metric"]) == {"fid", "toy_score"} and len(table) == 2 * 3 * 2   # runs x snapshots (kimg 0, 1, 2) x keys
    assert (out / "leaderboard-tiny.html").is_file() and (out / "leaderboard-tiny.csv").is_file()
    assert (tmp_path / "base.csv").is_file()                                            # relative to the TOML

    # second run: nothing retrained or recomputed, check passes against the baseline
    mtime = (out / "runs" / "tiny" / "toy-gan-s0" / "network-snapshot-000002.pt").stat().st_mtime
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])
    assert r.exit_code == 0 and "check passed" in r.output, r.output
    assert (out / "runs" / "tiny" / "toy-gan-s0" / "network-snapshot-000002.pt").stat().st_mtime == mtime
    assert len(read_results(out / "results-tiny.csv")) == 12

    # a baseline with a much better FID makes the same results a regression: exit 1 with a table
    base = pd.read_csv(tmp_path / "base.csv", dtype=str, keep_default_na=False)
    base.loc[base["metric"] == "fid", "mean"] = [str(float(v) * 0.5) for v in base.loc[base["metric"] == "fid", "mean"]]
    base.to_csv(tmp_path / "base.csv", index=False)
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])
    assert r.exit_code == 1 and "regressed" in r.output and "check FAILED" in r.output, r.output


def test_run_suite_rejects_stray_metric_params(tmp_path):
    register_toys()
    suite = suite_from_table("t", {**GOOD, "models": ["toy-gan"], "extractor": "toy-pixels",
                                   "metric_params": {"kid": {"num_subsets": 3}}})
    with pytest.raises(ConfigError, match="metric_params for 'kid'"):
        run_suite(suite, tmp_path)


def test_cli_bench_list_and_errors():
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "--list", "--config", str(REPO / "benchmarks.toml")])
    assert r.exit_code == 0 and "smoke:" in r.output and "paper:" in r.output
    r = runner.invoke(app, ["bench"])
    assert r.exit_code == 2 and "--list" in r.output
    r = runner.invoke(app, ["bench", "nosuch", "--config", str(REPO / "benchmarks.toml")])
    assert r.exit_code == 2 and "unknown suite 'nosuch'" in r.output


def test_bench_skip_unknown_ignores_a_license_file_in_the_dataset_folder(tmp_path, monkeypatch):
    """Issue 11: --skip-unknown on every command that reads a dataset, bench included (flag or suite key)."""
    from ganbench.data import open_dataset
    from ganbench.data.export import export_dataset

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    data = tmp_path / "data"
    export_dataset(open_dataset("shapes:48", resolution=16), data)
    (data / "LICENSE.txt").write_text("CC-BY 4.0")
    toml = tmp_path / "bench.toml"
    toml.write_text(TINY.format(baseline="base.csv").replace('"shapes:96"', f'"{data.as_posix()}"')
                    .replace("seeds = [0, 1]", "seeds = [0]").replace("kimg = 2", "kimg = 1"))
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "LICENSE.txt" in r.output, r.output
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(tmp_path / "out"), "--skip-unknown"])
    assert r.exit_code == 0, r.output
    assert len(read_results(tmp_path / "out" / "results-tiny.csv")) == 4     # snapshots kimg 0 and 1 x keys
    toml.write_text(toml.read_text().replace("[suites.tiny]\n", "[suites.tiny]\nskip_unknown = true\n"))
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0 and "check passed" in r.output, r.output


def test_bench_checks_only_the_rows_of_the_suites_current_settings(tmp_path, monkeypatch):
    """results-<suite>.csv keeps rows of earlier settings. After `n` changed, bench compared those stale rows with
    the baseline and passed, while the new rows went unchecked into the leaderboard. Now only this evaluation's
    rows are reported and checked: the baseline made at the old n has no partner, so the check fails and says how
    to accept the new settings."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    toml = tmp_path / "bench.toml"
    toml.write_text(TINY.format(baseline="base.csv").replace("seeds = [0, 1]", "seeds = [0]")
                    .replace("kimg = 2", "kimg = 1"))
    out = tmp_path / "out"
    runner = CliRunner()
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])
    assert r.exit_code == 0 and "baseline: created" in r.output, r.output
    toml.write_text(toml.read_text().replace("n = 48", "n = 40"))
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])
    assert r.exit_code == 1 and "not comparable" in r.output and "check FAILED" in r.output, r.output
    assert "delete" in r.output and "base.csv" in r.output
    assert set(read_results(out / "results-tiny.csv")["n_samples"]) == {40.0, 48.0}   # both kept in the table
    board = pd.read_csv(out / "leaderboard-tiny.csv")
    assert any("n=40" in c for c in board.columns) and not any("n=48" in c for c in board.columns), board.columns


def test_bench_prints_the_evaluation_warnings(tmp_path, monkeypatch):
    """A suite measuring a 50k preset with its small n (the smoke suite's eqt50k_int at 200) gets eval's warning."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    toml = tmp_path / "bench.toml"
    toml.write_text(TINY.format(baseline="base.csv").replace("seeds = [0, 1]", "seeds = [0]")
                    .replace("kimg = 2", "kimg = 1").replace('"fid", "toy-score"', '"fid10k", "toy-score"')
                    .replace("fid = ", "fid10k = "))
    r = CliRunner().invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    assert "warning: fid10k measured 48 generated images, not the 10k its name says" in " ".join(r.output.split())


def test_bench_refuses_a_finished_run_whose_suite_settings_changed(tmp_path, monkeypatch):
    """A finished run was reused whatever the suite said now (resolution 16 -> 32, batch 8 -> 16): the old model was
    scored under the new settings and 'check passed'. Now training's resume check runs, and bench says what to do."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    toml = tmp_path / "bench.toml"
    text = TINY.format(baseline="base.csv").replace("seeds = [0, 1]", "seeds = [0]").replace("kimg = 2", "kimg = 1")
    toml.write_text(text)
    out = tmp_path / "out"
    runner = CliRunner()
    assert runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)]).exit_code == 0
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])   # unchanged: not retrained
    assert r.exit_code == 0 and "check passed" in r.output, r.output
    toml.write_text(text.replace("batch = 8", "batch = 16"))
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "suite 'tiny':" in said and "--batch: recorded 8, now 16" in said, r.output
    assert "delete" in said and "toy-gan-s0" in said and "--no-resume" not in said


def test_a_diverged_model_is_a_failed_check_not_bad_input(tmp_path, monkeypatch):
    """One diverging model stopped the whole suite with exit 2 ('pass --keep-going', which bench does not have): no
    leaderboard, no baseline. Now its rows are NaN flagged 'diverged', the leaderboard is written, and the check
    fails (exit 1): no baseline is made from a diverged run, and against a baseline the group is 'diverged'."""
    import torch

    from orchestrator_helpers import ToyG

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    toml = tmp_path / "bench.toml"
    toml.write_text(TINY.format(baseline="base.csv").replace("seeds = [0, 1]", "seeds = [0]")
                    .replace("kimg = 2", "kimg = 1"))
    runner = CliRunner()
    assert runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(tmp_path / "ok")]).exit_code == 0
    real_forward = ToyG.forward
    monkeypatch.setattr(ToyG, "forward", lambda self, z, *a, **k: real_forward(self, z, *a, **k) * torch.nan)
    out = tmp_path / "out"
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(out)])     # against the baseline
    assert r.exit_code == 1 and "diverged" in r.output and "check FAILED" in r.output, r.output
    assert (out / "leaderboard-tiny.html").is_file() and (read_results(out / "results-tiny.csv")["flag"] == "diverged").any()
    (tmp_path / "base.csv").unlink()                                                        # no baseline yet
    r = runner.invoke(app, ["bench", "tiny", "--config", str(toml), "--out", str(tmp_path / "out2")])
    said = " ".join(r.output.split())
    assert r.exit_code == 1 and "check FAILED: no baseline written" in said and "diverged" in said, r.output
    assert not (tmp_path / "base.csv").exists()


def test_two_suites_in_one_out_folder_keep_their_own_leaderboards(tmp_path, monkeypatch):
    """Results and baselines were per suite, but both suites wrote leaderboard.csv/.html, so benching a second suite
    into the same --out replaced the first one's leaderboard without a word. Each suite now has its own."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    one = TINY.format(baseline="base.csv").replace("seeds = [0, 1]", "seeds = [0]").replace("kimg = 2", "kimg = 1")
    toml = tmp_path / "bench.toml"
    toml.write_text(one.replace('baseline = "base.csv"', 'baseline = "base-tiny.csv"')
                    + one.replace("suites.tiny", "suites.other").replace('baseline = "base.csv"', 'baseline = "base-other.csv"'))
    runner = CliRunner()
    out = tmp_path / "out"
    for name in ("tiny", "other"):
        r = runner.invoke(app, ["bench", name, "--config", str(toml), "--out", str(out)])
        assert r.exit_code == 0 and f"leaderboard-{name}.html" in r.output, r.output
    for name in ("tiny", "other"):
        assert len(pd.read_csv(out / f"leaderboard-{name}.csv")) == 1
        assert f"ganbench {name} suite" in (out / f"leaderboard-{name}.html").read_text()
    assert not (out / "leaderboard.csv").exists()


@pytest.mark.parametrize("models, metric, message", [
    (["stylegan2", "progan"], "eqt50k_int", "equivariance metrics need a StyleGAN3 generator"),
    (["progan"], "ppl_wend", "ppl_wend needs a style-based generator with a W space; ProGenerator has none"),
])
def test_a_suite_metric_that_fits_none_of_its_models_is_refused_before_training(tmp_path, models, metric, message):
    """EQ on a suite without StyleGAN3 (or W-space PPL without a W space) was found out only at eval, after every
    model had trained. The families are built on the meta device and asked first."""
    suite = suite_from_table("t", {**GOOD, "models": models, "metrics": ["fid", metric]})
    with pytest.raises(ConfigError, match=rf"suite 't': metric '{metric}' applies to none of its models .*{message}"):
        run_suite(suite, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    validate_suite(suite_from_table("t", {**GOOD, "models": models + ["stylegan3-t"], "metrics": ["fid", metric]}))
