"""Ordinary eval mistakes get one line and nothing written; settings that change the numbers are in the rows."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from typer.testing import CliRunner

import model_zoo
from ganbench.cli import app
from ganbench.data.shapes import ShapesDataset
from ganbench.errors import ConfigError
from ganbench.evaluate import EvalOptions, evaluate
from ganbench.metrics import get_metric
from ganbench.metrics.context import MetricContext
from ganbench.results import read_results

from orchestrator_helpers import make_run, register_inapplicable, register_toys


def options(**kw) -> EvalOptions:
    base = dict(metrics=["toy-score"], real=ShapesDataset(n=48, resolution=16, seed=1), n=40,
                extractor="toy-pixels", seed=3, batch_size=16, device="cpu")
    return EvalOptions(**{**base, **kw})


def test_a_conditional_generator_against_data_with_other_labels_is_one_line():
    """A 4-class generator scored against data with 3 label dims (or none) was a matrix-shape RuntimeError deep in
    the mapping network; now one ConfigError naming the data and both sizes, before any image is generated."""
    torch.manual_seed(0)
    G = model_zoo.build("stylegan2", 16, preset="tiny", c_dim=5).G.eval()   # shapes has 4 label dims
    ctx = MetricContext(generator=G, real="shapes:16", n_gen=8, extractor="shapes-net", cache_dir=False)
    with pytest.raises(ConfigError, match=r"conditional on 5 classes but the real data shapes has labels of "
                                          r"dimension 4"):
        ctx.gen_outputs()
    with pytest.raises(ConfigError, match="conditional on 5 classes"):
        get_metric("ppl_zend", n_gen=4).compute(ctx)
    ok = MetricContext(generator=model_zoo.build("stylegan2", 16, preset="tiny", c_dim=4).G.eval(),
                       real="shapes:16", n_gen=8, extractor="shapes-net", cache_dir=False)
    assert ok.gen_outputs()["features"].shape[0] == 8


def test_ppl_epsilon_must_be_a_step_between_0_and_1(tmp_path):
    """-p ppl_wend.epsilon=0 divided by zero: a NaN blamed on the network ('diverged'), or with --keep-going an
    empty row without the diverged flag. A bad step is a bad parameter, named, exit 2, before any work."""
    for bad in (0, 0.0, -1e-4, 1.5, float("nan")):
        with pytest.raises(ConfigError, match=r"bad parameter ppl_wend.epsilon"):
            get_metric("ppl_wend", epsilon=bad)
    assert get_metric("ppl_wend", epsilon=1e-4).epsilon == 1e-4
    run = make_run(tmp_path / "runA", kimgs=(1,))
    r = CliRunner().invoke(app, ["eval", str(run), "-m", "ppl_zend", "-p", "ppl_zend.epsilon=0", "--n", "4",
                                 "--real", "shapes:16", "--device", "cpu"])
    assert r.exit_code == 2 and "ppl_zend.epsilon=0" in r.output, r.output
    assert not (run / "results.csv").exists()


def test_nothing_measured_because_no_metric_applies_is_an_error(tmp_path):
    """`eval run -m eqt50k_int` on a StyleGAN2 run exited 0 having measured nothing: now one line (exit 2) saying why;
    with one applicable metric, the inapplicable one is the usual quiet '–'."""
    register_inapplicable()
    run = make_run(tmp_path / "runA", kimgs=(1,))
    with pytest.raises(ConfigError, match=r"nothing was measured: toy-w do\(es\) not apply .*needs a W space"):
        evaluate([run], options(metrics=["toy-w"]), out=tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()
    summary = evaluate([run], options(metrics=["toy-w", "toy-score"]), out=tmp_path / "r.csv")
    assert len(summary.added) == 1 and len(summary.not_computed) == 1
    again = evaluate([run], options(metrics=["toy-w", "toy-score"]), out=tmp_path / "r.csv")   # skipped, no error
    assert again.skipped == 1 and len(again.added) == 0


def test_a_batch_size_other_than_64_is_part_of_the_rows_identity(tmp_path):
    """Latents and noise are drawn per batch, so --batch-size 7 gives other images (FID 14.589 against 14.521 at
    64), yet a rerun with it skipped as if the rows were its own. A non-default size is now in `params`; rows at
    the default keep the params they always had."""
    register_toys()
    run = make_run(tmp_path / "runA", kimgs=(1,))
    out = tmp_path / "r.csv"
    evaluate([run], options(batch_size=64), out=out)
    evaluate([run], options(batch_size=64), out=out)
    rows = read_results(out)
    assert len(rows) == 1 and "batch_size" not in json.loads(rows["params"].iloc[0])
    small = evaluate([run], options(batch_size=7), out=out)
    assert len(small.added) == 1 and small.skipped == 0
    params = [json.loads(p) for p in read_results(out)["params"]]
    assert sorted(p.get("batch_size", 64) for p in params) == [7, 64]


def test_the_values_table_shows_the_recorded_kimg_for_inapplicable_cells(tmp_path):
    """The end-of-eval table took an inapplicable cell's kimg from the file name: kimg 0 showed blank (0 or NaN)
    and a snapshot named 000000 holding 0.512 kimg showed 0. It now shows what the checkpoint records."""
    from ganbench.cli.eval_cmd import _kimg_of

    register_inapplicable()
    run = make_run(tmp_path / "runA", kimgs=(0, 0.512))
    summary = evaluate([run / "network-snapshot-000000.pt"], options(metrics=["toy-w", "toy-score"]),
                       out=tmp_path / "r.csv")
    assert _kimg_of(summary, "runA", "network-snapshot-000000.pt") == 0.512
    summary.kimgs[("runA", "x.pt")] = 0.0
    assert _kimg_of(summary, "runA", "x.pt") == 0.0 and math.isnan(_kimg_of(summary, "runA", "unknown.pt"))


def test_another_folder_of_the_same_run_name_is_not_taken_for_done(tmp_path):
    """`eval p1/run1 --out shared.csv` then `eval p2/run1 --out shared.csv` (another run, same folder name) said
    'added 0 rows (already present)': p2's weights were never measured. Now one line naming both folders, the
    table unchanged; a run folder that was moved (its recorded folder gone) goes on as before."""
    register_toys()
    first = make_run(tmp_path / "p1" / "run1", kimgs=(1,))
    second = make_run(tmp_path / "p2" / "run1", kimgs=(1,), seed=5)
    shared = tmp_path / "shared.csv"
    evaluate([first], options(), out=shared)
    before = shared.read_bytes()
    with pytest.raises(ConfigError, match=r"already holds rows of run 'run1' from .*p1.*p2.*another folder"):
        evaluate([second], options(), out=shared)
    assert shared.read_bytes() == before
    moved = tmp_path / "p3" / "run1"
    moved.parent.mkdir()
    first.rename(moved)
    again = evaluate([moved], options(), out=shared)
    assert again.skipped == 1 and len(again.added) == 0


def test_n_real_with_a_statistics_file_is_refused_not_ignored(tmp_path):
    """--n-real 10 with --real-stats was silently ignored (the rows said n_real 200, the FID unchanged)."""
    import numpy as np

    rng = np.random.default_rng(0)
    feats = rng.normal(size=[50, 8])
    np.savez(tmp_path / "stats.npz", mu=feats.mean(0), sigma=np.cov(feats, rowvar=False))
    run = make_run(tmp_path / "runA", kimgs=(1,))
    with pytest.raises(ConfigError, match=r"--n-real 10 does not apply to .*stats.npz"):
        evaluate([run], options(real=None, real_stats=tmp_path / "stats.npz", n_real=10, metrics=["fid"]),
                 out=tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()


def test_n_real_above_the_data_size_is_refused_not_capped(tmp_path):
    """--n-real 500 against 48 real images was capped without a word (rows said n_real 48); `stats export` too.
    A metric's own n_real (NVlabs' fid50k on a smaller set) is still capped, as NVlabs caps it."""
    run = make_run(tmp_path / "runA", kimgs=(1,))
    with pytest.raises(ConfigError, match=r"--n-real 500, but the real data .* has 48 images"):
        evaluate([run], options(n_real=500), out=tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()
    assert len(evaluate([run], options(n_real=48), out=tmp_path / "r.csv").added) == 1
    r = CliRunner().invoke(app, ["stats", "export", "--real", "shapes:20", "-r", "32", "--n-real", "21",
                                 str(tmp_path / "s.npz")])
    assert r.exit_code == 2 and "--n-real 21, but the real data shapes:20 has 20 images" in r.output, r.output
    assert not (tmp_path / "s.npz").exists()
    ctx = MetricContext(generator=None, real=ShapesDataset(n=48, resolution=16), n_real=50000, cache_dir=False)
    assert ctx.num_real() == 48      # what fid50k's n_real=50000 meets on a smaller set


def test_the_values_table_keeps_whole_run_names(tmp_path):
    """In a log file (200 columns) a table with many metric columns cut long run names to `..._long_ex…`, so the
    runs of seed 0 and seed 1 could not be told apart."""
    import io

    import pandas as pd
    from rich.console import Console

    from ganbench.cli.eval_cmd import values_table
    from ganbench.evaluate import EvalSummary

    names = [f"stylegan2_tiny_shapes_long_experiment_name_seed{s}" for s in (0, 1)]
    rows = [{"run": run, "checkpoint": "network-snapshot-000001.pt", "kimg": 1.0, "metric": f"metric_{k}",
             "metric_group": f"metric_{k}", "n_samples": 10000, "value": 1.2345678, "flag": ""}
            for run in names for k in range(14)]
    summary = EvalSummary(added=pd.DataFrame(rows), skipped=0, outputs=[], metrics=[f"metric_{k}" for k in range(14)])
    out = io.StringIO()
    Console(file=out, width=200).print(values_table(summary))
    assert all(name in out.getvalue() for name in names), out.getvalue()


def test_statistics_of_another_resolution_are_one_line(tmp_path):
    """A statistics file records the size of the real images it came from; 64 px statistics against a 32 px
    generator gave a silently different FID (93.244 against 94.608)."""
    import numpy as np

    feats = np.random.default_rng(0).normal(size=[60, 48])
    stats = dict(mu=feats.mean(0), sigma=np.cov(feats, rowvar=False, bias=True), n=60)
    np.savez(tmp_path / "s32.npz", **stats, resolution=32)
    run = make_run(tmp_path / "runA", kimgs=(1,), resolution=16)
    from ganbench.errors import DataError

    with pytest.raises(DataError, match=r"s32.npz: statistics of 32px real images, but the images scored are 16px"):
        evaluate([run], options(real=None, real_stats=tmp_path / "s32.npz", metrics=["fid"]), out=tmp_path / "r.csv")
    assert not (tmp_path / "r.csv").exists()
    np.savez(tmp_path / "s16.npz", **stats, resolution=16)
    done = evaluate([run], options(real=None, real_stats=tmp_path / "s16.npz", metrics=["fid"]), out=tmp_path / "r.csv")
    assert len(done.added) == 1 and np.isfinite(done.added["value"]).all()


def test_a_preset_measured_with_fewer_images_than_its_name_says_is_a_warning(tmp_path):
    """`-m fid50k_full --n 100` wrote fid50k_full rows from 100 images without a word; the rows stay (n_samples says
    100, smoke suites rely on small presets) but eval warns that they are not comparable with published numbers."""
    samples = tmp_path / "samples"
    from ganbench.data import open_dataset
    from ganbench.data.export import export_dataset

    export_dataset(open_dataset("shapes:24", resolution=16, seed=1), samples)
    args = ["eval", str(samples), "--real", "shapes:40", "-m", "fid50k_full,fid", "--n", "20"]
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    said = " ".join(r.output.split())
    assert "warning: fid50k_full measured 20 generated images, not the 50k its name says" in said
    assert "warning: fid50k_full measured shapes-net features, not the inception features its published" in said
    assert said.count("warning:") == 2                                      # plain fid promises no count, no network
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b.csv"), "--json"])
    assert json.loads(r.stdout.strip().splitlines()[-1])["warnings"][0].startswith("fid50k_full measured 20 generated")
    # an image set's --n defaults to its size: 24 images, not 50k
    summary = evaluate([samples], EvalOptions(metrics=["fid50k_full"], real="shapes:40", extractor="shapes-net"),
                       out=tmp_path / "c.csv")
    assert summary.warnings == ["fid50k_full measured 24 generated images, not the 50k its name says: compare its "
                                "numbers only with rows of the same n_samples, not with published fid50k_full",
                                "fid50k_full measured shapes-net features, not the inception features its published "
                                "numbers use: compare its numbers only with rows of the same extractor (--extractor "
                                "inception to reproduce them)"]


def test_an_nvlabs_preset_names_the_feature_network_its_published_numbers_use():
    """fid50k_full, kid50k, is50k ran on the evaluation's extractor (shapes-net by default) without a word, while
    pr50k3 pins VGG16: a warning says so; measured with the published network, nothing is said."""
    from ganbench.evaluate import count_warnings
    from ganbench.metrics import get_metric

    def said(name, extractor):
        return count_warnings({name: get_metric(name)}, {name: extractor})

    for name in ("fid50k_full", "fid50k", "fid10k", "kid50k_full", "kid50k", "is50k"):
        assert said(name, "inception") == [] and said(name, "inception:mode=torch_fidelity") == []
        assert said(name, "shapes-net") == [f"{name} measured shapes-net features, not the inception features its "
                                            "published numbers use: compare its numbers only with rows of the same "
                                            "extractor (--extractor inception to reproduce them)"]
    assert said("pr50k3_full", "vgg16") == [] and said("pr50k3_full", "shapes-net") != []
    assert said("fid", "shapes-net") == said("kid", "shapes-net") == []


def test_colour_images_against_gray_real_data_is_a_warning(tmp_path):
    """Gray images are scored as RGB (repeated, as NVlabs does), so a colour generator or image set against gray
    reals gave a large FID without a word. Now one warning line per run; same channels: none."""
    from ganbench.data import open_dataset
    from ganbench.data.export import export_dataset

    export_dataset(open_dataset("shapes:24", resolution=16, seed=1), tmp_path / "samples")
    export_dataset(open_dataset(str(tmp_path / "samples"), channels=1), tmp_path / "gray")
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    for target, what in ((run, "a generator"), (tmp_path / "samples", "an image set")):
        summary = evaluate([target], options(real=str(tmp_path / "gray"), metrics=["fid"], extractor="shapes-net",
                                              n=20), out=tmp_path / "r.csv")
        assert summary.warnings == [f"{target.name} is {what} of 3-channel images but the real data "
                                    f"{tmp_path / 'gray'} has 1: both are scored as RGB (gray repeated), so the "
                                    f"distance includes colour against gray"]
    same = evaluate([tmp_path / "samples"], options(real=str(tmp_path / "samples"), metrics=["fid"],
                                                   extractor="shapes-net", n=20), out=tmp_path / "s.csv")
    assert same.warnings == []


def test_one_target_and_a_comma_separated_metric_string_are_read_as_meant(tmp_path):
    """evaluate("runA", EvalOptions(metrics="fid")) said 'r does not exist' and 'unknown metric 'f''."""
    run = make_run(tmp_path / "runA", kimgs=(1,))
    assert EvalOptions(metrics="toy-score, toy-stat").metrics == ["toy-score", "toy-stat"]
    for target in (str(run), run):
        summary = evaluate(target, options(metrics="toy-score"), out=tmp_path / "r.csv")
        assert summary.metrics == ["toy-score"] and len(summary.added) + summary.skipped == 1


def test_a_metric_measures_the_same_images_whatever_another_metric_asks_for():
    """FID of the first 50 images changed when a metric sharing the pass asked for 100 (33.14 against 33.12, same
    row identity): the last batch was drawn with n - start latents, so its noise and images depended on n."""
    torch.manual_seed(0)
    G = model_zoo.build("stylegan2", 16, preset="tiny").G.eval()
    with torch.no_grad():   # a trained network uses its noise inputs (strength 0 at initialisation)
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    feats = {}
    for n_ctx in (50, 100):
        ctx = MetricContext(generator=G, real="shapes:16", n_gen=n_ctx, extractor="shapes-net", batch_size=64,
                            cache_dir=False, device="cpu", prefetch=False)
        feats[n_ctx] = ctx.outputs("gen", "features", n=50)
    assert torch.equal(torch.as_tensor(feats[50]), torch.as_tensor(feats[100]))


def test_an_output_that_is_not_a_regular_file_is_refused_before_any_work(tmp_path, monkeypatch):
    """`--out /dev/null` computed every metric, then failed and left a `null.unsaved-*.csv` in /dev."""
    from ganbench.errors import OutputError

    run = make_run(tmp_path / "runA", kimgs=(1,))
    monkeypatch.setenv("TOY_FAIL", "1")            # toy-score raises if any metric work were started
    os.mkfifo(tmp_path / "pipe.csv")
    for out in (tmp_path / "pipe.csv", "/dev/null"):
        with pytest.raises(OutputError, match="not a regular file"):
            evaluate([run], options(), out=out)
    assert not list(tmp_path.glob("*unsaved*"))


def test_a_removed_table_file_whose_shards_remain_is_read_by_eval_as_by_every_reader(tmp_path):
    """After `rm res.csv`, check and report still read the rows from res.csv.shards/, but eval computed them again."""
    run = make_run(tmp_path / "runA", kimgs=(1,))
    evaluate([run], options(), out=tmp_path / "res.csv")
    (tmp_path / "res.csv").unlink()
    assert len(read_results(tmp_path / "res.csv")) == 1
    assert evaluate([run], options(), out=tmp_path / "res.csv").skipped == 1


def test_a_stray_snapshot_beside_run_folders_does_not_hide_them(tmp_path):
    """`eval many` with many/r1, many/r2 and one stray snapshot in many/ scored a run named 'many' and skipped r1
    and r2 without a word. An earlier run that train moved into replaced-<time>/ is not a run folder."""
    import shutil

    make_run(tmp_path / "many" / "r1", kimgs=(1,))
    make_run(tmp_path / "many" / "r2", kimgs=(1,))
    shutil.copy(tmp_path / "many" / "r1" / "network-snapshot-000001.pt", tmp_path / "many")
    with pytest.raises(ConfigError, match=r"many holds snapshots of its own \(network-snapshot-000001.pt\) and run "
                                          r"folders with snapshots \(r1, r2\)"):
        evaluate([tmp_path / "many"], options(), out=tmp_path / "r.csv")
    run = make_run(tmp_path / "run", kimgs=(1,))
    make_run(run / "replaced-20261204-101010", kimgs=(1,))
    assert len(evaluate([run], options(), out=tmp_path / "r.csv").added) == 1


def test_quiet_keeps_the_warnings_and_a_metric_that_did_not_apply_is_not_warned_about(tmp_path):
    """`eval -q` ('only errors and warnings') printed no warning at all, not even 'met NaN or inf' under --keep-going;
    and `-m fid,eqt50k_int --n 50` on a network without equivariance said eqt50k_int 'measured 50 images'."""
    from ganbench.data import open_dataset
    from ganbench.data.export import export_dataset

    samples = tmp_path / "samples"
    export_dataset(open_dataset("shapes:24", resolution=16, seed=1), samples)
    r = CliRunner().invoke(app, ["eval", str(samples), "--real", "shapes:40", "-m", "fid10k", "-q",
                                 "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0 and r.output.startswith("warning: fid10k measured 24 generated images"), r.output
    run = make_run(tmp_path / "runA", kimgs=(1,))
    summary = evaluate([run], options(metrics=["toy-score", "eqt50k_int"], n=20), out=tmp_path / "b.csv")
    assert summary.not_computed and summary.warnings == []
