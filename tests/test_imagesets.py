"""Sets of images as evaluation targets: folder / zip / npz of generated images, folder-vs-folder FID,
content-hash row keys, non-square images, generator-only metrics, plain `z -> images` functions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.data import open_dataset
from ganbench.data.export import export_dataset
from ganbench.results import read_results

VOLATILE = ["run_dir", "timestamp", "wall_s"]   # where and when a row was made, not what it measured


@pytest.fixture
def sets(tmp_path, monkeypatch):
    """48 generated-like images (shapes, seed 1) as a folder, a zip and an npz, and 48 reals (seed 0)."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    fakes = open_dataset("shapes:48", resolution=32, seed=1)
    export_dataset(fakes, tmp_path / "samples")
    export_dataset(fakes, tmp_path / "zipped" / "samples.zip")
    (tmp_path / "arrays").mkdir()
    np.savez(tmp_path / "arrays" / "samples.npz", images=np.stack([fakes.image(i) for i in range(len(fakes))]))
    export_dataset(open_dataset("shapes:48", resolution=32), tmp_path / "data")
    return tmp_path


def _eval(*args: str) -> str:
    result = CliRunner().invoke(app, ["eval", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.output


def _rows(path) -> pd.DataFrame:
    return read_results(path).drop(columns=VOLATILE).sort_values("metric", ignore_index=True)


def test_folder_zip_and_npz_of_the_same_images_give_identical_rows(sets):
    for target, out in (("samples", "a.csv"), ("zipped/samples.zip", "b.csv"), ("arrays/samples.npz", "c.csv")):
        _eval(sets / target, "--real", sets / "data", "--metrics", "fid,kid", "--out", sets / out)
    a, b, c = (_rows(sets / name) for name in ("a.csv", "b.csv", "c.csv"))
    assert len(a) == 3 and set(a["metric"]) == {"fid", "kid_mean", "kid_std"}
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert set(a["run"]) == {"samples"} and a["checkpoint"].iloc[0].startswith("images-")
    assert a["kimg"].isna().all() and (a["n_samples"] == 48).all()   # --n defaults to the whole set


def reference_fid(g: np.ndarray, r: np.ndarray) -> float:
    """FID as pytorch-fid / clean-fid compute it: np.cov (÷(N-1)) and scipy's sqrtm of the product."""
    from scipy import linalg

    mu1, mu2, s1, s2 = g.mean(0), r.mean(0), np.cov(g, rowvar=False), np.cov(r, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(np.real(covmean)))


def shapes_net_features(folder) -> np.ndarray:
    """shapes-net features of a folder's images, through the public extractor API (no MetricContext)."""
    from ganbench.features import get_extractor

    d = open_dataset(str(folder))
    images = torch.stack([torch.from_numpy(d.image(i)) for i in range(len(d))])
    return get_extractor("shapes-net").extract(images)["features"].double().numpy()


def test_folder_vs_folder_fid_equals_a_scipy_reference(sets):
    _eval(sets / "samples", "--real", sets / "data", "--metrics", "fid", "-p", "fid.covariance=unbiased",
          "--out", sets / "r.csv")
    value = float(read_results(sets / "r.csv")["value"].iloc[0])
    ref = reference_fid(shapes_net_features(sets / "samples"), shapes_net_features(sets / "data"))
    # 48 samples in 256 dimensions: both covariances are singular, where scipy's sqrtm (what pytorch-fid and
    # clean-fid use) is accurate to about 1e-6 relative; the features themselves agree to float32 rounding.
    assert value == pytest.approx(ref, rel=1e-5)   # measured: 1.1e-6 (scipy's sqrtm of a singular product)


def test_changing_one_image_gives_new_rows_and_an_unchanged_set_is_skipped(sets):
    out = sets / "results.csv"
    _eval(sets / "samples", "--real", sets / "data", "--metrics", "fid", "--out", out)
    again = _eval(sets / "samples", "--real", sets / "data", "--metrics", "fid", "--out", out)
    assert "added 0 rows (1 metric computations already present)" in again
    first = next(p for p in sorted((sets / "samples").rglob("*.png")))
    pixels = np.asarray(Image.open(first)).copy()
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(first)
    _eval(sets / "samples", "--real", sets / "data", "--metrics", "fid", "--out", out)
    table = read_results(out)
    assert len(table) == 2 and table["checkpoint"].nunique() == 2 and set(table["run"]) == {"samples"}


def test_non_square_images_are_center_cropped_and_resized_like_real_data(tmp_path, monkeypatch):
    """40x24 images: resolution 16 (the largest power of two within 24), centre crop, Lanczos, as --real does."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    from ganbench.data.preprocess import Geometry, fit

    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=(12, 24, 40, 3), dtype=np.uint8)
    (tmp_path / "wide").mkdir()
    for i, img in enumerate(raw):
        Image.fromarray(img).save(tmp_path / "wide" / f"{i:02d}.png")
    fitted = np.stack([fit(img, 16, Geometry()) for img in raw])        # what --real's rule makes of them
    assert fitted.shape == (12, 16, 16, 3)
    np.savez(tmp_path / "wide.npz", images=fitted)
    export_dataset(open_dataset("shapes:12", resolution=16), tmp_path / "data")
    for target, out in (("wide", "a.csv"), ("wide.npz", "b.csv")):
        _eval(tmp_path / target, "--real", tmp_path / "data", "--metrics", "fid", "--out", tmp_path / out)
    a, b = read_results(tmp_path / "a.csv"), read_results(tmp_path / "b.csv")
    assert a["value"].iloc[0] == b["value"].iloc[0] and a["checkpoint"].iloc[0] == b["checkpoint"].iloc[0]


def test_an_image_set_that_is_cropped_and_resized_says_so(tmp_path, monkeypatch):
    """48x48 or 40x24 sample images became 32x32 or 16x16 before every metric with no message, while clean-fid and
    torch-fidelity resize the same files straight to 299: one warning line per set; a 16x16 set gets none."""
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "big.npz", images=rng.integers(0, 256, size=(12, 48, 48, 3), dtype=np.uint8))
    (tmp_path / "wide").mkdir()
    for i, img in enumerate(rng.integers(0, 256, size=(12, 24, 40, 3), dtype=np.uint8)):
        Image.fromarray(img).save(tmp_path / "wide" / f"{i:02d}.png")
    np.savez(tmp_path / "fit.npz", images=rng.integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8))
    for target, real, said in (("big.npz", "shapes:12", "big: its 48x48 images are resized to "
                                "32x32 px"), ("wide", "shapes:12", "wide: its 40x24 images are center-cropped and "
                                "resized to 16x16 px"), ("fit.npz", "shapes:12", None)):
        out = " ".join(_eval(tmp_path / target, "--real", real, "--metrics", "fid", "--out",
                             tmp_path / f"{target}.csv").split())
        if said:
            assert f"warning: {said}" in out and "resize them straight to 299 px" in out, out
            again = " ".join(_eval(tmp_path / target, "--real", real, "--metrics", "fid", "--out",
                                   tmp_path / f"{target}.csv").split())
            assert "already present" in again and f"warning: {said}" in again, again   # also when nothing is new
        else:
            assert "warning" not in out, out


def test_generator_metrics_are_not_applicable_to_an_image_set(sets):
    out = _eval(sets / "samples", "--real", sets / "data", "--metrics", "fid,ppl_wend", "--out", sets / "r.csv")
    assert "not applicable (shown as –): ppl_wend for samples" in out
    assert list(read_results(sets / "r.csv")["metric"]) == ["fid"]
    result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--real", str(sets / "data"),
                                      "--metrics", "ppl_wend,eqt50k_int", "--out", str(sets / "r2.csv")])
    assert result.exit_code == 2 and "need(s) a generator network" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (sets / "r2.csv").exists()


def test_an_image_set_without_real_data_is_one_line_naming_it(sets):
    result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--metrics", "fid", "--out", str(sets / "r.csv")])
    assert result.exit_code == 2 and "samples is a set of images" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_image_set_rows_sit_in_the_leaderboard_and_check(sets):
    out = sets / "results.csv"
    _eval(sets / "samples", "--real", sets / "data", "--metrics", "fid,kid", "--out", out)
    report = CliRunner().invoke(app, ["report", str(out), "--out", str(sets / "rep")])
    assert report.exit_code == 0, report.output
    board = pd.read_csv(sets / "rep" / "leaderboard.csv")
    assert list(board["run"]) == ["samples"] and board["kimg"].isna().all()
    assert "samples" in (sets / "rep" / "leaderboard.html").read_text()
    base = CliRunner().invoke(app, ["check", str(out), "--baseline", str(sets / "base.csv"), "--update-baseline"])
    assert base.exit_code == 0, base.output
    check = CliRunner().invoke(app, ["check", str(out), "--baseline", str(sets / "base.csv")])
    assert check.exit_code == 0, check.output


def test_a_plain_function_of_z_is_measured_like_a_generator():
    """compute() on fn(z) equals compute() on the images fn hands out, float or uint8, for the same n."""
    from ganbench.metrics import compute

    real = open_dataset("shapes:48", resolution=32)
    fakes = open_dataset("shapes:48", resolution=32, seed=1)
    images = torch.stack([torch.from_numpy(fakes.image(i)) for i in range(48)])
    handed = {"float": 0, "uint8": 0}

    def make(kind):
        def fn(z):
            start = handed[kind]
            handed[kind] += z.shape[0]
            batch = images[start:start + z.shape[0]]
            return batch if kind == "uint8" else batch.float() / 127.5 - 1.0
        return fn

    want = compute(["fid", "kid"], images, real=real, cache_dir=False)
    got_u8 = compute(["fid", "kid"], make("uint8"), real=real, n=48, z_dim=4, batch_size=16, cache_dir=False)
    got_f = compute(["fid", "kid"], make("float"), real=real, n=48, z_dim=4, batch_size=16, cache_dir=False)
    assert got_u8 == pytest.approx(want, rel=1e-9, abs=1e-12)
    assert got_f == pytest.approx(want, rel=1e-9, abs=1e-12)   # (x/127.5-1)*127.5+128 truncates back to x


def test_a_run_folder_before_its_first_snapshot_is_not_an_image_set(sets):
    """A run that has ticked (stats.jsonl, fakes grids) but saved no snapshot yet: 'no snapshot', not its grids."""
    run = sets / "run"
    run.mkdir()
    (run / "stats.jsonl").write_text("")
    Image.new("RGB", (64, 64)).save(run / "fakes000000.png")
    result = CliRunner().invoke(app, ["eval", str(run), "--real", str(sets / "data"), "--metrics", "fid",
                                      "--out", str(sets / "r.csv")])
    assert result.exit_code == 2 and "no network-snapshot" in result.output, result.output
    assert not (sets / "r.csv").exists()


def test_a_seed_that_changes_nothing_on_an_image_set_adds_no_repeat(sets):
    """The first n images of a set are scored whatever --seed says, so seeds 0..4 gave five identical FIDs, later
    read as five repeats with std 0. A metric marked `seed_free_on_images` records seed 0 and a rerun with another
    seed finds it done; SWD, which draws its patches and directions from the seed, still gets a row per seed."""
    from ganbench.metrics import METRICS

    names = "fid,kid,is,pr,swd,ms_ssim"
    for seed in (0, 1):
        _eval(sets / "samples", "--real", sets / "data", "--metrics", names, "--seed", seed,
              "--out", sets / f"s{seed}.csv")
    a, b = (read_results(sets / f"s{s}.csv").set_index("metric") for s in (0, 1))
    for name in names.split(","):
        keys = [k for k in a.index if a.loc[k, "metric_group"] == name]
        free = METRICS.get(name).seed_free_on_images
        assert keys and (a.loc[keys, "value"].tolist() == b.loc[keys, "value"].tolist()) == free, name   # the claim
        assert set(b.loc[keys, "seed"]) == {0 if free else 1}, name
    out = _eval(sets / "samples", "--real", sets / "data", "--metrics", names, "--seed", 1, "--out", sets / "s0.csv")
    table = read_results(sets / "s0.csv")
    assert "5 metric computations already present" in " ".join(out.split())
    assert table.groupby("metric_group")["seed"].nunique().to_dict() == {n: 1 + (n == "swd") for n in names.split(",")}


def test_n_above_an_image_sets_size_names_the_set_and_the_option(sets):
    """`--n 100` on a 48-image set said 'n_gen=100 but only 48 generated images were given', naming neither."""
    result = CliRunner().invoke(app, ["eval", str(sets / "samples"), "--real", str(sets / "data"), "--metrics", "fid",
                                      "--n", "100", "--out", str(sets / "r.csv")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "--n 100, but the image set" in said and "samples has 48 images" in said, said
    assert not (sets / "r.csv").exists()
