"""Shared layers checked against straightforward references written here (scipy convolution, loops, formulas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import torch
import torch.nn.functional as F

from model_zoo import layers as L

ATOL = 1e-5


def _upfirdn_reference(x: np.ndarray, f: np.ndarray, up: int, down: int, pad: tuple[int, int, int, int],
                       flip_filter: bool, gain: float) -> np.ndarray:
    """Zero-insert, pad/crop, true 2-D convolution (scipy), subsample: the textbook definition."""
    n, c, h, w = x.shape
    xu = np.zeros([n, c, h * up, w * up], dtype=np.float64)
    xu[:, :, ::up, ::up] = x
    x0, x1, y0, y1 = pad
    xu = np.pad(xu, [(0, 0), (0, 0), (max(y0, 0), max(y1, 0)), (max(x0, 0), max(x1, 0))])
    xu = xu[:, :, max(-y0, 0): xu.shape[2] - max(-y1, 0), max(-x0, 0): xu.shape[3] - max(-x1, 0)]
    f2 = f if f.ndim == 2 else np.outer(f, f)
    f2 = f2 * gain
    if flip_filter:
        f2 = f2[::-1, ::-1]
    out = np.stack([np.stack([scipy.signal.convolve2d(xu[i, j], f2, mode="valid") for j in range(c)])
                    for i in range(n)])
    return out[:, :, ::down, ::down]


@pytest.mark.parametrize("up,down,pad", [(1, 1, (0, 0, 0, 0)), (2, 1, (2, 1, 2, 1)), (1, 2, (1, 1, 1, 1)),
                                         (2, 2, (1, 2, 0, 3)), (3, 1, (0, 0, 0, 0)), (1, 1, (-1, 2, 1, -2))])
@pytest.mark.parametrize("flip_filter", [False, True])
def test_upfirdn2d_matches_zero_insert_pad_convolve(up: int, down: int, pad: tuple, flip_filter: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal([2, 3, 7, 6]).astype(np.float32)
    f = rng.standard_normal([4, 3]).astype(np.float32)  # asymmetric, so orientation errors show
    got = L.upfirdn2d(torch.from_numpy(x), torch.from_numpy(f), up=up, down=down, padding=list(pad),
                      flip_filter=flip_filter, gain=2.0).numpy()
    # f is 2-D: gain enters as gain ** (ndim / 2) = gain.
    ref = _upfirdn_reference(x, f, up, down, pad, flip_filter, gain=2.0)
    np.testing.assert_allclose(got, ref, atol=ATOL, rtol=1e-5)


def test_upfirdn2d_separable_equals_outer_product() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 2, 9, 9)
    taps = [1.0, 2.0, 4.0, 3.0, 1.0, 0.5, 0.25, 0.1]
    f1 = L.setup_filter(taps, separable=True)
    f2 = L.setup_filter(taps, separable=False)
    assert f1.ndim == 1 and f2.ndim == 2
    a = L.upfirdn2d(x, f1, up=2, padding=3, gain=4)
    b = L.upfirdn2d(x, f2, up=2, padding=3, gain=4)
    torch.testing.assert_close(a, b, atol=ATOL, rtol=1e-5)


def test_setup_filter() -> None:
    f = L.setup_filter([1, 3, 3, 1])
    assert f.shape == (4, 4) and math.isclose(float(f.sum()), 1.0, rel_tol=1e-6)
    torch.testing.assert_close(f, torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1])) / 64)
    assert L.setup_filter([1] * 8).ndim == 1  # 8+ taps default to separable
    assert L.setup_filter(None).shape == (1, 1)
    torch.testing.assert_close(L.setup_filter([1, 2, 1], gain=4).sum(), torch.tensor(4.0))
    with pytest.raises(ValueError):
        L.setup_filter(np.zeros([2, 2, 2]))


def test_resampling_shapes_and_constant_preserved() -> None:
    f = L.setup_filter([1, 3, 3, 1])
    x = torch.full([1, 2, 8, 8], 0.7)
    up = L.upsample2d(x, f)
    down = L.downsample2d(x, f)
    same = L.filter2d(x, f)
    assert up.shape == (1, 2, 16, 16) and down.shape == (1, 2, 4, 4) and same.shape == x.shape
    # Away from the zero-padded border a normalised filter keeps a constant image constant.
    torch.testing.assert_close(up[..., 3:-3, 3:-3], torch.full_like(up[..., 3:-3, 3:-3], 0.7))
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.7))
    torch.testing.assert_close(same[..., 2:-2, 2:-2], torch.full_like(same[..., 2:-2, 2:-2], 0.7))
    # A 2x2 box filter downsample is average pooling.
    y = torch.randn(1, 1, 8, 8)
    torch.testing.assert_close(L.downsample2d(y, L.setup_filter([1, 1])), F.avg_pool2d(y, 2))


@pytest.mark.parametrize("act,fn,gain", [
    ("linear", lambda x: x, 1.0), ("relu", F.relu, math.sqrt(2)),
    ("lrelu", lambda x: F.leaky_relu(x, 0.2), math.sqrt(2)), ("tanh", torch.tanh, 1.0),
    ("sigmoid", torch.sigmoid, 1.0), ("elu", F.elu, 1.0), ("selu", F.selu, 1.0), ("softplus", F.softplus, 1.0),
    ("swish", lambda x: x * torch.sigmoid(x), math.sqrt(2)),
])
def test_bias_act_table(act: str, fn, gain: float) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5)
    b = torch.randn(4)
    ref = fn(x + b.reshape(1, 4, 1)) * gain
    torch.testing.assert_close(L.bias_act(x, b, act=act), ref)
    assert math.isclose(L.ACTIVATIONS[act].def_gain, gain)


def test_bias_act_options() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4) * 10
    b = torch.randn(4)
    torch.testing.assert_close(L.bias_act(x, b, dim=2, act="lrelu", alpha=0.1, gain=3.0, clamp=5.0),
                               (F.leaky_relu(x + b, 0.1) * 3).clamp(-5, 5))
    with pytest.raises(ValueError):
        L.bias_act(x, act="nope")
    with pytest.raises(ValueError):
        L.bias_act(x, torch.zeros(5))


def test_fully_connected_equalized_lr() -> None:
    torch.manual_seed(0)
    fc = L.FullyConnectedLayer(16, 8, activation="lrelu", lr_multiplier=0.01, bias_init=0.5)
    x = torch.randn(4, 16)
    w = fc.weight * 0.01 / math.sqrt(16)
    b = fc.bias * 0.01
    torch.testing.assert_close(fc(x), F.leaky_relu(x @ w.t() + b, 0.2) * math.sqrt(2))
    torch.testing.assert_close(b, torch.full([8], 0.5))       # the effective bias starts at bias_init
    assert 50 < float(fc.weight.detach().std()) < 200                  # stored weights ~ N(0, 1/lr_mul^2)
    lin = L.FullyConnectedLayer(16, 8)
    torch.testing.assert_close(lin(x), x @ (lin.weight / 4).t() + lin.bias)


def test_conv2d_layer_plain_and_resampled() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16)
    conv = L.Conv2dLayer(3, 5, 3, activation="lrelu")
    with torch.no_grad():
        conv.bias.normal_()
    w = conv.weight / math.sqrt(3 * 9)
    ref = F.leaky_relu(F.conv2d(x, w, conv.bias, padding=1), 0.2) * math.sqrt(2)
    torch.testing.assert_close(conv(x), ref, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(conv(x, gain=0.5), ref * 0.5, atol=ATOL, rtol=1e-5)

    f = L.setup_filter([1, 3, 3, 1])
    down = L.Conv2dLayer(3, 5, 3, down=2, bias=False)
    ref = L.downsample2d(F.conv2d(x, down.weight / math.sqrt(27), padding=1), f)
    out = down(x)
    assert out.shape == (2, 5, 8, 8)
    torch.testing.assert_close(out[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=ATOL, rtol=1e-5)

    up = L.Conv2dLayer(3, 5, 3, up=2, bias=False)  # up=2 convolves (flipped kernel), as NVlabs' layer
    ref = F.conv2d(L.upsample2d(x, f), (up.weight / math.sqrt(27)).flip([2, 3]), padding=1)
    out = up(x)
    assert out.shape == (2, 5, 32, 32)
    torch.testing.assert_close(out[..., 4:-4, 4:-4], ref[..., 4:-4, 4:-4], atol=ATOL, rtol=1e-5)

    one = L.Conv2dLayer(3, 5, 1, down=2, bias=False)
    torch.testing.assert_close(one(x), F.conv2d(L.downsample2d(x, f), one.weight / math.sqrt(3)),
                               atol=ATOL, rtol=1e-5)
    frozen = L.Conv2dLayer(3, 5, 3, trainable=False)
    assert len(list(frozen.parameters())) == 0 and "weight" in dict(frozen.named_buffers())


def _modconv_loop(x, weight, styles, demodulate, input_gain=None, padding=1):
    """Per-sample reference: scale the weights, demodulate, optionally scale inputs, plain conv2d."""
    outs = []
    for i in range(x.shape[0]):
        w = weight * styles[i].reshape(1, -1, 1, 1)
        if demodulate:
            w = w / w.square().sum(dim=[1, 2, 3], keepdim=True).add(1e-8).sqrt()
        if input_gain is not None:
            w = w * input_gain.reshape(1, -1, 1, 1)
        outs.append(F.conv2d(x[i:i + 1], w, padding=padding))
    return torch.cat(outs)


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv2d_matches_per_sample_loop(demodulate: bool, fused: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4, 8, 8)
    weight = torch.randn(6, 4, 3, 3)
    styles = torch.randn(3, 4) + 1
    noise = torch.randn(3, 1, 8, 8)
    got = L.modulated_conv2d(x, weight, styles, noise=noise, padding=1, demodulate=demodulate, fused_modconv=fused)
    torch.testing.assert_close(got, _modconv_loop(x, weight, styles, demodulate) + noise, atol=1e-4, rtol=1e-4)
    gain = torch.rand(4) + 0.5
    got = L.modulated_conv2d(x, weight, styles, padding=1, demodulate=demodulate, fused_modconv=fused,
                             input_gain=gain)
    torch.testing.assert_close(got, _modconv_loop(x, weight, styles, demodulate, gain), atol=1e-4, rtol=1e-4)


def test_modulated_conv2d_demodulation_unit_variance_and_upsampling() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 64, 16, 16)
    weight = torch.randn(64, 64, 3, 3)
    styles = torch.rand(4, 64) * 3
    y = L.modulated_conv2d(x, weight, styles, padding=1)
    assert abs(float(y[..., 2:-2, 2:-2].std()) - 1.0) < 0.1  # demodulation restores unit output variance
    f = L.setup_filter([1, 3, 3, 1])
    a = L.modulated_conv2d(x[:, :8], weight[:8, :8], styles[:, :8], up=2, padding=1, resample_filter=f,
                           flip_weight=False, fused_modconv=True)
    b = L.modulated_conv2d(x[:, :8], weight[:8, :8], styles[:, :8], up=2, padding=1, resample_filter=f,
                           flip_weight=False, fused_modconv=False)
    assert a.shape == (4, 8, 32, 32)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_normalize_2nd_moment_and_pixel_norm() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 7, 3, 3) * 4
    y = L.PixelNorm()(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(5, 3, 3), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, x / x.square().mean(dim=1, keepdim=True).sqrt(), atol=1e-5, rtol=1e-5)


def test_minibatch_std_matches_explicit_groups() -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 6, 4, 4)
    out = L.MinibatchStdLayer(group_size=4, num_channels=2)(x)
    assert out.shape == (8, 8, 4, 4)
    torch.testing.assert_close(out[:, :6], x)
    # Sample i belongs to group {i mod n + k*n}, n = N / G (NVlabs' strided grouping).
    n = 2
    for i in range(8):
        members = x[[i % n + k * n for k in range(4)]]
        for ch in range(2):
            part = members[:, ch * 3:(ch + 1) * 3]
            ref = (part.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
            torch.testing.assert_close(out[i, 6 + ch], torch.full([4, 4], float(ref)), atol=1e-6, rtol=1e-5)
    assert L.MinibatchStdLayer(group_size=4)(torch.randn(6, 3, 2, 2)).shape == (6, 4, 2, 2)  # 6 % 4: groups of 3


def test_noise_injection_modes() -> None:
    torch.manual_seed(0)
    layer = L.NoiseInjection(resolution=4, channels=3)
    with torch.no_grad():
        layer.weight.fill_(2.0)
    x = torch.zeros(2, 3, 4, 4)
    torch.testing.assert_close(layer(x, "const"), (layer.noise_const * 2).expand(2, 3, 4, 4))
    torch.testing.assert_close(layer(x, "none"), x)
    assert not torch.equal(layer(x, "random"), layer(x, "random"))
    with pytest.raises(ValueError):
        layer(x, "bogus")


def test_mapping_network_w_avg_and_truncation() -> None:
    torch.manual_seed(0)
    m = L.MappingNetwork(z_dim=512, c_dim=0, w_dim=512, num_ws=4)
    assert L.count_params(m) == 2_101_248  # NVlabs' 8-layer 512-d mapping
    small = L.MappingNetwork(z_dim=8, c_dim=3, w_dim=16, num_ws=5, num_layers=2, w_avg_beta=0.5)
    z, c = torch.randn(6, 8), torch.eye(3)[[0, 1, 2, 0, 1, 2]]
    small.train()
    ws = small(z, c)
    assert ws.shape == (6, 5, 16)
    torch.testing.assert_close(small.w_avg, ws[:, 0].mean(0) * 0.5)  # lerp(batch mean, 0, beta=0.5)
    small.eval()
    before = small.w_avg.clone()
    zero = small(z, c, truncation_psi=0)
    torch.testing.assert_close(small.w_avg, before)                  # eval mode does not track
    torch.testing.assert_close(zero, before.expand(6, 5, 16))
    half = small(z, c, truncation_psi=0.5, truncation_cutoff=2)
    full = small(z, c)
    torch.testing.assert_close(half[:, :2], before.lerp(full[:, :2], 0.5))
    torch.testing.assert_close(half[:, 2:], full[:, 2:])
    with pytest.raises(ValueError):
        small(z, None)
