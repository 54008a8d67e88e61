"""Feature extractors: registry, weight loading through assets (offline, random-weight files), modes, outputs."""

import urllib.request

import numpy as np
import pytest
import torch

from ganbench import assets
from ganbench.errors import AssetError, ConfigError
from ganbench.features import _random_weights as rw
from ganbench.features import get_extractor, list_extractors


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    (root / "env").mkdir()
    return {
        "torchscript": rw.write_torchscript_inception(root / "env" / "inception-2015-12-05.pt", seed=1),
        "state_dict": rw.write_torch_fidelity_inception(root / "tf.pth", seed=1),
    }


@pytest.fixture(autouse=True)
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANBENCH_ASSETS", raising=False)

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("offline test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


def _images(n=2, size=32, seed=0):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_registry_lists_the_standard_extractors():
    assert {"inception", "vgg16", "shapes-net"} <= set(list_extractors())
    with pytest.raises(ConfigError, match="known"):
        get_extractor("resnet-9000")
    with pytest.raises(ConfigError, match="mode"):
        get_extractor("inception", mode="bicubic")
    with pytest.raises(ConfigError, match="mode"):
        get_extractor("inception:mode=bicubic")
    with pytest.raises(ConfigError, match="bad options"):
        get_extractor("shapes-net:colour=red")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        get_extractor("shapes-net:oops")


def test_missing_weights_offline_is_one_line_asset_error():
    with pytest.raises(AssetError) as err:
        get_extractor("inception")
    msg = str(err.value)
    assert "inception-2015-12-05.pt" in msg and "https://" in msg and "ganbench assets import PATH" in msg
    assert "\n" not in msg


def test_torchscript_inception_from_env_folder(weights, monkeypatch):
    monkeypatch.setenv("GANBENCH_ASSETS", str(weights["torchscript"].parent))
    ext = get_extractor("inception:mode=legacy_tensorflow")
    assert ext.weights_sha256 == assets.sha256_file(weights["torchscript"])
    x = _images()
    out = ext.extract(x)
    assert out["features"].shape == (2, 2048) and out["logits"].shape == (2, 1008)
    script = torch.jit.load(str(weights["torchscript"]))
    with torch.no_grad():
        torch.testing.assert_close(out["features"], script(x.float(), return_features=True), rtol=1e-5, atol=1e-5)
        # IS logits carry no output bias: their softmax is what NVlabs' network returns with no_output_bias
        probs = script(x.float(), no_output_bias=True)
    torch.testing.assert_close(out["logits"].softmax(1), probs, rtol=1e-4, atol=1e-6)
    assert ext.describe()["resize_mode"] == "legacy_tensorflow"


def test_clean_mode_resizes_outside_with_clean_fid(weights, tmp_path):
    # an explicit path with another file name goes through clean-fid's loader too
    renamed = tmp_path / "my-inception.pt"
    renamed.write_bytes(weights["torchscript"].read_bytes())
    ext = get_extractor("inception", mode="clean", weights=renamed)
    legacy = get_extractor("inception", mode="legacy_tensorflow", weights=weights["torchscript"])
    at_299 = _images(1, 299)
    # at 299 px no resizing happens in either mode: both must feed the same normalised pixels
    torch.testing.assert_close(ext.extract(at_299)["features"], legacy.extract(at_299)["features"], rtol=1e-4, atol=1e-5)
    small = _images(1, 32)
    assert not torch.allclose(ext.extract(small)["features"], legacy.extract(small)["features"])
    with pytest.raises(ConfigError, match="uint8"):
        ext.extract(small.float())


def test_torch_fidelity_state_dict_mode(weights):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    ext = get_extractor("inception", mode="torch_fidelity", weights=weights["state_dict"])
    ref = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"],
                                      feature_extractor_weights_path=str(weights["state_dict"]))
    x = _images()
    out = ext.extract(x)
    feats, logits = ref(x)
    # batch norms folded into the convolutions and a matmul resize: equal to float round-off
    torch.testing.assert_close(out["features"], feats, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["logits"], logits, rtol=1e-5, atol=1e-4)
    assert float(out["features"].std()) > 1e-2  # Kaiming init: not the ~1e-8 of PyTorch's default init


def test_torch_fidelity_module_is_built_without_a_random_init(weights, tmp_path, monkeypatch):
    """Its layers are made on the meta device and take the loaded tensors: no CPU tensor is filled at
    random first (a third of the extractor's build), and a file whose tensors do not fit still fails."""
    filled: list[str] = []
    real_uniform = torch.Tensor.uniform_
    monkeypatch.setattr(torch.Tensor, "uniform_",
                        lambda t, *a, **k: filled.append(t.device.type) or real_uniform(t, *a, **k))
    ext = get_extractor("inception", mode="torch_fidelity", weights=weights["state_dict"])
    assert filled and set(filled) == {"meta"}
    assert all(p.device.type == "cpu" and not p.requires_grad for p in ext.net.parameters())
    state = torch.load(weights["state_dict"], weights_only=True)
    torch.testing.assert_close(ext.net.fc.weight, state["fc.weight"], rtol=0, atol=0)
    state["fc.weight"] = state["fc.weight"][:, :100]
    torch.save(state, tmp_path / "narrow.pth")
    with pytest.raises(AssetError, match="narrow.pth"):
        get_extractor("inception", mode="torch_fidelity", weights=tmp_path / "narrow.pth")


