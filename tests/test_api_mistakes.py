"""compute() / MetricContext given the wrong thing: one clear ganbench error (or a warning), never a wrong number."""

import warnings

import numpy as np
import pytest
import torch

import model_zoo
from ganbench.checkpoint import save_checkpoint
from ganbench.data import open_dataset
from ganbench.data.shapes import ShapesDataset
from ganbench.errors import ConfigError, DataError
from ganbench.metrics import compute
from ganbench.metrics.context import MetricContext


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _images(n=32, resolution=16, seed=3):
    data = ShapesDataset(n=n, resolution=resolution, seed=seed)
    return torch.stack([torch.from_numpy(data.image(i)) for i in range(n)])


def _function(images, scale):
    """z -> the next len(z) of `images` (uint8), mapped to floats by `scale`."""
    handed = [0]

    def fn(z):
        batch = images[handed[0]:handed[0] + z.shape[0]]
        handed[0] += z.shape[0]
        return scale(batch.float())
    return fn


class TinyG(torch.nn.Module):
    """A generator network whose output overshoots [-1, 1] (as a network without tanh does early on)."""

    def __init__(self, resolution=16, gain=3.0):
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, 0, resolution, 3
        self.fc = torch.nn.Linear(8, 3 * resolution * resolution)
        self.gain = gain

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        return self.fc(z).view(-1, 3, self.img_resolution, self.img_resolution) * self.gain


# ---- 1: a plain function's float range --------------------------------------------------------------
def test_a_function_returning_floats_in_0_255_is_an_error():
    real = ShapesDataset(n=40, resolution=16)
    fn = _function(_images(), lambda x: x)          # float pixels in [0, 255]: clamped to white before
    with pytest.raises(DataError, match=r"\[22, 230\].*\[-1, 1\].*uint8"):
        compute("fid", fn, real=real, n=32, z_dim=4, batch_size=16, cache_dir=False)
    fn = _function(_images(), lambda x: x - 127.5)  # [-127.5, 127.5]: also named
    with pytest.raises(DataError, match=r"\[-105\.5, 102\.5\]"):
        compute("fid", fn, real=real, n=32, z_dim=4, batch_size=16, cache_dir=False)


def test_a_network_may_overshoot_but_a_slightly_overshooting_function_is_kept():
    real = ShapesDataset(n=40, resolution=16)
    assert np.isfinite(compute("fid", TinyG(gain=3.0), real=real, n=16, cache_dir=False)["fid"])
    fn = _function(_images(), lambda x: (x / 127.5 - 1) * 1.3)   # within the bound: clamped as NVlabs does
    assert np.isfinite(compute("fid", fn, real=real, n=32, z_dim=4, batch_size=16, cache_dir=False)["fid"])


def test_a_function_returning_floats_in_0_1_warns_once():
    real = ShapesDataset(n=40, resolution=16)
    fn = _function(_images(), lambda x: x / 255)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compute("fid", fn, real=real, n=32, z_dim=4, batch_size=8, cache_dir=False)
    said = [w for w in caught if "x*2-1" in str(w.message)]
    assert len(said) == 1 and "[0, 1]" in str(said[0].message) and "[-1, 1]" in str(said[0].message)
    fn = _function(_images(), lambda x: x / 127.5 - 1)           # the convention: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compute("fid", fn, real=real, n=32, z_dim=4, batch_size=8, cache_dir=False)


# ---- 2: resolutions ------------------------------------------------------------------------------
def test_generated_and_real_resolutions_must_match():
    real32 = ShapesDataset(n=40, resolution=32)
    for source, kw in ((_images(), {}), (TinyG(), {"n": 16}),
                       (_function(_images(n=64), lambda x: x / 127.5 - 1), {"n": 32, "z_dim": 4})):
        with pytest.raises(ConfigError, match=r"16.*32"):
            compute("fid", source, real=real32, cache_dir=False, **kw)
    with pytest.raises(ConfigError, match=r"16.*32"):
        MetricContext(generator=_images(), real=_images(resolution=32))
    # a spec string is opened at the generator's size, as before
    assert np.isfinite(compute("fid", _images(), real="shapes:40", cache_dir=False)["fid"])


