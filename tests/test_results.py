"""The results table: comparable groups, integer columns, the `flag` column, and concurrent writers (shards)."""

from __future__ import annotations

import json
import multiprocessing
import socket

import numpy as np
import pandas as pd
import pytest

from ganbench.errors import ConfigError
from ganbench.results import (COLUMNS, SETTINGS, append_rows, read_many, read_results, repeat_groups, shard_dir,
                              write_results)


def row(**kw) -> dict:
    base = {"run": "a", "checkpoint": "network-snapshot-000002.pt", "kimg": 2.0, "metric": "fid", "value": 10.0,
            "metric_group": "fid", "direction": "lower", "n_samples": 128, "n_real": 2000, "extractor": "shapes-net",
            "extractor_sha256": "ab" * 32, "resize_mode": "none", "dataset": "shapes-123", "seed": 0,
            "params": json.dumps({"covariance": "biased", "n_gen": 128}), "timestamp": "2025-01-01T00:00:00+00:00"}
    return {**base, **kw}


def test_rows_made_with_different_settings_are_never_averaged():
    """Issue 15.1: n=128, n=32 and n=128 with another covariance are three groups; only seeds are repeats."""
    unbiased = json.dumps({"covariance": "unbiased", "n_gen": 128})
    rows = [row(seed=0, value=10.0), row(seed=1, value=12.0),                       # repeats: averaged
            row(n_samples=32, value=40.0), row(params=unbiased, value=11.0),         # other settings
            row(dataset="shapes-999", value=9.0), row(n_real=500, value=13.0),
            row(extractor_sha256="cd" * 32, value=14.0), row(resize_mode="bilinear", value=15.0)]
    groups = repeat_groups(pd.DataFrame(rows))
    assert len(groups) == 7
    main = groups[(groups["n_samples"] == 128) & (groups["params"] != unbiased) & (groups["dataset"] == "shapes-123")
                  & (groups["n_real"] == 2000) & (groups["extractor_sha256"] == "ab" * 32)
                  & (groups["resize_mode"] == "none")]
    assert len(main) == 1
    assert main["mean"].iloc[0] == pytest.approx(11.0, abs=1e-12)
    assert main["std"].iloc[0] == pytest.approx(np.std([10.0, 12.0], ddof=1), abs=1e-12)
    assert main["count"].iloc[0] == 2
    others = groups.drop(main.index)
    assert sorted(others["mean"]) == [9.0, 11.0, 13.0, 14.0, 15.0, 40.0] and set(others["count"]) == {1}
    assert {"metric", "n_samples", "n_real", "extractor", "extractor_sha256", "resize_mode", "dataset",
            "params"} <= set(SETTINGS) and "seed" not in SETTINGS


