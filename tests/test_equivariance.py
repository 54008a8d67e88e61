"""Equivariance metrics: resampling operators against analytic shifts/rotations, and stand-in generators
that are (or are not) equivariant by construction."""

import math

import pytest
import torch
from torch import nn

from ganbench.errors import ConfigError
from ganbench.metrics import get_metric
from ganbench.metrics.context import MetricContext
from ganbench.metrics.equivariance import (bandlimit_filter, equivariance, fractional_rotate, fractional_translate,
                                           integer_translate, pseudo_rotate, psnr, rotation_matrix)

RES = 32
# Low spatial frequencies (cycles per image side), well inside the Nyquist limit of 16 at 32 px.
FREQS = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.5, -1.0], [-2.0, 1.5], [2.5, 0.5]], dtype=torch.float64)


def _coords(res: int) -> torch.Tensor:
    """Pixel centres in image units, x right and y down, centred: [H, W, 3] homogeneous (x, y, 1)."""
    c = (torch.arange(res, dtype=torch.float64) + 0.5) / res - 0.5
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x, y, torch.ones_like(x)], dim=2)


def _field(q: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
    """Band-limited test images: sums of cosines at FREQS evaluated at points q [H, W, 3]; [N, 3, H, W]."""
    arg = 2 * math.pi * (q[..., :2] @ FREQS.T)  # [H, W, K]
    waves = torch.cos(arg[None] + phases[:, None, None, :])  # [N, H, W, K]
    amps = torch.tensor([[0.3, 0.2, 0.2, 0.1, 0.1], [0.1, 0.3, 0.1, 0.2, 0.2], [0.2, 0.1, 0.3, 0.1, 0.2]],
                        dtype=torch.float64)
    return torch.einsum("nhwk,ck->nchw", waves, amps)


class _Input(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("transform", torch.eye(3))


class _Synthesis(nn.Module):
    """Renders _field at the transformed pixel centres: exactly equivariant when it honours the transform."""

    def __init__(self, honours_transform: bool) -> None:
        super().__init__()
        self.input = _Input()
        self.honours_transform = honours_transform

    def forward(self, ws, noise_mode="const"):
        m = self.input.transform.double() if self.honours_transform else torch.eye(3, dtype=torch.float64)
        q = _coords(RES) @ m.T
        return _field(q, 3 * ws[:, 0, :5].double()).float()


class SG3StandIn(nn.Module):
    """A generator with a StyleGAN3-style transform buffer and the Generator interface."""

    def __init__(self, honours_transform: bool = True) -> None:
        super().__init__()
        self.z_dim = self.w_dim = 8
        self.c_dim, self.num_ws, self.img_resolution, self.img_channels = 0, 2, RES, 3
        self.synthesis = _Synthesis(honours_transform)

    def mapping(self, z, c=None, truncation_psi=1.0):
        return z.unsqueeze(1).repeat(1, self.num_ws, 1)

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        return self.synthesis(self.mapping(z), noise_mode)


def _images(n: int = 2) -> torch.Tensor:
    return _field(_coords(RES), torch.linspace(0, 3, 5 * n, dtype=torch.float64).reshape(n, 5))


def test_integer_translate_moves_content_and_masks_the_border():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    z, m = integer_translate(x, 2 / 8, -1 / 8)  # right by 2, up by 1
    assert torch.equal(z[:, :, 0:7, 2:8], x[:, :, 1:8, 0:6])
    assert torch.equal(m[0, 0], torch.zeros(8, 8).index_fill(0, torch.arange(7), 1) * (torch.arange(8) >= 2))
    assert float((z * (1 - m)).abs().sum()) == 0.0


def test_fractional_translate_matches_analytic_shift():
    x = _images()
    for tx, ty in ((0.3 / RES, -1.7 / RES), (-2.5 / RES, 0.25 / RES), (0.1, -0.11)):
        z, m = fractional_translate(x.float(), tx, ty)
        expected = _field(_coords(RES) - torch.tensor([tx, ty, 0.0], dtype=torch.float64),
                          torch.linspace(0, 3, 10, dtype=torch.float64).reshape(2, 5))
        err = ((z.double() - expected).abs() * m).max()
        assert float(err) < 5e-3, (tx, ty, float(err))  # Lanczos-3 on <= 2.5 cycles / 32 px, amplitude ~1
        assert m[0, 0].sum() >= (RES - int(abs(tx) * RES) - int(abs(ty) * RES) - 7) ** 2
        flipped = _field(_coords(RES) + torch.tensor([tx, ty, 0.0], dtype=torch.float64),
                         torch.linspace(0, 3, 10, dtype=torch.float64).reshape(2, 5))
        assert float(((z.double() - flipped).abs() * m).max()) > 10 * float(err)  # the sign is right


def test_fractional_translate_by_whole_pixels_equals_integer_translate():
    x = _images().float()
    z, m = fractional_translate(x, 3 / RES, -2 / RES)
    zi, mi = integer_translate(x, 3 / RES, -2 / RES)
    torch.testing.assert_close(z * m, zi * m, rtol=0, atol=1e-6)
    assert float((m * (1 - mi)).sum()) == 0.0  # the fractional mask is inside the integer one


def test_rotation_matches_analytic_rotation():
    x = _images()
    for angle in (0.4, -2.0):
        z, m = fractional_rotate(x.float(), angle)
        # The transform buffer rotation_matrix(-angle) renders f(R p); the operator must produce the same.
        expected = _field(_coords(RES) @ rotation_matrix(-angle).T, torch.linspace(0, 3, 10, dtype=torch.float64)
                          .reshape(2, 5))
        mask = m * pseudo_rotate(expected.float(), angle)[1]
        assert mask[0, 0].sum() > 100
        err = float(((z.double() - expected).abs() * mask).max())
        assert err < 0.03, err


def test_bandlimit_filter_is_normalised_and_odd():
    f = bandlimit_filter(rotation_matrix(0.3), a=3, amax=6, up=4)
    assert f.shape == (47, 47)
    assert float(f.sum()) == pytest.approx(1.0, abs=1e-4)
    g = bandlimit_filter(rotation_matrix(0.3), a=3, amax=6, up=1)
    assert g.shape == (11, 11) and float(g.sum()) == pytest.approx(1.0, abs=1e-4)


def test_psnr():
    assert psnr(1.0, 4.0) == pytest.approx(20 * math.log10(2) - 10 * math.log10(0.25))
    assert psnr(0.0, 4.0) == math.inf


def test_equivariant_stand_in_scores_far_higher_than_a_grid_locked_one():
    good = equivariance(SG3StandIn(True), 8, batch_size=4, seed=0)
    bad = equivariance(SG3StandIn(False), 8, batch_size=4, seed=0)
    assert good["int"] > 100, good  # exact up to float32 rounding
    assert good["frac"] > 45 and good["rot"] > 30, good
    for k in ("int", "frac", "rot"):
        assert bad[k] < 25 and good[k] > bad[k] + 15, (good, bad)


def test_transform_is_restored_and_metrics_registered():
    G = SG3StandIn(True)
    G.synthesis.input.transform.copy_(torch.diag(torch.tensor([2.0, 2.0, 1.0])))
    ctx = MetricContext(generator=G, n_gen=4, cache_dir=False)
    out = get_metric("eqt50k_frac", n_gen=4, batch_size=2).compute(ctx)
    assert set(out) == {"eqt50k_frac"} and math.isfinite(out["eqt50k_frac"])
    assert torch.equal(G.synthesis.input.transform, torch.diag(torch.tensor([2.0, 2.0, 1.0])))
    assert get_metric("eqr50k").outputs == {"eqr50k": "higher"}


def test_non_stylegan3_generator_is_a_config_error():
    class Plain(nn.Module):
        z_dim, c_dim, img_resolution, img_channels = 8, 0, RES, 3

        def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
            return torch.zeros(z.shape[0], 3, RES, RES)

    ctx = MetricContext(generator=Plain(), n_gen=2, cache_dir=False)
    with pytest.raises(ConfigError, match="StyleGAN3"):
        get_metric("eqt50k_int", n_gen=2).compute(ctx)


def test_real_stylegan3_t_and_r_show_the_papers_pattern():
    """Alias-Free GANs, table 1: config T is translation- but not rotation-equivariant; config R is both."""
    model_zoo = pytest.importorskip("model_zoo")
    scores = {}
    for name in ("stylegan3-t", "stylegan3-r"):
        torch.manual_seed(0)
        G = model_zoo.build(name, RES, preset="tiny").G.eval()
        scores[name] = equivariance(G, 8, batch_size=4, seed=0)
    t, r = scores["stylegan3-t"], scores["stylegan3-r"]
    assert t["int"] > 35 and t["frac"] > 35, scores
    assert r["rot"] > 50 and r["rot"] > t["rot"] + 20, scores
    torch.manual_seed(0)
    with pytest.raises(ConfigError, match="StyleGAN3"):
        equivariance(model_zoo.build("stylegan2", RES, preset="tiny").G, 2)
