"""KID, IS and precision/recall against hand-computed cases and torch-fidelity's own math on the same features."""

import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from ganbench.data.shapes import SHAPE_CLASSES, ShapesDataset
from ganbench.metrics import get_metric
from ganbench.metrics.context import MetricContext
from ganbench.metrics.inception_score import inception_score
from ganbench.metrics.kid import kernel_distance, polynomial_mmd2
from ganbench.metrics.precision_recall import precision_recall


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))


def test_mmd2_matches_explicit_sums():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(1, 1, size=(6, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3  # noqa: E731
    m = 6
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_matches_torch_fidelity():
    rng = np.random.default_rng(1)
    gen, real = rng.normal(size=(120, 16)).astype(np.float32), rng.normal(0.3, 1, size=(150, 16)).astype(np.float32)
    ref = kid_features_to_metric(torch.from_numpy(gen), torch.from_numpy(real), kid_subsets=20, kid_subset_size=120,
                                 verbose=False)
    mean, std = kernel_distance(gen, real, num_subsets=20, max_subset_size=1000)
    # m = min(N_gen, N_real, 1000) = 120 = every generated point; the real subsets differ (different RNGs),
    # so compare the full-set estimate exactly and the subset average loosely
    full = polynomial_mmd2(gen, real[:120])
    ref_full = kid_features_to_metric(torch.from_numpy(gen), torch.from_numpy(real[:120]), kid_subsets=3,
                                      kid_subset_size=120, verbose=False)["kernel_inception_distance_mean"]
    assert full == pytest.approx(ref_full, rel=1e-6)  # torch-fidelity's kernel runs in float32
    assert mean == pytest.approx(ref["kernel_inception_distance_mean"], rel=0.1)
    assert std > 0


def test_is_of_uniform_logits_is_one_and_of_confident_balanced_classes_is_k():
    assert inception_score(np.zeros((100, 1008)))[0] == pytest.approx(1.0, abs=1e-12)
    logits = np.full((400, 4), -50.0)
    logits[np.arange(400), np.arange(400) % 4] = 50.0
    mean, std = inception_score(logits, num_splits=10)
    assert mean == pytest.approx(4.0, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)


def test_is_matches_torch_fidelity():
    logits = np.random.default_rng(2).normal(0, 3, size=(250, 1008)).astype(np.float32)
    ref = isc_features_to_metric(torch.from_numpy(logits), splits=10, shuffle=False)
    mean, std = inception_score(logits)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-6)


def test_pr_identical_and_disjoint():
    x = np.random.default_rng(3).normal(size=(200, 8)).astype(np.float32)
    assert precision_recall(x, x) == (1.0, 1.0)
    assert precision_recall(x + 1000, x) == (0.0, 0.0)


def test_pr_matches_torch_fidelity_and_is_block_independent():
    rng = np.random.default_rng(4)
    gen, real = rng.normal(size=(300, 10)).astype(np.float32), rng.normal(0.5, 1.2, size=(260, 10)).astype(np.float32)
    ref = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(real), prc_neighborhood=3,
                                 prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    p, r = precision_recall(gen, real, k=3)
    assert (p, r) == pytest.approx((ref["precision"], ref["recall"]), abs=1e-9)
    assert precision_recall(gen, real, k=3, row_batch_size=7) == (p, r)
    p16, r16 = precision_recall(gen, real, k=3, radius_dtype="float16")  # NVlabs rounds radii to float16
    assert abs(p16 - p) <= 2 / len(gen) and abs(r16 - r) <= 2 / len(real)
    assert 0 < p < 1 and 0 < r < 1


def _images(ds):
    return torch.from_numpy(np.stack([ds.image(i) for i in range(len(ds))]))


def test_shapes_recall_drops_when_a_class_is_removed():
    real = ShapesDataset(n=600, seed=31)
    full = MetricContext(generator=_images(ShapesDataset(n=600, seed=32)), real=real, n_gen=600)
    dropped = MetricContext(generator=_images(ShapesDataset(n=600, seed=33, shapes=SHAPE_CLASSES[:3])), real=real,
                            n_gen=600)
    pr_full, pr_drop = get_metric("pr").compute(full), get_metric("pr").compute(dropped)
    assert pr_drop["recall"] < pr_full["recall"] - 0.15, (pr_full, pr_drop)
    assert pr_drop["precision"] > 0.8 and pr_full["precision"] > 0.8, (pr_full, pr_drop)
    kid_full, kid_drop = get_metric("kid").compute(full), get_metric("kid").compute(dropped)
    assert kid_drop["kid_mean"] > 4 * abs(kid_full["kid_mean"]), (kid_full, kid_drop)
    is_full, is_drop = get_metric("is").compute(full), get_metric("is").compute(dropped)
    assert is_full["is_mean"] > is_drop["is_mean"]  # 4 balanced classes beat 3
    assert 3.5 < is_full["is_mean"] <= 4.0 and 2.6 < is_drop["is_mean"] <= 3.0


def test_bad_parameters_are_config_errors():
    from ganbench.errors import ConfigError

    for name, params in [("kid", {"num_subsets": 0}), ("kid", {"max_subset_size": 1}), ("is", {"num_splits": 0}),
                         ("pr", {"k": 0}), ("pr", {"row_batch_size": 0}), ("pr", {"neighbours": 3}),
                         ("pr", {"radius_dtype": "float8"})]:
        with pytest.raises(ConfigError):
            get_metric(name, **params)


def test_pr_computes_each_distance_about_once(monkeypatch):
    """Symmetric radius blocks and one shared gen x real pass: ~(Ng² + Nr²)/2 + Ng·Nr distances, not 4 N²."""
    import ganbench.metrics.precision_recall as pr

    rng = np.random.default_rng(5)
    gen, real = rng.normal(size=(300, 6)).astype(np.float32), rng.normal(size=(260, 6)).astype(np.float32)
    counted = []
    cdist = torch.cdist
    monkeypatch.setattr(pr.torch, "cdist", lambda a, b: counted.append(len(a) * len(b)) or cdist(a, b))
    block = 50
    blocked = precision_recall(gen, real, k=3, row_batch_size=block)
    bound = (300**2 + 260**2) / 2 + 300 * 260 + block * (300 + 260) / 2  # + half of each diagonal block
    four_passes = 300**2 + 260**2 + 2 * 300 * 260  # radii of each set over all rows, then each coverage
    assert sum(counted) <= bound < 0.55 * four_passes
    ref = prc_features_to_metric(torch.from_numpy(gen), torch.from_numpy(real), prc_neighborhood=3,
                                 prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    assert blocked == pytest.approx((ref["precision"], ref["recall"]), abs=1e-9)


@pytest.mark.parametrize("n_gen,n_real,m", [(150, 150, 1000), (90, 130, 1000), (130, 90, 1000), (300, 260, 150)])
def test_kid_from_the_whole_sets_kernels_equals_the_per_subset_kernels(n_gen, n_real, m, monkeypatch):
    import ganbench.metrics.kid as kid

    rng = np.random.default_rng(3)
    gen = rng.normal(size=(n_gen, 32)).astype(np.float32)
    real = rng.normal(0.2, 1, size=(n_real, 32)).astype(np.float32)
    assert kid.whole_kernels_pay(n_gen, n_real, min(n_gen, n_real, m), 20)
    whole = kernel_distance(gen, real, num_subsets=20, max_subset_size=m, seed=5)
    monkeypatch.setattr(kid, "whole_kernels_pay", lambda *a: False)
    subsets = kernel_distance(gen, real, num_subsets=20, max_subset_size=m, seed=5)
    assert whole[0] == pytest.approx(subsets[0], rel=1e-9)
    assert whole[1] == pytest.approx(subsets[1], rel=1e-6, abs=1e-12)   # m = N: every subset is the whole set
    assert (whole[1] > 1e-6) == (min(n_gen, n_real, m) < max(n_gen, n_real))


def test_kid_keeps_per_subset_kernels_when_the_sets_are_much_larger_than_a_subset():
    from ganbench.metrics.kid import whole_kernels_pay

    assert whole_kernels_pay(1000, 1000, 1000, 100)          # m = N: every subset is the whole set reordered
    assert not whole_kernels_pay(50000, 50000, 1000, 100)    # 7.5e9 products against 1e8 per kernel entry
    assert not whole_kernels_pay(12000, 12000, 1000, 100)    # 1.15 GB of kernels
