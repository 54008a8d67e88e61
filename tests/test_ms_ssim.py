"""MS-SSIM against pytorch-msssim (images > 160 px) and a NumPy rewrite of ProGAN's version (small images)."""

import numpy as np
import pytest
import torch
from scipy import signal

from ganbench.errors import ConfigError
from ganbench.metrics.ms_ssim import MSSSIM, consecutive_pairs, gaussian_window, mean_ms_ssim, ms_ssim


def _structured(n: int, res: int, seed: int) -> torch.Tensor:
    """Blurry colour blobs plus pixel noise: images with structure at every scale, as uint8."""
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(res, res), mode="bicubic",
                                        align_corners=False)
    x = x + 0.3 * torch.rand(n, 3, res, res, generator=g)
    return (255 * (x - x.min()) / (x.max() - x.min())).round().to(torch.uint8)


def _progan_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ProGAN's MS-SSIM written plainly in NHWC with scipy fftconvolve (channels pooled), per pair."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    im1, im2 = a.transpose(0, 2, 3, 1).astype(np.float64), b.transpose(0, 2, 3, 1).astype(np.float64)
    mssim, mcs = [], []
    for _ in range(5):
        size = min(11, im1.shape[1], im1.shape[2])
        sigma = size * 1.5 / 11
        r = np.arange(size) - (size - 1) / 2
        yy, xx = np.meshgrid(r, r, indexing="ij")
        win = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
        win = (win / win.sum()).reshape(1, size, size, 1)
        conv = lambda t: signal.fftconvolve(t, win, mode="valid")  # noqa: E731
        mu1, mu2 = conv(im1), conv(im2)
        s11, s22, s12 = conv(im1 * im1) - mu1**2, conv(im2 * im2) - mu2**2, conv(im1 * im2) - mu1 * mu2
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        v1, v2 = 2 * s12 + c2, s11 + s22 + c2
        mssim.append(np.mean((2 * mu1 * mu2 + c1) * v1 / ((mu1**2 + mu2**2 + c1) * v2), axis=(1, 2, 3)))
        mcs.append(np.mean(v1 / v2, axis=(1, 2, 3)))
        im1, im2 = [(t[:, 0::2, 0::2] + t[:, 1::2, 0::2] + t[:, 0::2, 1::2] + t[:, 1::2, 1::2]) / 4 for t in (im1, im2)]
    mssim, mcs = np.clip(np.array(mssim), 0, None), np.clip(np.array(mcs), 0, None)
    return np.prod(mcs[:-1] ** weights[:-1, None], axis=0) * mssim[-1] ** weights[-1]


def test_matches_pytorch_msssim_on_large_images():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    a, b = _structured(3, 192, 0), _structured(3, 192, 1)
    b[0] = (a[0].double() * 0.7 + b[0].double() * 0.3).round().to(torch.uint8)  # one similar pair
    ours = ms_ssim(a, b)
    ref = pytorch_msssim.ms_ssim(a.double(), b.double(), data_range=255, size_average=False)
    assert ours.shape == (3,)
    torch.testing.assert_close(ours, ref.double(), rtol=0, atol=1e-4)
    ref32 = pytorch_msssim.ms_ssim(a.float(), b.float(), data_range=255, size_average=False)
    torch.testing.assert_close(ours, ref32.double(), rtol=0, atol=1e-4)
    assert ours[0] > ours[1] + 0.1  # the blended pair is far more similar


def test_pooled_matches_progan_numpy_on_small_images():
    a, b = _structured(4, 32, 2), _structured(4, 32, 3)
    ours = ms_ssim(a, b, channels="pooled").numpy()
    np.testing.assert_allclose(ours, _progan_numpy(a.numpy(), b.numpy()), rtol=0, atol=1e-8)
    grey_a, grey_b = a[:, :1].repeat(1, 3, 1, 1), b[:, :1].repeat(1, 3, 1, 1)
    torch.testing.assert_close(ms_ssim(grey_a, grey_b), ms_ssim(grey_a, grey_b, channels="pooled"))


def test_identical_images_give_one():
    a = _structured(3, 64, 4)
    torch.testing.assert_close(ms_ssim(a, a.clone()), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    assert mean_ms_ssim([torch.cat([a[:1], a[:1]])]) == pytest.approx(1.0, abs=1e-12)


def test_even_window_is_symmetric():
    w = gaussian_window(4, 4 * 1.5 / 11)
    torch.testing.assert_close(w, w.flip(0))
    assert float(w.sum()) == pytest.approx(1.0)


def test_pairs_stream_across_batch_boundaries():
    a = _structured(7, 32, 5)
    pairs = list(consecutive_pairs(a.split(3)))
    firsts = torch.cat([p[0] for p in pairs])
    seconds = torch.cat([p[1] for p in pairs])
    assert torch.equal(firsts, a[0:6:2]) and torch.equal(seconds, a[1:6:2])
    assert mean_ms_ssim(a.split(3)) == pytest.approx(float(ms_ssim(a[0:6:2], a[1:6:2]).mean()), abs=1e-12)


def test_diversity_orders_sets():
    similar = _structured(1, 32, 6).repeat(8, 1, 1, 1)
    g = torch.Generator().manual_seed(0)
    similar = (similar.double() + 4 * torch.randn(similar.shape, generator=g)).clamp(0, 255).to(torch.uint8)
    diverse = _structured(8, 32, 7)
    assert mean_ms_ssim([similar]) > mean_ms_ssim([diverse]) + 0.2


def test_bad_inputs():
    with pytest.raises(ConfigError, match="at least 16 px"):
        ms_ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ConfigError):
        MSSSIM(channels="mean")


def test_metrics_through_compute():
    from ganbench.data.shapes import ShapesDataset
    from ganbench.metrics import compute

    real = ShapesDataset(n=40, resolution=32, seed=0)
    images = torch.stack([real[i][0] for i in range(40)])
    out = compute(["ms_ssim", "ms_ssim_real"], images, real=real, cache_dir=False)
    expected = float(ms_ssim(images[0::2], images[1::2]).mean())
    assert out["ms_ssim"] == pytest.approx(expected, abs=1e-12)
    assert out["ms_ssim_real"] == pytest.approx(expected, abs=1e-12)
    collapsed = compute("ms_ssim", images[:1].repeat(40, 1, 1, 1), cache_dir=False)
    assert collapsed["ms_ssim"] == pytest.approx(1.0) and out["ms_ssim"] < 0.9


def test_filter_paths_agree():
    """The banded-matmul path (<= 256 px) and the convolution path (> 256 px) compute the same filter."""
    from ganbench.metrics.ms_ssim import _band, _filter

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 300, 270, generator=g, dtype=torch.float64)
    win = gaussian_window(11, 1.5)
    torch.testing.assert_close(_filter(x, win), _band(300, win).T @ x @ _band(270, win), rtol=0, atol=1e-12)
    small = x[:, :, :40, :33]
    kernel = torch.outer(win, win)
    direct = torch.tensor([[float((small[0, 0, i:i + 11, j:j + 11] * kernel).sum()) for j in range(23)]
                           for i in range(30)], dtype=torch.float64)
    torch.testing.assert_close(_filter(small, win)[0, 0], direct, rtol=0, atol=1e-12)
