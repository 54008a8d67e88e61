"""FID: the Fréchet distance against hand-computed values, conventions, and MetricContext behaviour."""

import numpy as np
import pytest
import torch

from ganbench.data.shapes import SHAPE_CLASSES, ShapesDataset
from ganbench.errors import ConfigError
from ganbench.metrics import compute, get_metric
from ganbench.metrics.context import MetricContext, to_uint8
from ganbench.metrics.fid import FrechetError, frechet_distance


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_diagonal_gaussians_match_hand_computation():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    v1, v2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])
    # |mu1-mu2|^2 = 1 + 0 + 6.25; sum(v1 + v2 - 2 sqrt(v1 v2)) = (1+9-6) + (4+1-4) + (0.25+0.25-0.5)
    expected = 7.25 + 4.0 + 1.0 + 0.0
    assert frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, abs=1e-9)
    assert frechet_distance(mu2, np.diag(v2), mu1, np.diag(v1)) == pytest.approx(expected, abs=1e-9)


def test_full_covariance_matches_closed_form_for_commuting_matrices():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    e1, e2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    s1, s2 = q @ np.diag(e1) @ q.T, q @ np.diag(e2) @ q.T
    expected = np.sum(e1 + e2 - 2 * np.sqrt(e1 * e2))
    assert frechet_distance(np.zeros(5), s1, np.zeros(5), s2) == pytest.approx(expected, rel=1e-9)


def test_large_imaginary_part_is_an_error():
    with pytest.raises(FrechetError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([1.0, 1.0]), np.zeros(2), np.diag([-1.0, 1.0]))


@pytest.mark.parametrize("dim,n", [(64, 500), (256, 2000)])
def test_eigen_route_equals_scipy_sqrtm_on_full_rank_covariances(dim, n):
    """Independent reference: scipy's Schur-based sqrtm of the product, as pytorch-fid / NVlabs compute it."""
    import scipy.linalg

    rng = np.random.default_rng(dim)
    a = rng.normal(size=(n, dim))
    b = rng.normal(size=(n, dim)) @ rng.normal(0, 0.3, size=(dim, dim)) + 0.5 * a
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    mu1, mu2 = a.mean(0), b.mean(0)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    reference = (mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(reference, rel=1e-10)


def test_fewer_samples_than_dimensions_is_finite_and_symmetric():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 50)), rng.normal(0.1, 1.2, size=(30, 50))   # rank 19 and 29 covariances
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    d12 = frechet_distance(a.mean(0), s1, b.mean(0), s2)
    d21 = frechet_distance(b.mean(0), s2, a.mean(0), s1)
    # square roots of the ~30 round-off eigenvalues (~1e-15) that should be 0 move the trace by ~1e-8 relative;
    # scipy's sqrtm disagrees with itself across the two orders by the same order of magnitude
    assert np.isfinite(d12) and d12 > 0 and d12 == pytest.approx(d21, rel=1e-7)
    import scipy.linalg
    reference = (a.mean(0) - b.mean(0)) @ (a.mean(0) - b.mean(0)) + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real)
    assert d12 == pytest.approx(reference, rel=1e-7)
    assert frechet_distance(a.mean(0), s1, a.mean(0), s1) == pytest.approx(0.0, abs=1e-5)   # same round-off


def test_non_finite_moments_are_named():
    s = np.eye(3)
    with pytest.raises(FrechetError, match="covariance 2 has non-finite"):
        frechet_distance(np.zeros(3), s, np.zeros(3), np.full((3, 3), np.nan))
    with pytest.raises(FrechetError, match="mean 1 has non-finite"):
        frechet_distance(np.array([np.inf, 0, 0]), s, np.zeros(3), s)


def test_singular_covariances_stay_finite():
    a = np.zeros((3, 3))
    assert frechet_distance(np.ones(3), a, np.zeros(3), a) == pytest.approx(3.0)


def _images(ds, n):
    return torch.from_numpy(np.stack([ds.image(i) for i in range(n)]))


def test_fid_of_set_against_itself_is_zero():
    real = ShapesDataset(n=300, seed=3)
    value = compute("fid", _images(real, 300), real=real)["fid"]
    assert abs(value) < 1e-6


