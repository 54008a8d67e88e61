"""Reference statistics as files: `ganbench stats export`, `eval --real-stats / --real-features`, pytorch-fid /
clean-fid style mu/sigma files, and bad files (one line naming the file, exit code 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.data import open_dataset
from ganbench.data.export import export_dataset
from ganbench.results import read_results


@pytest.fixture
def sets(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    export_dataset(open_dataset("shapes:48", resolution=32, seed=1), tmp_path / "samples")
    export_dataset(open_dataset("shapes:48", resolution=32), tmp_path / "data")
    return tmp_path


def _run(*args) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _values(path) -> dict[str, float]:
    table = read_results(path)
    return dict(zip(table["metric"], table["value"]))


def test_export_writes_float64_moments_and_their_settings(sets):
    _run("stats", "export", "--real", sets / "data", sets / "st.npz")
    with np.load(sets / "st.npz", allow_pickle=False) as z:
        assert z["mu"].dtype == np.float64 and z["sigma"].dtype == np.float64
        assert z["mu"].shape == (256,) and z["sigma"].shape == (256, 256) and "features" not in z.files
        assert int(z["n"]) == 48 and str(z["extractor"]) == "shapes-net" and str(z["covariance"]) == "biased"
        assert len(str(z["extractor_sha256"])) == 64 and str(z["resize"])


def test_round_trip_real_stats_and_features_give_the_numbers_of_the_real_images(sets):
    _run("stats", "export", "--real", sets / "data", sets / "st.npz")
    _run("stats", "export", "--real", sets / "data", "--features", sets / "ft.npz")
    _run("eval", sets / "samples", "--real", sets / "data", "--metrics", "fid,kid,pr", "--out", sets / "a.csv")
    _run("eval", sets / "samples", "--real-stats", sets / "st.npz", "--metrics", "fid", "--out", sets / "b.csv")
    _run("eval", sets / "samples", "--real-features", sets / "ft.npz", "--metrics", "fid,kid,pr",
         "--out", sets / "c.csv")
    a, b, c = _values(sets / "a.csv"), _values(sets / "b.csv"), _values(sets / "c.csv")
    assert a["fid"] > 1.0
    assert b["fid"] == pytest.approx(a["fid"], rel=1e-6)
    assert c == pytest.approx(a, rel=1e-6, abs=1e-9)
    assert read_results(sets / "b.csv")["dataset"].iloc[0].startswith("stats-st-")


def test_a_metric_asking_for_fewer_reals_than_a_statistics_file_holds_is_refused(sets, monkeypatch):
    """A metric's own n_real (fid50k: 50000; here fid.n_real=20) was ignored against a statistics file, whose moments
    are those of all its images: `fid50k` against a 70k file gave fid50k_full's number under fid50k's name. A
    features file can be cut, and gives the number of the first 20 real images."""
    _run("stats", "export", "--real", sets / "data", sets / "st.npz")
    _run("stats", "export", "--real", sets / "data", "--features", sets / "ft.npz")
    from ganbench.metrics.context import MetricContext

    with monkeypatch.context() as m:    # before any work: no features are extracted (fid50k would make 50k images)
        m.setattr(MetricContext, "_ensure", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work started")))
        result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--real-stats", str(sets / "st.npz"), "-m",
                                          "fid", "-p", "fid.n_real=20", "--out", str(sets / "b.csv")])
    assert result.exit_code == 2 and "st.npz holds the statistics of 48 real images" in result.output, result.output
    assert "the 20 this metric asks for" in result.output and not (sets / "b.csv").exists()
    _run("eval", sets / "samples", "--real", sets / "data", "-m", "fid", "-p", "fid.n_real=20", "--out", sets / "a.csv")
    _run("eval", sets / "samples", "--real-features", sets / "ft.npz", "-m", "fid", "-p", "fid.n_real=20",
         "--out", sets / "c.csv")
    assert _values(sets / "c.csv")["fid"] == pytest.approx(_values(sets / "a.csv")["fid"], rel=1e-6)
    _run("eval", sets / "samples", "--real-stats", sets / "st.npz", "-m", "fid", "-p", "fid.n_real=100",
         "--out", sets / "d.csv")      # more than the file holds: all of them, as NVlabs caps n_real


def test_mirrored_export_gives_the_fid_of_eval_mirror(sets):
    """`stats export --mirror` holds the statistics of the reals plus their x-flips (2N), so a file made for a run
    trained with --mirror serves the FID `eval --mirror` computes from the images."""
    _run("stats", "export", "--real", sets / "data", "--mirror", sets / "st.npz")
    with np.load(sets / "st.npz", allow_pickle=False) as z:
        assert int(z["n"]) == 96
    _run("eval", sets / "samples", "--real", sets / "data", "--mirror", "-m", "fid", "--out", sets / "a.csv")
    _run("eval", sets / "samples", "--real-stats", sets / "st.npz", "-m", "fid", "--out", sets / "b.csv")
    _run("eval", sets / "samples", "--real", sets / "data", "-m", "fid", "--out", sets / "c.csv")
    a, b, c = _values(sets / "a.csv")["fid"], _values(sets / "b.csv")["fid"], _values(sets / "c.csv")["fid"]
    assert b == pytest.approx(a, rel=1e-6) and abs(a - c) > 1e-3 * c


def test_unbiased_export_serves_unbiased_fid_and_converts_for_the_biased_one(sets):
    _run("stats", "export", "--real", sets / "data", "--covariance", "unbiased", sets / "st.npz")
    for cov in ("biased", "unbiased"):
        _run("eval", sets / "samples", "--real", sets / "data", "--metrics", "fid", "-p", f"fid.covariance={cov}",
             "--out", sets / f"a-{cov}.csv")
        _run("eval", sets / "samples", "--real-stats", sets / "st.npz", "--metrics", "fid", "-p",
             f"fid.covariance={cov}", "--out", sets / f"b-{cov}.csv")
        assert _values(sets / f"b-{cov}.csv")["fid"] == pytest.approx(_values(sets / f"a-{cov}.csv")["fid"], rel=1e-6)


def test_a_pytorch_fid_style_file_is_accepted_and_marked_foreign(sets):
    """pytorch-fid's --save-stats writes only mu and sigma = np.cov (÷(N-1)) of its features."""
    from test_imagesets import reference_fid, shapes_net_features

    real = shapes_net_features(sets / "data")
    np.savez(sets / "pf.npz", mu=real.mean(0), sigma=np.cov(real, rowvar=False))
    _run("eval", sets / "samples", "--real-stats", sets / "pf.npz", "--metrics", "fid", "-p",
         "fid.covariance=unbiased", "--out", sets / "r.csv")
    row = read_results(sets / "r.csv").iloc[0]
    assert row["value"] == pytest.approx(reference_fid(shapes_net_features(sets / "samples"), real), rel=1e-5)
    assert row["dataset"].startswith("foreign-stats-pf-") and "unknown (foreign file)" in row["resize_mode"]
    assert np.isnan(row["n_real"]) and "real_covariance" not in row["params"]
    # the default (biased) FID cannot rescale a file of unknown N: its rows said "biased" for an unbiased real side
    _run("eval", sets / "samples", "--real-stats", sets / "pf.npz", "--metrics", "fid", "--out", sets / "d.csv")
    params = json.loads(read_results(sets / "d.csv").iloc[0]["params"])
    assert params["covariance"] == "biased" and params["real_covariance"].startswith("unbiased (as in the file")


