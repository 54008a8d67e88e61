"""FID, KID, IS and precision/recall equal torch-fidelity 0.4.0's on the same images and Inception weights.

Both tools load one random-weight (Kaiming-init) Inception file in torch-fidelity's format; ours
reads it through `inception` mode `torch_fidelity` (torch-fidelity's module, weights_only load),
torch-fidelity through `feature_extractor_weights_path`. Conventions are matched explicitly:
unbiased covariance (÷(N-1)) for FID, one KID subset size equal to N (so subset draws cannot
differ), no shuffling before the IS splits, inception pool3 features for PR.
"""

import numpy as np
import pytest
import torch
import torch_fidelity

from ganbench.data.shapes import SHAPE_CLASSES, ShapesDataset
from ganbench.features._random_weights import write_torch_fidelity_inception
from ganbench.features.inception import InceptionExtractor
from ganbench.metrics import compute, get_metric

N = 24


class _Images(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def _images(ds):
    return torch.from_numpy(np.stack([ds.image(i) for i in range(len(ds))]))


def _compare(tmp_path, n, splits):
    weights = write_torch_fidelity_inception(tmp_path / "inception-random.pth", seed=0)
    gen = _images(ShapesDataset(n=n, resolution=32, seed=41, shapes=SHAPE_CLASSES[:2]))
    real = _images(ShapesDataset(n=n, resolution=32, seed=42))

    ours = compute([get_metric("fid", covariance="unbiased"), get_metric("kid", max_subset_size=n),
                    get_metric("is", num_splits=splits), get_metric("pr")], gen, real=real,
                   extractor=InceptionExtractor(mode="torch_fidelity", weights=weights), batch_size=n)
    ref = torch_fidelity.calculate_metrics(
        input1=_Images(gen), input2=_Images(real), cuda=False, fid=True, kid=True, isc=True, prc=True,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(weights),
        feature_layer_prc="2048", kid_subset_size=n, kid_subsets=10, isc_splits=splits, samples_shuffle=False,
        cache=False, verbose=False, batch_size=n, save_cpu_ram=True)  # save_cpu_ram: no worker processes

    assert ours["fid"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-3)
    assert ours["kid_mean"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-3)
    assert ours["is_mean"] == pytest.approx(ref["inception_score_mean"], rel=1e-3)
    assert ours["is_std"] == pytest.approx(ref["inception_score_std"], rel=1e-3, abs=1e-9)
    # identical up to ties: a point whose distance equals a radius to float precision may flip
    assert ours["precision"] == pytest.approx(ref["precision"], abs=1.0 / n + 1e-9)
    assert ours["recall"] == pytest.approx(ref["recall"], abs=1.0 / n + 1e-9)
    # not a degenerate comparison: the random network separates the sets and is far from uniform
    assert ours["fid"] > 1e-2 and ours["is_mean"] > 1.02 and abs(ours["kid_mean"]) > 1e-5
    return ours, ref


def test_same_numbers_as_torch_fidelity(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    _compare(tmp_path, n=16, splits=4)


@pytest.mark.slow
def test_same_numbers_as_torch_fidelity_ten_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    _compare(tmp_path, n=50, splits=10)