def test_unsafe_or_corrupt_weight_files_are_refused(tmp_path):
    pickled = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(1), "obj": np.dtype("float32")}, pickled)  # a non-tensor object: needs full unpickling
    with pytest.raises(AssetError, match="evil.pth"):
        get_extractor("inception", mode="torch_fidelity", weights=pickled)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(AssetError, match="junk.pt"):
        get_extractor("inception", weights=junk)
    with pytest.raises(AssetError, match="junk.pt"):
        get_extractor("vgg16", weights=junk)
    with pytest.raises(AssetError, match="evil.pth"):
        get_extractor("vgg16", variant="torchvision", weights=pickled)
    with pytest.raises(ConfigError, match="variant"):
        get_extractor("vgg16", variant="keras")


@pytest.mark.slow  # two random 528 MB VGG16 files
def test_vgg16_variants(tmp_path):
    x = _images(1, 32)
    weights = {"vgg_ts": rw.write_torchscript_vgg16(tmp_path / "vgg16.pt", seed=2),
               "vgg_tv": rw.write_torchvision_vgg16(tmp_path / "vgg16-tv.pth", seed=2)}
    nv = get_extractor("vgg16", weights=weights["vgg_ts"])
    tv = get_extractor("vgg16", variant="torchvision", weights=weights["vgg_tv"])
    for ext in (nv, tv):
        f = ext.extract(x)["features"]
        assert f.shape == (1, 4096) and torch.isfinite(f).all() and (f >= 0).all() and f.std() > 0
    assert nv.describe()["resize_mode"] == "nvlabs-internal"
    assert tv.describe()["weights_sha256"] == assets.sha256_file(weights["vgg_tv"])


@pytest.mark.parametrize("mode", ["clean", "legacy_pytorch"])
def test_clean_fid_pipeline_gives_the_same_features(weights, tmp_path, mode):
    """Our in-memory path equals clean-fid's own folder pipeline (PNG read, its resizer, its model call)."""
    from cleanfid.fid import get_folder_features
    from cleanfid.inception_torchscript import InceptionV3W
    from PIL import Image

    x = _images(3, 32, seed=4)
    for i, im in enumerate(x.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(im).save(tmp_path / f"{i}.png")
    model = InceptionV3W(str(weights["torchscript"].parent), download=False, resize_inside=False).eval()
    ref = get_folder_features(str(tmp_path), model, num_workers=0, batch_size=3, device=torch.device("cpu"),
                              mode=mode, verbose=False)
    ours = get_extractor("inception", mode=mode, weights=weights["torchscript"]).extract(x)["features"]
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_torch_fidelity_trunk_fuses_each_conv_with_its_batch_norm_and_relu(weights, monkeypatch):
    """Every BasicConv2d becomes one conv+bias+ReLU call (oneDNN on CPU), equal to the eager pair to round-off."""
    import ganbench.features.inception as inception

    ext = get_extractor("inception", mode="torch_fidelity", weights=weights["state_dict"])
    modules = list(ext.trunk.modules())
    assert sum(isinstance(m, inception._ConvReLU) for m in modules) == 94  # Inception-v3's conv layers up to pool3
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)
    x = _images(2, 32)
    fused = ext.extract(x)["features"]
    monkeypatch.setattr(inception, "_FUSED_CONV_RELU", False)
    torch.testing.assert_close(fused, ext.extract(x)["features"], rtol=1e-5, atol=1e-5)


def test_autocast_reaches_the_fused_convolutions(weights):
    """Under autocast the trunk's convs run in the lower precision also for float32 input (299 px: no resize,
    whose matmul would already hand the trunk half input); the fused oneDNN op would ignore autocast."""
    ext = get_extractor("inception", mode="torch_fidelity", weights=weights["state_dict"])
    x = _images(2, 299)
    fp32 = ext.extract(x)["features"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = ext.extract(x)["features"]
    relative = float((half - fp32).norm() / fp32.norm())
    assert 1e-4 < relative < 5e-2  # bfloat16 keeps 8 significant bits; measured 5.1e-3


@pytest.mark.parametrize("mode,package", [("torch_fidelity", "torch-fidelity"), ("clean", "clean-fid")])
def test_a_missing_package_is_named_not_blamed_on_the_weight_file(weights, monkeypatch, mode, package):
    """torch-fidelity is not a core dependency: without it the torch_fidelity mode said the weight file was
    not usable. The error names the package and how to install it."""
    import sys

    module = {"torch-fidelity": "torch_fidelity", "clean-fid": "cleanfid"}[package]
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails as when not installed
    file = weights["state_dict" if mode == "torch_fidelity" else "torchscript"]
    with pytest.raises(ConfigError, match=rf"mode '{mode}' runs the {package} package.*pip install {package}") as err:
        get_extractor("inception", mode=mode, weights=file)
    assert str(file) not in str(err.value)
