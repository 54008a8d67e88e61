"""`ganbench eval`: rows per checkpoint and metric, skip on rerun, resume after a crash or a kill, determinism."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.data.shapes import ShapesDataset
from ganbench.errors import ConfigError
from ganbench.evaluate import EvalOptions, evaluate, find_checkpoints
from ganbench.results import read_results

from orchestrator_helpers import make_run, register_inapplicable, register_toys

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TOY_FAIL", raising=False)
    register_toys()


def options(**kw) -> EvalOptions:
    base = dict(metrics=["toy-stat", "toy-score"], real=ShapesDataset(n=48, resolution=16, seed=1), n=40,
                extractor="toy-pixels", seed=3, batch_size=16)
    return EvalOptions(**{**base, **kw})


def values(df: pd.DataFrame) -> dict:
    return {(r.run, r.kimg, r.metric): r.value for r in df.itertuples()}


def test_find_checkpoints_sorts_by_kimg(tmp_path):
    make_run(tmp_path / "runA", kimgs=(10, 2, 1))
    refs = find_checkpoints([tmp_path / "runA"])
    assert [r.kimg for r in refs] == [1.0, 2.0, 10.0]
    assert {r.run for r in refs} == {"runA"}
    assert [r.kimg for r in find_checkpoints([tmp_path])] == [1.0, 2.0, 10.0]  # a folder of runs
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no network-snapshot"):
        find_checkpoints([tmp_path / "empty"])


def test_two_checkpoints_give_expected_rows_and_rerun_adds_none(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    summary = evaluate([run], options())
    table = read_results(run / "results.csv")
    assert len(summary.added) == len(table) == 2 * 3   # 2 checkpoints x (toy_gap, toy_spread, toy_score)
    assert sorted(set(table["metric"])) == ["toy_gap", "toy_score", "toy_spread"]
    assert list(table["kimg"].unique()) == [1.0, 2.0]
    row = table[table["metric"] == "toy_gap"].iloc[0]
    assert (row["run"], row["checkpoint"], row["direction"], row["metric_group"]) == \
        ("runA", "network-snapshot-000001.pt", "lower", "toy-stat")
    assert (row["n_samples"], row["seed"], row["extractor"], row["n_real"]) == (40, 3, "toy-pixels", 48)
    assert row["extractor_sha256"] == "0" * 64 and row["resize_mode"] == "adaptive-avg-4"
    assert table[table["metric"] == "toy_spread"]["direction"].iloc[0] == ""
    # the two checkpoints differ, so their numbers do
    gaps = table[table["metric"] == "toy_gap"]["value"]
    assert gaps.iloc[0] != gaps.iloc[1]

    again = evaluate([run], options())
    assert len(again.added) == 0 and again.skipped == 4
    assert len(read_results(run / "results.csv")) == 6

    # deterministic for a seed; another seed or another n is a new computation
    other = evaluate([run], options(), out=tmp_path / "other.csv")
    assert values(other.added) == values(summary.added)
    reseeded = evaluate([run], options(seed=4), out=tmp_path / "other.csv")
    assert len(reseeded.added) == 6
    assert values(reseeded.added) != values(summary.added)


def test_each_extractor_is_built_once_per_evaluation_not_per_checkpoint(tmp_path, monkeypatch):
    import ganbench.metrics.context as context

    built = []
    real_get = context.get_extractor
    monkeypatch.setattr(context, "get_extractor", lambda name, **kw: built.append(name) or real_get(name, **kw))
    run = make_run(tmp_path / "runA", kimgs=(1, 2, 3))
    summary = evaluate([run], options())
    assert len(summary.added) == 3 * 3 and built == ["toy-pixels"]  # Inception takes ~0.3 s, VGG16 ~0.8 s


def test_rerun_against_other_real_data_computes_instead_of_skipping(tmp_path):
    """Issue 15: the same checkpoint measured against other reals (or fewer of them) is another number, not a
    computation already done; a rerun with the same reals still skips."""
    run = make_run(tmp_path / "runA", kimgs=(1,))
    first = evaluate([run], options())
    assert len(first.added) == 3
    other = evaluate([run], options(real=ShapesDataset(n=48, resolution=16, seed=2)))
    fewer = evaluate([run], options(n_real=24))
    assert len(other.added) == 3 and len(fewer.added) == 3
    table = read_results(run / "results.csv")
    assert len(table) == 9 and sorted(set(table["n_real"])) == [24, 48] and table["dataset"].nunique() == 2
    assert len(evaluate([run], options(n_real=24)).added) == 0


def test_exception_after_first_metric_resumes_only_missing_rows(tmp_path, monkeypatch):
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    monkeypatch.setenv("TOY_FAIL", "1")
    with pytest.raises(RuntimeError, match="injected"):
        evaluate([run], options())
    partial = read_results(run / "results.csv")
    assert sorted(partial["metric"]) == ["toy_gap", "toy_spread"] and set(partial["kimg"]) == {1.0}
    monkeypatch.delenv("TOY_FAIL")
    resumed = evaluate([run], options())
    assert len(resumed.added) == 4 and resumed.skipped == 1
    full = evaluate([run], options(), out=tmp_path / "fresh.csv")
    assert values(read_results(run / "results.csv")) == values(full.added)


def test_killed_eval_resumes_only_missing_rows(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    script = (
        "import os, sys, time; sys.path.insert(0, %r)\n"
        "from orchestrator_helpers import register_toys; register_toys()\n"
        "from ganbench.metrics.base import METRICS\n"
        "cls = METRICS.get('toy-score'); orig = cls.compute\n"
        "def slow(self, ctx):\n"
        "    time.sleep(120)\n"
        "cls.compute = slow\n"
        "from ganbench.data.shapes import ShapesDataset\n"
        "from ganbench.evaluate import EvalOptions, evaluate\n"
        "evaluate([%r], EvalOptions(metrics=['toy-stat', 'toy-score'], real=ShapesDataset(n=48, resolution=16, seed=1),"
        " n=40, extractor='toy-pixels', seed=3, batch_size=16))\n" % (str(HERE), str(run)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = run / "results.csv"
    try:
        deadline = time.time() + 60
        while not results.is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert results.is_file(), proc.stderr.read().decode() if proc.poll() is not None else "no rows after 60 s"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert sorted(read_results(results)["metric"]) == ["toy_gap", "toy_spread"]
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    resumed = evaluate([run], options())
    assert len(resumed.added) == 4 and resumed.skipped == 1
    assert len(read_results(results)) == 6


def test_inapplicable_metric_is_reported_and_the_rest_computed(tmp_path):
    register_inapplicable()
    run = make_run(tmp_path / "runA", kimgs=(1,))
    summary = evaluate([run], options(metrics=["toy-w", "toy-score"]))
    assert list(summary.added["metric"]) == ["toy_score"]
    assert summary.not_computed == [("runA", "network-snapshot-000001.pt", "toy-w", "toy-w needs a W space; ToyG has none")]


def test_exact_kimg_and_training_data_come_from_metadata(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(0.512,), train={"data": "shapes:32"})   # file name says 000000
    assert find_checkpoints([run])[0].kimg == 0.0
    summary = evaluate([run], options(real=None, metrics=["toy-score"]))
    assert list(summary.added["kimg"]) == [0.512]
    assert "32" in summary.added["dataset"].iloc[0]          # the recorded training data was opened
    bare = make_run(tmp_path / "runB", kimgs=(1,))
    with pytest.raises(ConfigError, match="pass --real"):
        evaluate([bare], options(real=None, metrics=["toy-score"]))


def test_bad_inputs_are_config_errors(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    with pytest.raises(ConfigError, match="unknown metric 'nope'"):
        evaluate([run], options(metrics=["nope"]))
    with pytest.raises(ConfigError, match="bad parameters for metric 'toy-stat'"):
        evaluate([run], options(metric_params={"toy-stat": {"bogus": 1}}))
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate([tmp_path / "missing"], options())


def test_cli_eval(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    out = tmp_path / "res.csv"
    args = ["eval", str(run), "--metrics", "toy-stat,toy-score", "--n", "20", "--real", "shapes:32",
            "--extractor", "toy-pixels", "--out", str(out), "--batch-size", "10"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "added 6 rows" in r.output
    assert len(read_results(out)) == 6
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0 and "added 0 rows" in r.output
    r = CliRunner().invoke(app, args[:-4] + ["--param", "toy-stat.bogus=1"])
    assert r.exit_code == 2 and "bogus" in r.output and "toy-stat" in r.output
    r = CliRunner().invoke(app, args + ["--param", "toy-stat.scale=2"])   # new parameters: new rows
    assert r.exit_code == 0 and "added 4 rows" in r.output, r.output
    table = read_results(out)
    gap = table[(table["metric"] == "toy_gap") & (table["kimg"] == 1.0)].sort_values("params")
    assert gap["value"].iloc[1] == pytest.approx(2 * gap["value"].iloc[0], rel=1e-12)
    r = CliRunner().invoke(app, ["eval", str(tmp_path / "nothing"), "--real", "shapes"])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_real_family_and_metrics(tmp_path):
    """The real pieces: a StyleGAN2 `tiny` checkpoint, shapes-net, FID/KID/IS/PR; rows, determinism, rerun."""
    import torch

    import model_zoo
    from ganbench.checkpoint import save_checkpoint, snapshot_name

    run = tmp_path / "sg2"
    torch.manual_seed(0)
    spec = model_zoo.build("stylegan2", 32, preset="tiny")
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 1000}
    save_checkpoint(run / snapshot_name(1), state, {"arch": "stylegan2", "config": spec.config, "resolution": 32,
                                                    "kimg": 1.0})
    opts = EvalOptions(metrics=["fid", "kid", "is", "pr"], real="shapes:64", n=64, extractor="shapes-net", seed=0,
                       batch_size=32, metric_params={"kid": {"num_subsets": 10, "max_subset_size": 32}})
    first = evaluate([run], opts).added
    assert sorted(first["metric"]) == ["fid", "is_mean", "is_std", "kid_mean", "kid_std", "precision", "recall"]
    by = dict(zip(first["metric"], first["value"]))
    assert by["fid"] > 0 and 1.0 <= by["is_mean"] <= 4.0 and 0.0 <= by["precision"] <= 1.0
    assert set(first["extractor"]) == {"shapes-net"} and len(first["extractor_sha256"].iloc[0]) == 64
    assert json_params(first, "fid")["covariance"] == "biased"
    assert len(evaluate([run], opts).added) == 0
    again = evaluate([run], opts, out=tmp_path / "again.csv").added
    assert dict(zip(again["metric"], again["value"])) == by


def json_params(df: pd.DataFrame, metric: str) -> dict:
    import json

    return json.loads(df[df["metric"] == metric]["params"].iloc[0])
