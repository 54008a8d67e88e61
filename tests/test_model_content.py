"""Rows record which model they measured (`fingerprint`), so a name never stands for two models: a snapshot retrained
under its old name is measured again and its old rows give way; two runs of one name are refused even after one
folder is gone; an image set keeps only its newest images' rows, for every metric."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from ganbench.checkpoint import file_fingerprint
from ganbench.data import open_dataset
from ganbench.data.export import export_dataset
from ganbench.data.shapes import ShapesDataset
from ganbench.errors import ConfigError
from ganbench.evaluate import EvalOptions, evaluate
from ganbench.results import read_many, read_results, repeat_groups, write_results

from orchestrator_helpers import make_run


def options(**kw) -> EvalOptions:
    base = dict(metrics=["toy-score"], real=ShapesDataset(n=48, resolution=16, seed=1), n=40,
                extractor="toy-pixels", seed=3, batch_size=16, device="cpu")
    return EvalOptions(**{**base, **kw})


def test_the_fingerprint_reads_a_few_mb_and_tells_a_retrained_file_apart(tmp_path):
    a = make_run(tmp_path / "a", kimgs=(1,), seed=0) / "network-snapshot-000001.pt"
    b = make_run(tmp_path / "b", kimgs=(1,), seed=7) / "network-snapshot-000001.pt"
    c = tmp_path / "c.pt"
    shutil.copy(a, c)
    assert file_fingerprint(a) == file_fingerprint(c) != file_fingerprint(b)
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 40000)                       # 10 MB: sampled, not read whole
    before = file_fingerprint(big)
    data = bytearray(big.read_bytes())
    data[-10] ^= 1                                                   # the tail (a zip's directory) is always read
    big.write_bytes(bytes(data))
    assert file_fingerprint(big) != before and len(before) == 16


def test_a_snapshot_retrained_under_its_name_is_measured_again_and_its_old_rows_give_way(tmp_path):
    """A new run in the same folder evaluated into a shared table: eval said '2 metric computations already
    present' and report/check kept the old model's numbers."""
    run = tmp_path / "run1"
    make_run(run, kimgs=(1,), seed=0)
    central = tmp_path / "central.csv"
    for seed in (3, 4):                                                # two eval seeds of the first model
        evaluate([run], options(seed=seed), out=central)
    make_run(run, kimgs=(1,), seed=7)                                  # retrained: same names, other weights
    again = evaluate([run], options(seed=3), out=central)
    assert again.skipped == 0 and len(again.added) == 1
    fresh = evaluate([run], options(seed=3), out=tmp_path / "fresh.csv").added["value"].iloc[0]
    groups = repeat_groups(read_results(central))
    assert len(groups) == 1 and groups["count"].iloc[0] == 1          # seed 4 of the old model is not averaged in
    assert groups["mean"].iloc[0] == pytest.approx(fresh)
    assert evaluate([run], options(seed=3), out=central).skipped == 1  # and now it is done


def test_rows_written_before_fingerprints_count_as_done(tmp_path):
    run = make_run(tmp_path / "run1", kimgs=(1,))
    evaluate([run], options(), out=tmp_path / "r.csv")
    table = read_results(tmp_path / "r.csv").assign(fingerprint="")
    shutil.rmtree(tmp_path / "r.csv.shards")
    write_results(tmp_path / "r.csv", table)
    assert evaluate([run], options(), out=tmp_path / "r.csv").skipped == 1


def test_two_runs_of_one_name_are_refused_also_after_one_folder_is_gone(tmp_path):
    """expA/sg2 and expB/sg2 evaluated into archived tables: once expA was deleted, report averaged the two
    models as '2 seeds'."""
    for exp, seed in (("expA", 0), ("expB", 5)):
        run = make_run(tmp_path / exp / "sg2", kimgs=(1,), seed=seed)
        evaluate([run], options(seed=seed), out=tmp_path / "arch" / f"{exp}.csv")
    shutil.rmtree(tmp_path / "expA")
    table = read_many([tmp_path / "arch" / "expA.csv", tmp_path / "arch" / "expB.csv"])
    with pytest.raises(ConfigError, match=r"run 'sg2' \(snapshot network-snapshot-000001.pt\) has rows of different "
                                          r"models from .*expA/sg2 and .*expB/sg2: two runs share a name"):
        repeat_groups(table)


def test_an_image_set_keeps_its_newest_images_rows_for_every_metric(tmp_path):
    """FID of the old images and KID of the new ones shared the set's leaderboard row."""
    samples = tmp_path / "s" / "set"
    opts = dict(real="shapes:40", extractor="shapes-net", n=None)
    export_dataset(open_dataset("shapes:24", resolution=16, seed=1), samples)
    evaluate([samples], options(metrics=["fid"], **opts), out=tmp_path / "r.csv")
    export_dataset(open_dataset("shapes:24", resolution=16, seed=2), samples, overwrite=True)
    evaluate([samples], options(metrics=["kid"], **opts), out=tmp_path / "r.csv")
    groups = repeat_groups(read_results(tmp_path / "r.csv"))
    assert set(groups["metric"]) == {"kid_mean", "kid_std"} and groups["checkpoint"].nunique() == 1