def test_covariance_conventions_and_streamed_moments():
    real = ShapesDataset(n=200, seed=4)
    ctx = MetricContext(generator=_images(ShapesDataset(n=200, seed=5), 200), real=real, n_gen=200, batch_size=37)
    feats = ctx.gen_outputs()["features"].astype(np.float64)
    mom = ctx.gen_moments()
    np.testing.assert_allclose(mom.mean, feats.mean(0), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mom.cov("biased"), np.cov(feats, rowvar=False, ddof=0), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(mom.cov("unbiased"), np.cov(feats, rowvar=False, ddof=1), rtol=1e-7, atol=1e-9)
    sub = ctx.moments("gen", n=50)
    np.testing.assert_allclose(sub.cov("unbiased"), np.cov(feats[:50], rowvar=False), rtol=1e-7, atol=1e-9)
    biased = get_metric("fid").compute(ctx)["fid"]
    unbiased = get_metric("fid", covariance="unbiased").compute(ctx)["fid"]
    assert biased != unbiased and abs(biased - unbiased) / biased < 0.05
    assert get_metric("fid").params()["covariance"] == "biased"
    with pytest.raises(ConfigError, match="covariance"):
        get_metric("fid", covariance="median")
    with pytest.raises(ConfigError, match="50000"):
        get_metric("fid50k_full").compute(ctx)  # the preset needs 50k generated samples


def test_presets_record_their_convention():
    p = get_metric("fid50k_full").params()
    assert p["n_gen"] == 50000 and p["n_real"] is None and p["covariance"] == "biased"
    assert get_metric("fid10k").params()["n_real"] == 10000
    assert set(get_metric("fid50k_full").outputs) == {"fid50k_full"}


def test_shapes_real_vs_real_far_below_mode_dropped():
    real = ShapesDataset(n=1200, seed=21)
    halves = MetricContext(generator=_images(ShapesDataset(n=600, seed=22), 600), real=real, n_gen=600, n_real=600)
    dropped_set = ShapesDataset(n=600, seed=23, shapes=SHAPE_CLASSES[1:])
    dropped = MetricContext(generator=_images(dropped_set, 600), real=real, n_gen=600, n_real=600)
    same = get_metric("fid").compute(halves)["fid"]
    drop = get_metric("fid").compute(dropped)["fid"]
    assert drop > 4 * same, (same, drop)


class TinyG(torch.nn.Module):
    """A stand-in generator with the model_zoo call signature."""

    def __init__(self, c_dim=0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, c_dim, 16, 3
        self.fc = torch.nn.Linear(8 + c_dim, 3 * 16 * 16)
        self.calls = []

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        self.calls.append((truncation_psi, noise_mode, None if c is None else c.clone()))
        h = z if c is None else torch.cat([z, c], 1)
        noise = torch.randn(z.shape[0], 1, 1, 1) * 0.01  # uses the global RNG like noise_mode='random'
        return torch.tanh(self.fc(h)).view(-1, 3, 16, 16) * 1.2 + noise


def test_generated_batches_are_deterministic_and_follow_nvlabs():
    G = TinyG()
    ctx = MetricContext(generator=G, real=ShapesDataset(n=20, resolution=16), n_gen=10, batch_size=4, seed=7)
    a = [b for b in ctx.generated_batches()]
    b = [b for b in ctx.generated_batches()]
    assert [x[0].shape[0] for x in a] == [4, 4, 2]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))
    z = torch.cat([x[1] for x in a])
    assert torch.equal(z[:4], torch.randn([4, 8], generator=torch.Generator().manual_seed(7)))
    calls = ctx.generator.calls  # the context measures an eval-mode copy of a training-mode network
    assert calls and all(call[:2] == (1.0, "random") for call in calls)
    other = torch.cat([x[0] for x in ctx.generated_batches(seed=8)])
    assert not torch.equal(other, torch.cat([x[0] for x in a]))
    x = torch.tensor([-2.0, -1.0, -0.004, 0.0, 0.5, 0.99, 1.5])
    assert to_uint8(x).tolist() == [0, 0, 127, 128, 191, 254, 255]


def test_conditional_generator_gets_dataset_labels():
    G = TinyG(c_dim=4)
    real = ShapesDataset(n=20, resolution=16)
    ctx = MetricContext(generator=G, real=real, n_gen=6, batch_size=6)
    next(ctx.generated_batches())
    c = ctx.generator.calls[-1][2]
    assert c.shape == (6, 4) and torch.all(c.sum(1) == 1)
    with pytest.raises(ConfigError, match="conditional"):
        next(MetricContext(generator=G, n_gen=2).generated_batches())