# ---- 3: sample counts ----------------------------------------------------------------------------
def test_sample_counts_are_checked_like_eval():
    real = ShapesDataset(n=40, resolution=16)
    images = _images()
    with pytest.raises(ConfigError, match=r"n must be at least 2, got 1"):
        compute("fid", images, real=real, n=1, cache_dir=False)
    with pytest.raises(ConfigError, match=r"n must be a whole number, got 50\.7"):
        compute("fid", TinyG(), real=real, n=50.7, cache_dir=False)
    with pytest.raises(ConfigError, match=r"n_real must be at least 2, got 1"):
        compute("fid", images, real=real, n_real=1, cache_dir=False)
    with pytest.raises(ConfigError, match=r"n_real must be a whole number, got 20\.5"):
        compute("fid", images, real=real, n_real=20.5, cache_dir=False)
    with pytest.raises(ConfigError, match=r"n-real 100.* 40 images"):
        compute("fid", images, real=real, n_real=100, cache_dir=False)
    with pytest.raises(ConfigError, match=r"n-real 100.* 40 images"):
        compute("fid", images, real="shapes:40", n_real=100, cache_dir=False)
    assert compute("fid", images, real=real, n=20.0, n_real=np.int64(40), cache_dir=False)["fid"] >= 0


# ---- 4: what is measured -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec():
    return model_zoo.build("stylegan2", 16, preset="tiny")


def test_a_network_file_path_is_loaded(spec, tmp_path):
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 0}
    path = save_checkpoint(tmp_path / "net.pt", state, {"arch": "stylegan2", "config": spec.config, "resolution": 16})
    real = ShapesDataset(n=40, resolution=16)
    want = compute("fid", model_zoo.load(path), real=real, n=8, cache_dir=False)
    assert compute("fid", str(path), real=real, n=8, cache_dir=False) == want
    assert compute("fid", path, real=real, n=8, cache_dir=False) == want        # a Path too
    # a ModelSpec is measured by its generator (freshly built, G_ema is a copy of G)
    assert np.isfinite(compute("fid", spec, real=real, n=8, cache_dir=False)["fid"])
    with pytest.raises(ConfigError, match=r"Discriminator.*model_zoo.load"):
        compute("fid", spec.D, real=real, n=8, cache_dir=False)
    with pytest.raises(ConfigError, match=r"no-such-file.*does not exist"):
        compute("fid", str(tmp_path / "no-such-file.pt"), real=real, n=8, cache_dir=False)
    with pytest.raises(ConfigError, match=r"dict.*accepts"):
        compute("fid", {"G": 1}, real=real, n=8, cache_dir=False)


def test_an_image_set_path_is_opened(tmp_path):
    images = _images()
    np.savez(tmp_path / "fakes.npz", images=images.numpy())
    real = ShapesDataset(n=40, resolution=16)
    want = compute("fid", images, real=real, cache_dir=False)
    assert compute("fid", str(tmp_path / "fakes.npz"), real=real, cache_dir=False) == pytest.approx(want, rel=1e-9)


def test_nhwc_images_are_taken_as_nhwc():
    images = _images()
    nchw = compute("fid", images, real="shapes:40", cache_dir=False)
    assert compute("fid", images.permute(0, 2, 3, 1).numpy(), real="shapes:40", cache_dir=False) == nchw
    assert compute("fid", images.permute(0, 2, 3, 1).contiguous(), real="shapes:40", cache_dir=False) == nchw
    with pytest.raises(DataError, match=r"NHWC.*2 channels"):
        compute("fid", images[:, :2].permute(0, 2, 3, 1), real="shapes:40", cache_dir=False)


@pytest.mark.parametrize("channels", [2, 4])
def test_nchw_images_with_alpha_or_two_channels_are_refused(channels):
    """NCHW uint8 with 4 (RGBA) or 2 channels got past the check: MS-SSIM averaged the alpha channel in (0.42 for
    images whose RGB gives 0.22) and SWD failed with a raw matmul error."""
    images = _images()
    extra = torch.cat([images, images[:, :1]], dim=1) if channels == 4 else images[:, :2]
    for metric in ("ms_ssim", "swd"):
        with pytest.raises(DataError, match=rf"NCHW shape .* with {channels} channels; .*1 or 3 channels"):
            compute(metric, extra.contiguous(), real="shapes:40", cache_dir=False)


# ---- 5: devices ----------------------------------------------------------------------------------
def test_cuda_without_cuda_is_one_config_error(spec, tmp_path, monkeypatch):
    no_cuda_here = not torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 0}
    path = save_checkpoint(tmp_path / "net.pt", state, {"arch": "stylegan2", "config": spec.config, "resolution": 16})
    with pytest.raises(ConfigError, match="cuda: CUDA is not available"):
        compute("fid", _images(), real="shapes:40", device="cuda", cache_dir=False)
    with pytest.raises(ConfigError, match="cuda: CUDA is not available"):
        model_zoo.load(path, device="cuda")
    if no_cuda_here:   # MetricContext itself asks torch, which a patched is_available does not fool
        with pytest.raises(ConfigError, match="cuda: CUDA is not available"):
            MetricContext(generator=_images(), device="cuda")
    with pytest.raises(ConfigError, match="'gpu' is not a device"):
        compute("fid", _images(), real="shapes:40", device="gpu", cache_dir=False)