def _bad_files(sets):
    _run("stats", "export", "--real", sets / "data", sets / "st.npz")
    z = dict(np.load(sets / "st.npz", allow_pickle=False))
    asym, nan = z["sigma"].copy(), z["sigma"].copy()
    asym[0, 1] += 1.0
    nan[3, 3] = np.nan
    w, v = np.linalg.eigh(z["sigma"])
    npsd = z["sigma"] - 2 * w[-1] * np.outer(v[:, -1], v[:, -1])   # its largest eigenvalue flipped below 0
    return {
        "dim.npz": ({"mu": z["mu"][:10], "sigma": z["sigma"][:10, :10]}, "feature dimension 10"),
        "asym.npz": ({**z, "sigma": asym}, "not symmetric"),
        "nan.npz": ({**z, "sigma": nan}, "NaN or inf"),
        "ext.npz": ({**z, "extractor": np.array("inception")}, "extractor 'inception'"),
        "nosigma.npz": ({"mu": z["mu"]}, "no sigma"),
        # FID stopped with "the first covariance is not positive semi-definite", naming no file
        "npsd.npz": ({**z, "sigma": npsd}, "sigma is not positive semi-definite"),
    }


def test_bad_statistics_files_stop_with_one_line_naming_the_file(sets):
    for name, (arrays, why) in _bad_files(sets).items():
        np.savez(sets / name, **arrays)
        result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--real-stats", str(sets / name),
                                          "--metrics", "fid", "--out", str(sets / "r.csv")])
        lines = result.output.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1, (name, result.output)
        assert name in lines[0] and why in lines[0], (name, lines[0])
    assert not (sets / "r.csv").exists()
    result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--real-stats", str(sets / "data"),
                                      "--metrics", "fid", "--out", str(sets / "r.csv")])
    assert result.exit_code == 2 and "data: is a folder" in result.output   # was "statistics file not found"
    assert not (sets / "r.csv").exists()