def test_two_checkpoints_under_one_run_and_snapshot_are_never_averaged_as_seeds(tmp_path):
    """Two pickles of one folder (both run = folder, kimg 0), or a final.pkl beside the snapshot of its kimg, were
    averaged as seeds (FID 76 +- 18 from 88.7 and 63.5; `check` passed on the mean). Seeds are repeats of ONE model:
    rows of two checkpoint files in one group are a ConfigError naming both, in report and check alike."""
    from typer.testing import CliRunner

    from ganbench.cli import app

    two = pd.DataFrame([row(checkpoint="sg2.pkl", kimg=0.0, value=88.7), row(checkpoint="sg2c.pkl", kimg=0.0,
                                                                              value=63.5, seed=1)])
    with pytest.raises(ConfigError, match=r"'a' at kimg 0 has fid rows of 2 different checkpoints "
                                          r"\(sg2.pkl, sg2c.pkl\)"):
        repeat_groups(two)
    write_results(tmp_path / "two.csv", two)
    for args in (["report", str(tmp_path / "two.csv"), "--out", str(tmp_path / "rep")],
                 ["check", str(tmp_path / "two.csv"), "-b", str(tmp_path / "two.csv")],
                 ["check", str(tmp_path / "two.csv"), "-b", str(tmp_path / "base.csv"), "--update-baseline"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2 and ("2 different checkpoints" in r.output or "is the results file" in r.output), \
            (args, r.output)
    assert not (tmp_path / "rep").exists() and not (tmp_path / "base.csv").exists()
    seeds = pd.DataFrame([row(seed=0, value=10.0), row(seed=1, value=12.0)])   # one checkpoint: seed repeats
    assert repeat_groups(seeds)["count"].tolist() == [2]


def test_an_image_set_name_stands_for_its_newest_contents():
    """`eval samples/` after the samples were regenerated adds rows of new contents (another images-<hash>) under
    the same name: the newest contents' rows are the set's numbers, never averaged with the old ones."""
    old = row(checkpoint="images-aaaa", kimg=float("nan"), value=50.0, timestamp="2026-01-01T00:00:00+00:00")
    new = row(checkpoint="images-bbbb", kimg=float("nan"), value=30.0, timestamp="2026-02-01T00:00:00+00:00")
    groups = repeat_groups(pd.DataFrame([new, old, {**old, "seed": 1, "value": 52.0}]))
    assert groups[["checkpoint", "mean", "count"]].values.tolist() == [["images-bbbb", 30.0, 1]]


def test_results_csv_keeps_integer_columns_integer(tmp_path):
    """Issue 11: n_samples, n_real, seed and whole kimg are written as integers; values round-trip exactly."""
    path = tmp_path / "results.csv"
    value = 1 / 3
    append_rows(path, [row(kimg=2.0, value=value), row(kimg=0.512, seed=7, value=float("nan"), flag="diverged")])
    for f in [path, *shard_dir(path).glob("*.csv")]:
        raw = pd.read_csv(f, dtype=str, keep_default_na=False)
        assert list(raw["n_samples"]) == ["128", "128"] and list(raw["n_real"]) == ["2000", "2000"]
        assert list(raw["seed"]) == ["0", "7"] and list(raw["kimg"]) == ["2", "0.512"]
    back = read_results(path).sort_values("seed")
    assert back["value"].iloc[0] == value                         # exact round trip
    assert back["kimg"].tolist() == [2.0, 0.512] and back["n_samples"].dtype == np.float64


def test_flag_column_marks_diverged_rows(tmp_path):
    """Issue 15.5: a NaN row of a diverged generator carries flag=diverged; normal rows have an empty flag."""
    assert "flag" in COLUMNS
    path = tmp_path / "results.csv"
    write_results(path, pd.DataFrame([row(), row(kimg=4.0, checkpoint="network-snapshot-000004.pt",
                                                 value=float("nan"), flag="diverged")]))
    back = read_results(path).sort_values("kimg")
    assert back["flag"].tolist() == ["", "diverged"] and np.isnan(back["value"].iloc[1])


def _writer(path: str, worker: int, barrier, shared: int, own: int) -> None:
    import fcntl

    fcntl.flock = lambda *a, **k: None                       # a shared file system where OS locks do nothing
    socket.gethostname = lambda: f"node{worker % 2}"         # two "machines"
    barrier.wait()
    for i in range(max(shared, own)):
        rows = []
        if i < shared:   # every worker computes these: the same (checkpoint, metric, settings)
            rows.append(row(checkpoint=f"network-snapshot-{i:06d}.pt", kimg=float(i), value=float(i),
                            timestamp=f"2025-01-01T00:00:{worker:02d}+00:00"))
        if i < own:
            rows.append(row(run=f"w{worker}", checkpoint=f"network-snapshot-{i:06d}.pt", kimg=float(i)))
        append_rows(path, rows)


def test_concurrent_writers_on_a_shared_file_system_leave_each_row_once(tmp_path):
    """Issue 15.6: writers without working locks, on two hosts, racing on the same computations."""
    from ganbench.metrics import list_metrics

    list_metrics()                                           # import the registry once, before forking
    path = tmp_path / "results.csv"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_writer, args=(str(path), w, barrier, 3, 4)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    table = read_results(path)
    assert len(table) == 3 + 4 * 4
    assert table.groupby("run").size().to_dict() == {"a": 3, "w0": 4, "w1": 4, "w2": 4, "w3": 4}
    assert not table.duplicated(["run", "checkpoint", "metric"]).any()
    shared = table[table["run"] == "a"]
    assert set(shared["timestamp"]) == {"2025-01-01T00:00:03+00:00"}    # the newest computation wins
    assert len(read_many([path, path])) == len(table)
    assert len(list(shard_dir(path).glob("*.csv"))) == 4                   # one shard per writer process


def _evaluate_child(run: str, out: str, barrier) -> None:
    import fcntl

    from ganbench.data.shapes import ShapesDataset
    from ganbench.evaluate import EvalOptions, evaluate

    fcntl.flock = lambda *a, **k: None
    barrier.wait()
    evaluate([run], EvalOptions(metrics=["toy-stat", "toy-score"], real=ShapesDataset(n=48, resolution=16, seed=1),
                                n=40, extractor="toy-pixels", seed=3, batch_size=16), out=out)


def test_two_eval_processes_on_one_results_file_leave_no_duplicates(tmp_path, monkeypatch):
    """Issue 15.6 through `evaluate` itself: two processes start together on the same checkpoints and file."""
    from orchestrator_helpers import make_run

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    out = tmp_path / "results.csv"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_evaluate_child, args=(str(run), str(out), barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    table = read_results(out)
    assert len(table) == 2 * 3                       # 2 checkpoints x (toy_gap, toy_spread, toy_score), once each
    assert not table.duplicated(["checkpoint", "metric"]).any()


def test_shard_rows_survive_a_writer_killed_before_refreshing_the_table(tmp_path):
    """A writer's own shard is written first: rows are readable even if the merged table was never refreshed."""
    path = tmp_path / "results.csv"
    append_rows(path, [row()])
    write_results(path, pd.DataFrame([row(run="other")]))        # e.g. another writer's stale, older view
    assert set(read_results(path)["run"]) == {"a", "other"}
    path.unlink()
    assert set(read_results(path)["run"]) == {"a"}


def test_unreadable_results_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_results(tmp_path / "nope.csv")
    with pytest.raises(ConfigError, match="is a folder"):
        read_results(tmp_path)
    bad = tmp_path / "results.csv"
    append_rows(bad, [row()])
    next(shard_dir(bad).glob("*.csv")).write_text("run,kimg,metric,value\na,x,fid,1\n")
    with pytest.raises(ConfigError, match=r"results\.csv\.shards.*kimg 'x'"):
        read_results(bad)


def test_append_refreshes_the_file_from_recent_shards_only_and_reading_merges_all(tmp_path):
    """An append costs O(table), not O(shards): shards older than the file (minus slack) are not re-read into it."""
    import os

    from ganbench.results import REFRESH_SLACK_S

    path = tmp_path / "results.csv"
    write_results(path, pd.DataFrame([row(run="table")]))
    old = shard_dir(path) / "elsewhere-1-abc.csv"
    write_results(old, pd.DataFrame([row(run="old-shard")]))
    stamp = path.stat().st_mtime - REFRESH_SLACK_S - 60
    os.utime(old, (stamp, stamp))
    append_rows(path, [row(run="mine")])
    on_disk = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert set(on_disk["run"]) == {"table", "mine"}
    assert set(read_results(path)["run"]) == {"table", "mine", "old-shard"}
    path.unlink()                                        # without the file, an append rebuilds it from every shard
    append_rows(path, [row(run="mine", kimg=4.0)])
    assert set(pd.read_csv(path, dtype=str)["run"]) == {"mine", "old-shard"}


def test_two_run_folders_of_one_name_are_not_merged_when_read_together(tmp_path):
    """`report expA/sg2/results.csv expB/sg2/results.csv`: with one seed expB's rows replaced expA's, with two
    seeds the leaderboard showed the mean of two models. Now one line naming both folders; the rows of a run that
    was moved (its old folder gone) still read together with the new ones."""
    a, b = tmp_path / "expA" / "sg2", tmp_path / "expB" / "sg2"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    write_results(a / "results.csv", pd.DataFrame([row(run="sg2", run_dir=str(a), value=20.0)]))
    write_results(b / "results.csv", pd.DataFrame([row(run="sg2", run_dir=str(b), value=30.0, seed=1)]))
    with pytest.raises(ConfigError, match=r"run 'sg2' has rows from two folders, .*expA/sg2 .*expB/sg2"):
        read_many([a / "results.csv", b / "results.csv"])
    gone = tmp_path / "old" / "sg2"
    write_results(tmp_path / "old.csv", pd.DataFrame([row(run="sg2", run_dir=str(gone), value=21.0, seed=2)]))
    assert len(read_many([a / "results.csv", tmp_path / "old.csv"])) == 2