def test_generator_pass_runs_once_and_reals_are_cached(cache, monkeypatch):
    real = ShapesDataset(n=64, resolution=16, seed=1)
    ctx = MetricContext(generator=TinyG(), real=real, n_gen=32, batch_size=16)
    out = compute(["fid", "kid", "pr"], TinyG(), real=real, n=32, seed=0)
    assert set(out) == {"fid", "kid_mean", "kid_std", "precision", "recall"}
    files = list((cache / "stats").glob("*.npz"))
    assert len(files) == 1 and files[0].name.startswith("shapes-r16-shapes-net-bilinear-antialias-n64-")
    ext = ctx.extractor_model()
    calls = []
    original = ext.extract
    monkeypatch.setattr(ext, "extract", lambda imgs: calls.append(len(imgs)) or original(imgs))
    ctx.real_outputs()  # from the disk cache: no extractor call
    assert calls == []
    ctx.gen_outputs(); ctx.gen_outputs(); get_metric("fid").compute(ctx); get_metric("pr").compute(ctx)
    assert calls == [16, 16]  # one streaming pass over the 32 generated images, shared by every metric
    n48 = MetricContext(generator=TinyG(), real=real, n_gen=32, n_real=48, batch_size=16)
    assert n48.real_cache_path() != ctx.real_cache_path()


def test_context_errors():
    real = ShapesDataset(n=10, resolution=16)
    with pytest.raises(ConfigError, match="only 5"):
        MetricContext(generator=torch.zeros(5, 3, 16, 16, dtype=torch.uint8), real=real, n_gen=10).gen_outputs()
    with pytest.raises(ConfigError, match="no real"):
        MetricContext(generator=TinyG(), n_gen=4).real_outputs()
    with pytest.raises(ConfigError, match="no generator"):
        MetricContext(real=real).gen_outputs()
    with pytest.raises(ConfigError, match="no output"):
        MetricContext(generator=TinyG(), real=real, n_gen=4).outputs("gen", "pixels")


def test_real_spec_opens_at_the_generator_resolution():
    assert MetricContext(generator=TinyG(), real="shapes:20").real.resolution == 16
    images = torch.zeros(4, 3, 64, 64, dtype=torch.uint8)
    assert MetricContext(generator=images, real="shapes:20").real.resolution == 64


def test_fid_and_kid_match_clean_fid_math_on_the_same_features():
    from cleanfid.fid import fid_from_feats, kernel_distance as clean_kid

    from ganbench.metrics.context import Moments
    from ganbench.metrics.kid import kernel_distance

    rng = np.random.default_rng(9)
    a, b = rng.normal(size=(400, 16)), rng.normal(0.2, 1.3, size=(300, 16))

    def moments(x):
        return Moments(n=len(x), total=x.sum(0), outer=x.T @ x)

    ma, mb = moments(a), moments(b)
    ours = frechet_distance(ma.mean, ma.cov("unbiased"), mb.mean, mb.cov("unbiased"))
    assert ours == pytest.approx(fid_from_feats(a, b), rel=1e-9)
    # clean-fid draws its KID subsets from the global RNG; with m = N every subset is the whole set
    assert kernel_distance(a[:300], b, num_subsets=3)[0] == pytest.approx(clean_kid(a[:300], b, num_subsets=3), rel=1e-9)


def test_compute_api_sample_counts():
    from ganbench.metrics.api import build_metrics, required_n_gen

    real = ShapesDataset(n=40, resolution=16, seed=2)
    images = _images(ShapesDataset(n=30, resolution=16, seed=3), 30)
    with pytest.raises(ConfigError, match="50000"):
        compute("fid50k_full", images, real=real)
    assert set(compute("fid50k_full", images, real=real, n=20)) == {"fid50k_full"}  # explicit n overrides
    assert required_n_gen(build_metrics(["fid", "kid50k"])) == 50000
    assert required_n_gen(build_metrics(["fid"])) == 10000
    with pytest.raises(ConfigError, match="unknown metric"):
        compute("fjd", images, real=real)


