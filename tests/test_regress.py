"""Regression checks: direction-aware tolerances, missing/new keys, baseline round trip, CLI exit codes."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.config import parse_tolerance
from ganbench.errors import ConfigError
from ganbench.regress import compare, read_baseline, summarize, write_baseline
from ganbench.regress import parse_tolerance_option as parse_tolerances
from ganbench.results import write_results

REPO = Path(__file__).resolve().parents[1]


def table(values: dict[tuple[str, str], list[float]], kimgs=(10.0, 20.0)) -> pd.DataFrame:
    """Results rows for {(run, metric): [value at each kimg]}."""
    direction = {"fid": "lower", "is_mean": "higher", "is_std": ""}
    group = {"fid": "fid", "is_mean": "is", "is_std": "is"}
    rows = [{"run": run, "checkpoint": f"network-snapshot-{int(k):06d}.pt", "kimg": k, "metric": metric,
             "value": v, "metric_group": group[metric], "direction": direction[metric], "extractor": "shapes-net",
             "n_samples": 100, "seed": 0, "params": "{}"}
            for (run, metric), vals in values.items() for k, v in zip(kimgs, vals)]
    return pd.DataFrame(rows)


BASE = {("a", "fid"): [30.0, 20.0], ("a", "is_mean"): [2.0, 3.0], ("a", "is_std"): [0.1, 0.1]}


def test_summarize_takes_last_checkpoint_and_means_over_seeds():
    df = table(BASE)
    df2 = df.assign(seed=1, value=df["value"] + 1.0)
    s = summarize(pd.concat([df, df2])).set_index("metric")
    assert s.loc["fid", "mean"] == pytest.approx(20.5, abs=1e-12)
    assert s.loc["fid", "std"] == pytest.approx(0.5 ** 0.5, abs=1e-12) and s.loc["fid", "count"] == 2
    assert s.loc["fid", "kimg"] == 20.0


@pytest.mark.parametrize("fid, is_mean, passed", [
    (20.4, 2.9, True),     # both within tolerance
    (20.6, 3.0, False),    # FID rose by 0.6 > 0.5
    (19.0, 2.7, False),    # IS fell by 0.3 > 0.2
    (10.0, 9.0, True),     # improvements always pass
])
def test_compare_is_direction_aware(fid, is_mean, passed):
    cur = table({**BASE, ("a", "fid"): [30.0, fid], ("a", "is_mean"): [2.0, is_mean]})
    report = compare(cur, table(BASE), parse_tolerances("fid=+0.5,is=-0.2"))
    assert report.passed is passed
    statuses = dict(zip(report.table["metric"], report.table["status"]))
    assert statuses["is_std"] == "unchecked"
    if not passed:
        assert len(report.failures()) == 1


def test_untoleranced_metrics_must_not_worsen_and_star_sets_default():
    cur = table({**BASE, ("a", "is_mean"): [2.0, 2.99]})
    assert not compare(cur, table(BASE), parse_tolerances("fid=+0.5")).passed
    assert compare(cur, table(BASE), parse_tolerances("fid=+0.5,*=0.05")).passed
    assert compare(cur, table(BASE), parse_tolerances("fid=+0.5,is=-1%")).passed      # 1% of 3.0 = 0.03


def test_relative_tolerance():
    cur = table({**BASE, ("a", "fid"): [30.0, 20.9]})
    assert compare(cur, table(BASE), parse_tolerances("fid=+5%,is=0")).passed
    assert not compare(cur, table(BASE), parse_tolerances("fid=+4%,is=0")).passed


def test_wrong_sign_is_a_config_error():
    with pytest.raises(ConfigError, match="fid=-0.5 points the wrong way"):
        compare(table(BASE), table(BASE), {"fid": parse_tolerance("fid", "-0.5")})   # from Python: compare checks too


def test_missing_and_new_keys_are_reported():
    base = table({**BASE, ("b", "fid"): [5.0, 4.0]})
    cur = table({**BASE, ("c", "fid"): [5.0, 4.0]})
    report = compare(cur, base, {})
    statuses = {(r.run, r.metric): r.status for r in report.table.itertuples()}
    assert statuses[("b", "fid")] == "not comparable"
    assert statuses[("c", "fid")] == "new"
    assert not report.passed


def test_baseline_round_trip(tmp_path):
    path = tmp_path / "baseline.csv"
    write_baseline(path, table(BASE))
    back = read_baseline(path)
    assert compare(table(BASE), back, {}).passed
    assert set(back["metric"]) == {"fid", "is_mean", "is_std"}


def test_cli_check_exit_codes(tmp_path):
    runner = CliRunner()
    results, baseline = tmp_path / "results.csv", tmp_path / "baseline.csv"
    write_results(results, table(BASE))
    r = runner.invoke(app, ["check", str(results), "--baseline", str(baseline)])
    assert r.exit_code == 2 and "--update-baseline" in r.output
    r = runner.invoke(app, ["check", str(results), "--baseline", str(baseline), "--update-baseline"])
    assert r.exit_code == 0, r.output
    assert baseline.is_file()
    r = runner.invoke(app, ["check", str(results), "--baseline", str(baseline), "--tolerance", "fid=+0.5,is=-0.2"])
    assert r.exit_code == 0, r.output
    write_results(results, table({**BASE, ("a", "fid"): [30.0, 21.0]}))
    r = runner.invoke(app, ["check", str(results), "--baseline", str(baseline), "--tolerance", "fid=+0.5,is=-0.2"])
    assert r.exit_code == 1, r.output
    assert "regressed" in r.output and "fid" in r.output
    missing_and_new = table({("a", "is_mean"): [2.0, 3.0], ("z", "fid"): [1.0, 1.0]})
    write_results(results, missing_and_new)
    r = runner.invoke(app, ["check", str(results), "--baseline", str(baseline)])
    assert r.exit_code == 1 and "not comparable" in r.output
    assert "not in the baseline (not checked): z/fid@20 [n=100, shapes-net]" in r.output
    r = runner.invoke(app, ["check", str(results), "--baseline", str(baseline), "--tolerance", "fid+0.5"])
    assert r.exit_code == 2 and "NAME=+0.5" in r.output


# ---- issue 15: results you can trust -------------------------------------------------------------------------

def rows(values: list[float], run="a", kimg=20.0, **settings) -> pd.DataFrame:
    """FID rows of one (run, snapshot), one per seed, with every setting recorded."""
    base = {"run": run, "checkpoint": f"network-snapshot-{int(kimg):06d}.pt", "kimg": kimg, "metric": "fid",
            "metric_group": "fid", "direction": "lower", "n_samples": 128, "n_real": 2000, "extractor": "shapes-net",
            "extractor_sha256": "ab" * 32, "resize_mode": "none", "dataset": "shapes-1",
            "params": '{"covariance":"biased"}'}
    return pd.DataFrame([{**base, **settings, "seed": s, "value": v} for s, v in enumerate(values)])


def check_cli(tmp_path, results: pd.DataFrame | None, baseline: pd.DataFrame | None, *args: str):
    """Run `ganbench check` on tables written to tmp_path (None: leave that file as it is)."""
    res, base = tmp_path / "results.csv", tmp_path / "baseline.csv"
    if results is not None:
        write_results(res, results)
    if baseline is not None:
        write_results(base, baseline)
    return CliRunner().invoke(app, ["check", str(res), "--baseline", str(base), *args])


def test_check_compares_only_rows_made_with_the_same_settings(tmp_path):
    """15.1: n=128 is compared with n=128 only; n=32 and another covariance are neither averaged in nor compared."""
    base = rows([20.0])
    cur = pd.concat([rows([20.1]), rows([50.0], n_samples=32), rows([90.0], params='{"covariance":"unbiased"}')])
    report = compare(cur, base, parse_tolerances("fid=+0.5"))
    assert report.passed, report.table
    checked = report.table[report.table["status"] == "ok"]
    assert len(checked) == 1 and checked["current"].iloc[0] == pytest.approx(20.1, abs=1e-12)
    assert set(report.table["status"]) == {"ok", "new"}


def test_groups_that_differ_only_in_params_are_told_apart_in_the_check_table(tmp_path):
    """15.1: n=128 biased and n=128 unbiased both read 'n=128, shapes-net': two lines that looked alike."""
    base = rows([20.0])
    cur = pd.concat([rows([20.1]), rows([90.0], params='{"covariance":"unbiased"}'), rows([50.0], n_samples=32)])
    table = compare(cur, base, parse_tolerances("fid=+0.5")).table
    settings = sorted(table["settings"])
    assert settings == ["n=128, shapes-net, covariance=biased", "n=128, shapes-net, covariance=unbiased",
                        "n=32, shapes-net"], settings
    r = check_cli(tmp_path, cur, base, "--tolerance", "fid=+0.5", "-v")
    assert r.exit_code == 0 and "covariance=unbiased" in r.output and "covariance=biased" in r.output, r.output


def test_baseline_without_a_comparable_group_is_not_comparable_and_fails(tmp_path):
    """15.1: a baseline made at n=128 against results at n=32: 'not comparable', exit 1 unless --allow-missing."""
    r = check_cli(tmp_path, rows([5.0], n_samples=32), rows([20.0]), "--tolerance", "fid=+0.5")
    assert r.exit_code == 1, r.output
    assert "not comparable" in r.output and "n_samples" in r.output and "128" in r.output and "32" in r.output
    r = check_cli(tmp_path, None, None, "--tolerance", "fid=+0.5", "--allow-missing")
    assert r.exit_code == 1, r.output   # allowed to be missing, but then nothing at all was compared
    assert "not comparable" in r.output and "no group was compared" in r.output
    both = pd.concat([rows([20.0]), rows([7.0], run="b")])
    r = check_cli(tmp_path, pd.concat([rows([20.1]), rows([5.0], run="b", n_samples=32)]), both,
                  "--tolerance", "fid=+0.5", "--allow-missing")
    assert r.exit_code == 0, r.output   # one group compared (ok), the other allowed to be missing
    assert "not comparable, allowed by --allow-missing" in r.output


def test_direction_comes_from_the_metric_registry_not_the_file(tmp_path):
    """15.2: a results file that calls FID higher-is-better is an error; with no direction, FID rising regresses."""
    r = check_cli(tmp_path, rows([30.0], direction="higher"), rows([20.0]), "--tolerance", "fid=+0.5")
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert "results.csv" in r.output and "higher" in r.output and "registry" in r.output
    r = check_cli(tmp_path, rows([20.0]), rows([20.0], direction="higher"), "--tolerance", "fid=+0.5")
    assert r.exit_code == 2 and "baseline.csv" in r.output, r.output
    r = check_cli(tmp_path, rows([30.0], direction=""), rows([20.0], direction=""), "--tolerance", "fid=+0.5")
    assert r.exit_code == 1 and "regressed" in r.output, r.output


def test_default_verdict_allows_noise_within_k_combined_std_and_prints_the_margin(tmp_path):
    """15.3: worse by more than max(abs, rel x baseline, k x combined std) fails; the margin is printed."""
    base = rows([20.0, 21.0, 22.0])                        # mean 21, std 1, count 3
    combined = (1 / 3 + 1 / 3) ** 0.5                      # current also has std 1 over 3 seeds
    ok, bad = rows([21.5, 22.5, 23.5]), rows([23.0, 24.0, 25.0])
    assert compare(ok, base, {}, k=3.0).passed             # worse by 1.5 < 3 x 0.816
    better = compare(rows([19.0, 20.0, 21.0]), base, {}, k=3.0).table["status"].iloc[0]
    much_better = compare(rows([17.0, 18.0, 19.0]), base, {}, k=3.0).table["status"].iloc[0]
    assert (better, much_better) == ("ok", "improved")     # better by 1 is within the margin: not an improvement
    report = compare(bad, base, {}, k=3.0)                 # worse by 3.0 > 2.449
    assert not report.passed
    assert report.table["margin"].iloc[0] == pytest.approx(3.0 * combined, rel=1e-9)
    assert compare(bad, base, parse_tolerances("fid=+3.5"), k=3.0).passed          # abs tolerance wins
    assert compare(bad, base, parse_tolerances("fid=+20%"), k=3.0).passed          # 20% of 21 = 4.2
    assert not compare(bad, base, parse_tolerances("fid=+10%"), k=3.0).passed      # 2.1 < 3 x std
    r = check_cli(tmp_path, base, None, "--update-baseline")
    assert r.exit_code == 0, r.output
    written = pd.read_csv(tmp_path / "baseline.csv")
    assert {"mean", "std", "count"} <= set(written.columns)
    assert written[["mean", "std", "count"]].iloc[0].tolist() == pytest.approx([21.0, 1.0, 3])
    write_results(tmp_path / "now.csv", ok)
    r = CliRunner().invoke(app, ["check", str(tmp_path / "now.csv"), "--baseline", str(tmp_path / "baseline.csv"),
                                 "--k", "3", "-v"])
    assert r.exit_code == 0 and "margin" in r.output and "2.4495 (3σ)" in r.output, r.output
    write_results(tmp_path / "now.csv", bad)
    r = CliRunner().invoke(app, ["check", str(tmp_path / "now.csv"), "--baseline", str(tmp_path / "baseline.csv"),
                                 "--k", "3"])
    assert r.exit_code == 1 and "regressed" in r.output and "2.4495 (3σ)" in r.output, r.output


def test_single_seed_falls_back_to_tolerances_and_unsigned_star(tmp_path):
    """With one seed on each side there is no spread: the tolerances alone give the margin."""
    assert not compare(rows([20.2]), rows([20.0]), {}, k=3.0).passed
    report = compare(rows([20.2]), rows([20.0]), parse_tolerances("*=1%"), k=3.0)
    assert report.passed and report.table["margin"].iloc[0] == pytest.approx(0.2, rel=1e-9)


def test_header_only_or_empty_baseline_is_an_error(tmp_path):
    """15.3: a baseline with no rows is bad input (exit 2), not a pass."""
    write_results(tmp_path / "results.csv", rows([20.0]))
    (tmp_path / "baseline.csv").write_text("run,kimg,metric,value\n")
    r = check_cli(tmp_path, None, None)
    assert r.exit_code == 2 and "baseline.csv" in r.output and "no rows" in r.output, r.output
    (tmp_path / "baseline.csv").write_text("")
    r = check_cli(tmp_path, None, None)
    assert r.exit_code == 2 and "baseline.csv" in r.output and "empty" in r.output, r.output


def test_unknown_tolerance_key_lists_valid_names(tmp_path):
    """15.4: `--tolerance fdi=+1` fails before any file is read, listing metric names, result keys and `*`."""
    r = CliRunner().invoke(app, ["check", str(tmp_path / "no.csv"), "--baseline", str(tmp_path / "b.csv"),
                                 "--tolerance", "fdi=+1"])
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert len(line.splitlines()) == 1 and "'fdi'" in line and "does not exist" not in line
    for name in ("*", "fid", "kid", "kid_mean", "is_mean", "precision", "swd_avg", "ppl_wend"):
        assert name in line
    assert "did you mean 'fid'" in line


def test_update_baseline_into_a_folder_is_a_clear_error(tmp_path):
    """15.15: `check --update-baseline` with a folder as the baseline path: one line, exit 2, nothing written."""
    write_results(tmp_path / "results.csv", rows([20.0]))
    folder = tmp_path / "base"
    folder.mkdir()
    r = CliRunner().invoke(app, ["check", str(tmp_path / "results.csv"), "--baseline", str(folder),
                                 "--update-baseline"])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert len(r.output.strip().splitlines()) == 1 and "folder" in r.output and str(folder.name) in r.output
    assert list(folder.iterdir()) == []


def test_diverged_current_value_fails_the_check(tmp_path):
    """15.5: a NaN row flagged `diverged` is a failure whatever the tolerance."""
    cur = rows([float("nan")]).assign(flag="diverged")
    r = check_cli(tmp_path, cur, rows([20.0]), "--tolerance", "*=100%")
    assert r.exit_code == 1 and "diverged" in r.output, r.output


def test_check_settings_come_from_benchmarks_toml(tmp_path):
    """15.3: k and tolerances live in the [check] table of benchmarks.toml (or --config); CLI values override."""
    from ganbench.config import load_check_settings

    shipped = load_check_settings(REPO / "benchmarks.toml")
    assert shipped.k > 0
    toml = tmp_path / "bench.toml"
    toml.write_text('[check]\nk = 0.0\n[check.tolerances]\nfid = "+0.3"\n\n'
                    '[suites.x]\ndataset = "shapes"\nresolution = 16\nmodels = ["stylegan2"]\nmetrics = ["fid"]\n')
    cur = rows([20.4])
    r = check_cli(tmp_path, cur, rows([20.0]), "--config", str(toml))
    assert r.exit_code == 1 and "regressed" in r.output, r.output          # 0.4 > 0.3
    r = check_cli(tmp_path, None, None, "--config", str(toml), "--tolerance", "fid=+0.5")
    assert r.exit_code == 0, r.output
    toml.write_text(toml.read_text() + 'k = 0.0\n[suites.x.tolerances]\nfid = "+0.45"\n')
    r = check_cli(tmp_path, None, None, "--config", str(toml), "--suite", "x", "-v")   # the suite's 0.45 > 0.4
    assert r.exit_code == 0 and "0.45 (fid=+0.45)" in r.output and "check passed" in r.output, r.output
    toml.write_text('[check]\nk = 0.0\n[check.tolerances]\nfdi = "+0.3"\n')
    r = check_cli(tmp_path, None, None, "--config", str(toml))
    assert r.exit_code == 2 and "fdi" in r.output and "bench.toml" in r.output, r.output


def test_baseline_without_its_settings_is_an_error(tmp_path):
    """A baseline from before settings were recorded cannot say what it is comparable with: exit 2, recreate it."""
    old = ("run,metric,metric_group,direction,extractor,kimg,value,n_samples,seed\n"
           "a,fid,fid,lower,shapes-net,20,20.0,128,0\n")
    (tmp_path / "baseline.csv").write_text(old)
    r = check_cli(tmp_path, rows([20.0]), None)
    assert r.exit_code == 2 and "lacks column(s)" in r.output and "n_real" in r.output, r.output
    assert "--update-baseline" in r.output


def test_a_check_that_compares_no_group_fails(tmp_path):
    """A gate that verified nothing must not pass: results of another run only (every group new), keys the registry
    does not know (from another tool: no direction, so unchecked), or a baseline of informational keys only."""
    r = check_cli(tmp_path, rows([20.0], run="other"), rows([20.0]), "--tolerance", "fid=+0.5", "--allow-missing")
    assert r.exit_code == 1 and "no group was compared" in r.output, r.output
    foreign = dict(metric="FID", metric_group="FID", direction="lower")   # the file's direction is not trusted
    r = check_cli(tmp_path, rows([60.0], **foreign), rows([20.0], **foreign))
    assert r.exit_code == 1 and "no group was compared" in r.output, r.output
    assert "FID is not in the metric registry" in r.output   # not "informational": the registry does not know it
    std = dict(metric="is_std", metric_group="is", direction="")
    r = check_cli(tmp_path, rows([3.0], **std), rows([0.1], **std))
    assert r.exit_code == 1 and "informational (no better direction)" in r.output, r.output


def test_non_finite_values_fail_on_either_side(tmp_path):
    """inf is not a better FID than 20 (nor inf a better IS): a non-finite current or baseline value is 'not a
    number', which fails; before, a NaN baseline made any result 'new' (passing) and -inf FID 'improved'."""
    for cur, base in [(-math.inf, 20.0), (math.inf, 20.0), (20.0, math.inf), (20.0, math.nan)]:
        report = compare(rows([cur]), rows([base]), parse_tolerances("fid=+0.5"))
        assert not report.passed and list(report.table["status"]) == ["not a number"], (cur, base, report.table)
    is_rows = dict(metric="is_mean", metric_group="is", direction="higher")
    report = compare(rows([math.inf], **is_rows), rows([5.0], **is_rows), {})
    assert not report.passed and list(report.table["status"]) == ["not a number"]
    diverged = rows([math.nan]).assign(flag="diverged")
    report = compare(rows([20.0]), diverged, {})
    assert not report.passed and "diverged" in report.table["note"].iloc[0]


