"""shapes-net: the shipped weights are the recorded ones and classify held-out shapes well."""

import numpy as np
import pytest
import torch

from ganbench import assets
from ganbench.data.shapes import BINARY_ATTRIBUTE_NAMES, SHAPE_CLASSES, ShapesDataset, binary_attributes
from ganbench.features import get_extractor
from ganbench.features.shapes_net import FEATURE_DIM, weights_path

SHIPPED_SHA256 = "ca476f751f530c38346c33a65a4c3ba6938f84043f505aaf4432721dbe3a8ba0"


@pytest.fixture(scope="module")
def net():
    return get_extractor("shapes-net")


def _batch(n, resolution, seed):
    ds = ShapesDataset(n=n, resolution=resolution, seed=seed)
    images = torch.from_numpy(np.stack([ds.image(i) for i in range(n)]))
    attrs = [ds.attributes(i) for i in range(n)]
    return images, np.array([a.shape for a in attrs]), binary_attributes(attrs)


def test_shipped_weights_hash():
    assert assets.sha256_file(weights_path()) == SHIPPED_SHA256
    assert assets.ASSETS.get("shapes-net").sha256 == SHIPPED_SHA256
    assert get_extractor("shapes-net").weights_sha256 == SHIPPED_SHA256


@pytest.mark.parametrize("resolution,min_acc", [(32, 0.95), (64, 0.93), (16, 0.85)])
def test_held_out_shape_accuracy(net, resolution, min_acc):
    images, shapes, attrs = _batch(400, resolution, seed=777)  # training used seeds 1001-1003, held-out check 2002
    out = net.extract(images)
    acc = (out["logits"].argmax(1).numpy() == shapes).mean()
    attr_acc = ((out["attributes"].numpy() > 0) == attrs).mean()
    assert acc > min_acc, acc
    assert attr_acc > min_acc - 0.05, attr_acc


def test_outputs_and_feature_maps(net):
    images, _, _ = _batch(6, 32, seed=5)
    out = net.extract(images)
    assert out["features"].shape == (6, FEATURE_DIM) and net.feature_dim == FEATURE_DIM
    assert out["logits"].shape == (6, len(SHAPE_CLASSES))
    assert out["attributes"].shape == (6, len(BINARY_ATTRIBUTE_NAMES))
    assert set(net.outputs) == set(out)
    again = net.extract(images)
    assert all(torch.equal(out[k], again[k]) for k in out)
    maps = net.feature_maps(images)
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4]
    # differentiable for float input (PPL's perceptual distance needs no grad, but it must not break it)
    x = images.float().requires_grad_(True)
    sum(m.square().mean() for m in net.feature_maps(x)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # any resolution and grayscale input
    assert net.extract(torch.zeros(2, 1, 128, 128, dtype=torch.uint8))["features"].shape == (2, FEATURE_DIM)
    assert net.describe() == {"extractor": "shapes-net", "weights_sha256": SHIPPED_SHA256,
                              "resize_mode": "bilinear-antialias"}


def test_bad_weight_file_is_asset_error(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors")
    with pytest.raises(assets.AssetError, match="bad.safetensors"):
        get_extractor("shapes-net", weights=bad)


@pytest.mark.slow
def test_training_script_reproduces_shipped_file(tmp_path):
    from ganbench.features._train_shapes_net import train

    torch.set_num_threads(1)
    assert train(tmp_path / "shapes_net.safetensors") == SHIPPED_SHA256