def test_a_run_name_shared_by_a_network_run_and_an_image_set_is_refused(tmp_path):
    run = make_run(tmp_path / "expB" / "sg2", kimgs=(1,))
    evaluate([run], options(), out=tmp_path / "a.csv")
    export_dataset(open_dataset("shapes:24", resolution=16, seed=5), tmp_path / "samples" / "sg2")
    evaluate([tmp_path / "samples" / "sg2"], options(metrics=["fid"], real="shapes:40", extractor="shapes-net",
                                                     n=None), out=tmp_path / "b.csv")
    table = read_many([tmp_path / "a.csv", tmp_path / "b.csv"])
    with pytest.raises(ConfigError, match=r"run name 'sg2' has rows of a network run and of an image set"):
        repeat_groups(table)
    assert isinstance(table, pd.DataFrame)


def test_eval_refuses_before_any_work_to_write_rows_every_reader_would_refuse(tmp_path):
    """eval wrote these rows (exit 0), then report, check and bench refused the table for good."""
    for exp, seed in (("expA", 1), ("expB", 2)):
        export_dataset(open_dataset("shapes:24", resolution=16, seed=seed), tmp_path / exp / "samples")
    sets = options(metrics=["fid"], real="shapes:40", extractor="shapes-net", n=None)
    with pytest.raises(ConfigError, match=r"run 'samples' \(image set\) has rows of different models from"):
        evaluate([tmp_path / "expA" / "samples", tmp_path / "expB" / "samples"], sets, out=tmp_path / "sets.csv")
    assert not (tmp_path / "sets.csv").exists()
    run = make_run(tmp_path / "exp2" / "sg2", kimgs=(1,))
    export_dataset(open_dataset("shapes:24", resolution=16, seed=3), tmp_path / "other" / "sg2")
    evaluate([run], options(), out=tmp_path / "mixed.csv")
    with pytest.raises(ConfigError, match=r"mixed.csv: run name 'sg2' has rows of a network run and of an image set"):
        evaluate([tmp_path / "other" / "sg2"], sets, out=tmp_path / "mixed.csv")
    old = make_run(tmp_path / "exp1" / "sg3", kimgs=(1,), seed=0)
    evaluate([old], options(), out=tmp_path / "all.csv")
    old.rename(tmp_path / "exp1" / "sg3-archived")                       # its folder is gone, its rows stay
    new = make_run(tmp_path / "exp3" / "sg3", kimgs=(1,), seed=9)
    with pytest.raises(ConfigError, match=r"run 'sg3' \(snapshot network-snapshot-000001.pt\) has rows of different"):
        evaluate([new], options(), out=tmp_path / "all.csv")
    assert len(read_results(tmp_path / "all.csv")) == 1


def test_a_snapshot_moved_away_during_the_evaluation_keeps_the_rows_of_what_was_measured(tmp_path):
    """The fingerprint was taken when the rows were written: a snapshot moved aside meanwhile (train --no-resume)
    was a FileNotFoundError traceback and the computed rows were lost."""
    from ganbench.evaluate import EvalProgress

    run = make_run(tmp_path / "run", kimgs=(1,))
    snap = run / "network-snapshot-000001.pt"
    before = file_fingerprint(snap)

    class MoveAside(EvalProgress):
        def working(self, description, done):
            if snap.exists() and "toy-score" in description:
                snap.rename(tmp_path / "aside.pt")

    summary = evaluate([run], options(), out=tmp_path / "r.csv", progress=MoveAside())
    assert len(summary.added) == 1 and summary.added["fingerprint"].iloc[0] == before