def _exact_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Independent reference for the biased-covariance FID of two sample sets, exact for any rank.

    With A, B the centred samples (n x d, m x d), S1 = A^T A / n and S2 = B^T B / m, the non-zero
    eigenvalues of S1 S2 are the squared singular values of A B^T / sqrt(nm), so Tr sqrt(S1 S2) is that
    small n x m matrix's nuclear norm: no d x d square root, no round-off eigenvalues.
    """
    ac, bc = a - a.mean(0), b - b.mean(0)
    nuclear = np.linalg.svd(ac @ bc.T, compute_uv=False).sum() / np.sqrt(len(a) * len(b))
    diff = a.mean(0) - b.mean(0)
    return float(diff @ diff + (ac * ac).sum() / len(a) + (bc * bc).sum() / len(b) - 2 * nuclear)


@pytest.mark.parametrize("n", [16, 64])
def test_fid_below_2048_samples_drops_round_off_and_is_never_negative(n):
    """Tolerance: 1e-10 of Tr S1 + Tr S2 (the inputs' scale); before, round-off eigenvalues cost ~2.5e-7 of it."""
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=(n, 2048)), rng.normal(0.1, 1.2, size=(2 * n, 2048))
    s1, s2 = np.cov(a, rowvar=False, ddof=0), np.cov(b, rowvar=False, ddof=0)
    scale = np.trace(s1) + np.trace(s2)
    ours = frechet_distance(a.mean(0), s1, b.mean(0), s2)
    assert abs(ours - _exact_fid(a, b)) <= 1e-10 * scale, (ours, _exact_fid(a, b))
    self_fid = frechet_distance(a.mean(0), s1, a.mean(0), s1)   # exactly 0 in exact arithmetic
    assert 0.0 <= self_fid <= 1e-10 * scale, self_fid


def test_fid_of_a_few_images_against_themselves_is_not_negative():
    """The issue's case end to end: 16 images (shapes-net, 256-d) against the same 16 images."""
    images = _images(ShapesDataset(n=16, seed=3), 16)
    value = compute("fid", images, real=images, n=16)["fid"]
    assert 0.0 <= value < 1e-9, value


@pytest.mark.parametrize("n", [16, 200])
def test_factored_route_below_the_dimension_matches_the_exact_value(n):
    """N < d generated samples: Tr sqrt(S1 S2) from the N x N matrix B S1 B^T equals the nuclear-norm reference
    and the d x d route (scipy-checked above) to 1e-10 of the inputs' scale, at either covariance convention."""
    rng = np.random.default_rng(n)
    real, gen = rng.normal(size=(3000, 256)), rng.normal(0.1, 1.2, size=(n, 256)) @ rng.normal(0, 0.2, (256, 256))
    s_real, s_gen = np.cov(real, rowvar=False, ddof=0), np.cov(gen, rowvar=False, ddof=0)
    scale = np.trace(s_real) + np.trace(s_gen)
    factor = (gen - gen.mean(0)) / np.sqrt(n)
    ours = frechet_distance(real.mean(0), s_real, gen.mean(0), s_gen, factor)
    assert abs(ours - _exact_fid(real, gen)) <= 1e-10 * scale
    s_real1, s_gen1 = np.cov(real, rowvar=False), np.cov(gen, rowvar=False)
    full = frechet_distance(real.mean(0), s_real1, gen.mean(0), s_gen1)
    factored = frechet_distance(real.mean(0), s_real1, gen.mean(0), s_gen1, (gen - gen.mean(0)) / np.sqrt(n - 1))
    assert abs(factored - full) <= 1e-10 * scale


def test_fid_metric_takes_the_factored_route_with_fewer_samples_than_dimensions(monkeypatch):
    import ganbench.metrics.fid as fid
    from ganbench.features import get_extractor

    real, gen = _images(ShapesDataset(n=300, seed=5), 300), _images(ShapesDataset(n=40, seed=6), 40)
    f_real, f_gen = (get_extractor("shapes-net").extract(x)["features"].double().numpy() for x in (real, gen))
    assert f_gen.shape == (40, 256)   # fewer samples than dimensions
    full = frechet_distance(f_real.mean(0), np.cov(f_real, rowvar=False, ddof=0), f_gen.mean(0),
                            np.cov(f_gen, rowvar=False, ddof=0))   # the d x d route
    calls = []
    monkeypatch.setattr(fid, "trace_sqrt_product", lambda *a: calls.append(a) or 0.0)
    assert compute("fid", gen, real=real, n=40)["fid"] == pytest.approx(full, rel=1e-9)
    assert not calls   # the d x d route never ran