def test_kid_against_a_moments_only_file_asks_for_features_before_any_work(sets):
    _run("stats", "export", "--real", sets / "data", sets / "st.npz")
    result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--real-stats", str(sets / "st.npz"),
                                      "--metrics", "fid,kid", "--out", str(sets / "r.csv")])
    assert result.exit_code == 2 and "--real-features" in result.output and "st.npz" in result.output
    assert not (sets / "r.csv").exists()


def test_odd_statistics_files_are_one_line_or_read_as_recorded(tmp_path):
    """Found by a hunt: a .npy given as --real-stats was a TypeError; `n` of 'abc' or NaN a ValueError, and 0, -5
    or 200.7 became n_real 0/-5/200; a file that records covariance='biased' but no extractor was rescaled as if
    it were ÷(N-1); an extractor stored as bytes read as "b'shapes-net'"."""
    from ganbench.errors import DataError
    from ganbench.metrics.stats_files import load_real_file

    rng = np.random.default_rng(0)
    feats = rng.normal(size=[40, 6])
    mu, biased = feats.mean(0), np.cov(feats, rowvar=False, bias=True)
    np.save(tmp_path / "s.npy", mu)
    with pytest.raises(DataError, match=r"s.npy: not an .npz file"):
        load_real_file(tmp_path / "s.npy")
    for bad in (np.array("abc"), np.array(np.nan), np.array(0), np.array(-5), np.array(200.7), np.arange(3)):
        np.savez(tmp_path / "n.npz", mu=mu, sigma=biased, n=bad)
        with pytest.raises(DataError, match=r"n.npz: n must be the positive whole number of real images"):
            load_real_file(tmp_path / "n.npz")
    np.savez(tmp_path / "n.npz", mu=mu, sigma=biased, n=np.array(40.0))
    assert load_real_file(tmp_path / "n.npz").n == 40
    np.savez(tmp_path / "cov.npz", mu=mu, sigma=biased, n=40, covariance="biased")
    assert load_real_file(tmp_path / "cov.npz").moments.covariance == "biased"
    np.savez(tmp_path / "bare.npz", mu=mu, sigma=biased)      # pytorch-fid / clean-fid: np.cov, ÷(N-1)
    assert load_real_file(tmp_path / "bare.npz").moments.covariance == "unbiased"
    np.savez(tmp_path / "b.npz", mu=mu, sigma=biased, n=40, extractor=np.array(b"shapes-net"))
    assert load_real_file(tmp_path / "b.npz").extractor == "shapes-net"


def test_export_keeps_an_existing_file_unless_told_to_overwrite(sets):
    """`stats export` replaced an existing .npz (published statistics, say) without being asked."""
    _run("stats", "export", "--real", sets / "data", sets / "st.npz")
    before = (sets / "st.npz").read_bytes()
    result = CliRunner().invoke(app, ["stats", "export", "--real", "shapes:20", "-r", "32", str(sets / "st.npz")])
    assert result.exit_code == 2 and "st.npz already exists" in result.output and "--overwrite" in result.output
    assert (sets / "st.npz").read_bytes() == before
    _run("stats", "export", "--real", "shapes:20", "-r", "32", "--overwrite", sets / "st.npz")
    with np.load(sets / "st.npz", allow_pickle=False) as z:
        assert int(z["n"]) == 20


def test_a_file_of_another_extractor_is_refused_before_that_extractor_is_built(sets):
    """`--real-stats shapes-net.npz -e inception` first fetched Inception's weights (here, offline: a download
    error instead of the refusal), and only then refused the file."""
    _run("stats", "export", "--real", sets / "data", sets / "st.npz")
    result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--real-stats", str(sets / "st.npz"),
                                      "-e", "inception", "--metrics", "fid", "--out", str(sets / "r.csv")])
    assert result.exit_code == 2 and "st.npz: statistics were computed with extractor 'shapes-net', not 'inception'" \
        in " ".join(result.output.split()), result.output