def test_update_baseline_refuses_non_finite_groups(tmp_path):
    """A baseline holds finite numbers: a NaN, infinite or diverged group is one line (exit 2), the old baseline
    unchanged. Informational groups (is_std) may be anything."""
    base = tmp_path / "baseline.csv"
    assert check_cli(tmp_path, rows([20.0]), None, "--update-baseline").exit_code == 0
    before = base.read_bytes()
    for bad in (rows([math.nan]), rows([math.inf]), rows([math.nan]).assign(flag="diverged")):
        r = check_cli(tmp_path, pd.concat([bad, rows([1.0], run="b")]), None, "--update-baseline")
        assert r.exit_code == 2 and "cannot make a baseline: a fid at kimg 20" in r.output, r.output
        assert base.read_bytes() == before
    std = rows([math.nan], metric="is_std", metric_group="is", direction="")
    assert check_cli(tmp_path, pd.concat([rows([20.0]), std]), None, "--update-baseline").exit_code == 0


def test_baseline_may_not_be_a_results_file(tmp_path):
    """`check r.csv -b r.csv --update-baseline` replaced the results with their summary; without the flag it
    compared the file with itself and passed. Both are one line, exit 2, the file untouched (also via ./)."""
    res = tmp_path / "results.csv"
    write_results(res, rows([20.0, 21.0]))
    before = res.read_bytes()
    for args in (["--update-baseline"], []):
        for base in (str(res), str(tmp_path / "." / "results.csv")):
            r = CliRunner().invoke(app, ["check", str(res), "--baseline", base, *args])
            assert r.exit_code == 2 and "is the results file" in r.output, r.output
            assert res.read_bytes() == before


def test_update_baseline_writes_through_a_link_and_refuses_a_fifo(tmp_path):
    """A baseline that is a symbolic link (kept in a shared folder) is updated at its target, the link kept; a fifo
    or device is never replaced by a regular file."""
    import os

    target = tmp_path / "shared" / "base.csv"
    target.parent.mkdir()
    target.write_text("old")
    link = tmp_path / "baseline.csv"
    link.symlink_to(target)
    assert check_cli(tmp_path, rows([20.0]), None, "--update-baseline").exit_code == 0
    assert link.is_symlink() and "fid" in target.read_text()
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)
    write_results(tmp_path / "results.csv", rows([20.0]))
    r = CliRunner().invoke(app, ["check", str(tmp_path / "results.csv"), "-b", str(fifo), "--update-baseline"])
    assert r.exit_code == 2 and "not a regular file" in r.output, r.output
    assert fifo.is_fifo()
