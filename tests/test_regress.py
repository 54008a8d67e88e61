"""Regression checks: direction-aware tolerances, missing/new keys, baseline round trip, CLI exit codes."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.config import parse_tolerances
from ganbench.errors import ConfigError
from ganbench.regress import compare, read_baseline, summarize, write_baseline
from ganbench.results import write_results


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
    assert s.loc["fid", "value"] == pytest.approx(20.5, abs=1e-12)
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
        compare(table(BASE), table(BASE), parse_tolerances("fid=-0.5"))


def test_missing_and_new_keys_are_reported():
    base = table({**BASE, ("b", "fid"): [5.0, 4.0]})
    cur = table({**BASE, ("c", "fid"): [5.0, 4.0]})
    report = compare(cur, base, {})
    statuses = {(r.run, r.metric): r.status for r in report.table.itertuples()}
    assert statuses[("b", "fid")] == "missing"
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
    assert r.exit_code == 1 and "missing" in r.output and "not in the baseline (not checked): z/fid" in r.output
    r = runner.invoke(app, ["check", str(results), "--baseline", str(baseline), "--tolerance", "fid+0.5"])
    assert r.exit_code == 2 and "NAME=+0.5" in r.output


def _append_many(path: str, worker: int) -> None:
    from ganbench.results import append_rows

    for i in range(15):
        append_rows(path, [{"run": f"w{worker}", "kimg": i, "metric": "fid", "value": float(i)}])


def test_parallel_appends_lose_no_rows(tmp_path):
    import multiprocessing

    from ganbench.results import read_results

    path = str(tmp_path / "results.csv")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    table = read_results(path)
    assert len(table) == 45 and table.groupby("run").size().tolist() == [15, 15, 15]
