"""ADA: every op is identity at p=0, changes images at p=1, is differentiable; geometry and colour are right."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ganbench.errors import ConfigError
from ganbench.train.augment import (ALL_OPS, PRESETS, SYM2, SYM6, AdaController, AugmentPipe, apply_affine,
                                    band_filter_bank, build_augment_pipe, downsample2x, resample_filter, rotate2d,
                                    rotate3d, scale2d, translate2d, upsample2x)


def smooth_images(n: int = 4, res: int = 32) -> torch.Tensor:
    """Band-limited test images in [-1, 1] (resampling is near-exact on them away from the border)."""
    yy, xx = torch.meshgrid(torch.arange(res) + 0.5, torch.arange(res) + 0.5, indexing="ij")
    base = torch.stack([torch.sin(xx / 5), torch.cos(yy / 4), torch.sin((xx + 2 * yy) / 9)])
    return torch.stack([base * (0.5 + 0.1 * i) for i in range(n)]).float()


def interior(x: torch.Tensor, m: int = 6) -> torch.Tensor:
    return x[..., m:-m, m:-m]


@pytest.mark.parametrize("op", ALL_OPS)
def test_op_identity_at_p0_and_changes_at_p1(op: str) -> None:
    torch.manual_seed(0)
    x = smooth_images(8)
    assert torch.equal(AugmentPipe(**{op: 1}, p=0.0)(x), x)
    y = AugmentPipe(**{op: 1}, p=1.0)(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (y - x).abs().mean() > 1e-3, f"{op} at p=1 left the images unchanged"


@pytest.mark.parametrize("op", ALL_OPS)
def test_gradients_flow_through_each_op(op: str) -> None:
    torch.manual_seed(1)
    x = smooth_images(4).requires_grad_(True)
    y = AugmentPipe(**{op: 1}, p=1.0)(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_presets_match_stylegan2_ada() -> None:
    assert PRESETS["blit"] == {"xflip": 1, "rotate90": 1, "xint": 1}
    assert set(PRESETS["bgc"]) == {"xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac",
                                   "brightness", "contrast", "lumaflip", "hue", "saturation"}
    assert set(PRESETS["bgcfnc"]) == set(ALL_OPS)
    assert build_augment_pipe("bgcf").enabled_ops == [op for op in AugmentPipe(**PRESETS["bgcf"]).enabled_ops]
    with pytest.raises(ConfigError, match="unknown augmentation pipeline 'bgx'"):
        build_augment_pipe("bgx")


def test_resampling_round_trip_and_geometry() -> None:
    """Mirrors and quarter turns up to sym6's slight asymmetry (see below); the identity and shifts exactly."""
    x = smooth_images(1)
    f = torch.tensor(resample_filter(), dtype=torch.float32)
    flipped = apply_affine(x, scale2d(torch.tensor([-1.0]), torch.tensor([1.0])), f)
    assert (interior(flipped) - interior(x.flip(3))).abs().max() < 2e-2
    rotated = apply_affine(x, rotate2d(torch.tensor([math.pi / 2])), f)
    err = min(float((interior(rotated) - interior(torch.rot90(x, k, dims=(2, 3)))).abs().max()) for k in range(4))
    assert err < 2e-2
    # On white noise, the hardest input for a resampling filter: the identity and integer shifts are exact.
    noise = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
    f64 = torch.tensor(resample_filter(), dtype=torch.float64)
    assert (downsample2x(upsample2x(noise, f64), f64) - noise)[..., 6:-6, 6:-6].abs().max() < 1e-9
    assert (apply_affine(noise, torch.eye(3, dtype=torch.float64).expand(2, 3, 3), f64) - noise).abs().max() < 1e-9
    shifted = apply_affine(noise, translate2d(torch.full([2], 3.0, dtype=torch.float64),
                                              torch.zeros(2, dtype=torch.float64)), f64)   # out(p) = in(p + 3)
    assert (shifted - torch.nn.functional.pad(noise, [0, 3, 0, 0], mode="reflect")[..., 3:]).abs().max() < 1e-5


def test_wavelet_filters_are_orthonormal_with_their_vanishing_moments() -> None:
    """sym6 and sym2 are orthonormal scaling filters (sum sqrt 2, orthogonal to their even shifts) whose wavelets have
    6 and 2 vanishing moments: the properties that define them up to the choice of roots, checked by hand here."""
    for h, moments in ((np.array(SYM6), 6), (np.array(SYM2), 2)):
        assert abs(h.sum() - math.sqrt(2)) < 1e-12
        for m in range(len(h) // 2):
            assert abs(float((h[:len(h) - 2 * m] * h[2 * m:]).sum()) - (1.0 if m == 0 else 0.0)) < 1e-12
        k = np.arange(len(h))
        g = h[::-1] * (-1.0) ** k                      # the wavelet (high-pass) filter
        for m in range(moments):
            assert abs(float((g * k ** m).sum())) < 1e-6 * max(1, len(h) ** m)


@pytest.mark.parametrize("res", [16, 32])
def test_geometric_ops_that_do_not_fire_leave_the_images_unchanged(res: int) -> None:
    """Once p > 0, every image passes the geometric resampling, also when no op fires for it. The old windowed-sinc
    pair low-passed those images (RMS error 0.39 on noise: D never saw fine detail again); NVlabs' sym6 pair is
    exact, so an image that is not augmented reaches D as it was."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, res, res) * 2 - 1
    y = build_augment_pipe("bgc", p=1e-12)(x)
    assert (y - x).abs().max() < 1e-5


def test_pipelines_equal_nvlabs_augment_py_on_the_same_random_numbers() -> None:
    """tests/reference/nvlabs_augment.npz holds NVlabs' AugmentPipe (stylegan3 training/augment.py) applied to noise
    images after torch.manual_seed (make_nvlabs_augment.py says how it was made). Every op draws its random numbers
    in NVlabs' order with NVlabs' conventions (inverse matrices, the half-pixel conjugated fine grid, sym6 resampling,
    the sym2 band bank), so the same seed gives the same images, up to float32 rounding."""
    ref = np.load(Path(__file__).with_name("reference") / "nvlabs_augment.npz")
    x = torch.from_numpy(ref["x"])
    for name in ("bgc", "bgcfnc"):
        torch.manual_seed(int(ref["seed"]))
        with torch.no_grad():
            y = build_augment_pipe(name, p=float(ref[f"{name}_p"]))(x)
        err = float((y - torch.from_numpy(ref[f"{name}_out"])).abs().max())
        assert err < 1e-4, (name, err)


def test_xflip_and_rotate90_produce_exact_variants() -> None:
    """Up to sym6's slight asymmetry, which a mirror turns into a small phase error (1e-2 on these smooth images,
    NVlabs alike); unmoved images are exact."""
    torch.manual_seed(2)
    x = smooth_images(1).repeat(16, 1, 1, 1)
    y = AugmentPipe(xflip=1, p=1.0)(x)
    flips = [float((interior(y[i]) - interior(x[i])).abs().max()) < 2e-2 for i in range(16)]
    mirrored = [float((interior(y[i]) - interior(x[i].flip(2))).abs().max()) < 2e-2 for i in range(16)]
    assert all(a or b for a, b in zip(flips, mirrored)) and any(flips) and any(mirrored)
    y = AugmentPipe(rotate90=1, p=1.0)(x)
    ks = []
    for i in range(16):
        errs = [float((interior(y[i]) - interior(torch.rot90(x[i], k, dims=(1, 2)))).abs().max()) for k in range(4)]
        assert min(errs) < 2e-2
        ks.append(errs.index(min(errs)))
    assert len(set(ks)) >= 3


def test_colour_ops_on_grey_images() -> None:
    torch.manual_seed(3)
    grey = torch.full([32, 3, 8, 8], 0.2) + torch.linspace(-0.1, 0.1, 8).view(1, 1, 1, 8)
    # Hue rotates around the luma axis and saturation scales away from it: grey is a fixed point of both.
    for op in ("hue", "saturation"):
        assert (AugmentPipe(**{op: 1}, p=1.0)(grey) - grey).abs().max() < 1e-5
    # Brightness adds the same offset to every pixel and channel: the mean moves, the spread does not.
    y = AugmentPipe(brightness=1, p=1.0)(grey)
    shift = (y - grey).flatten(1)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-6)
    assert shift[:, 0].abs().mean() > 0.05 and abs(float(shift[:, 0].std()) - 0.2) < 0.1
    # Contrast multiplies by 2^N(0, 0.5^2); luma flip maps grey g to -g on some samples.
    y = AugmentPipe(contrast=1, p=1.0)(grey)
    ratio = (y / grey).flatten(1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4) and (ratio[:, 0] - 1).abs().max() > 0.1
    y = AugmentPipe(lumaflip=1, p=1.0)(grey)
    neg = [(y[i] + grey[i]).abs().max() < 1e-5 for i in range(32)]
    same = [(y[i] - grey[i]).abs().max() < 1e-5 for i in range(32)]
    assert all(a or b for a, b in zip(neg, same)) and any(neg) and any(same)


def test_colour_matrices_are_valid() -> None:
    axis = torch.ones(3) / math.sqrt(3)
    m = rotate3d(axis, torch.tensor([0.7, -2.0]))[:, :3, :3]
    assert torch.allclose(m @ m.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(m @ axis, axis.expand(2, 3), atol=1e-6)


def test_imgfilter_band_bank_sums_to_identity_and_splits_octaves() -> None:
    pipe = AugmentPipe(imgfilter=1)
    bank = pipe.band_filters.sum(0)
    delta = torch.zeros_like(bank)
    delta[len(bank) // 2] = 1
    assert torch.allclose(bank, delta, atol=1e-6)
    bands = band_filter_bank()
    response = np.abs(np.fft.rfft(bands, 1024, axis=1))             # 0 .. Nyquist
    assert abs(response[0, 0] - 1) < 1e-9 and np.abs(response[1:, 0]).max() < 1e-9     # DC only in the lowest band
    assert abs(response[3, -1] - 1) < 1e-9 and np.abs(response[:3, -1]).max() < 1e-9   # Nyquist only in the top band
    centres = [response[i, int(512 * c)] for i, c in enumerate((0.0, 3 / 16, 3 / 8, 3 / 4))]
    assert min(centres) > 0.5, centres                              # each band passes the middle of its octave


def test_noise_and_cutout_behave() -> None:
    torch.manual_seed(4)
    x = torch.zeros([64, 3, 16, 16])
    y = AugmentPipe(noise=1, p=1.0)(x)
    assert abs(float(y.mean())) < 0.01 and 0.03 < float(y.std()) < 0.2
    x = torch.ones([16, 3, 16, 16])
    y = AugmentPipe(cutout=1, p=1.0)(x)
    zero_frac = (y == 0).float().mean(dim=[1, 2, 3])
    assert torch.allclose(zero_frac.max(), torch.tensor(0.25), atol=0.07)   # an 8x8 square of 16x16 at most
    assert ((y == 0) | (y == 1)).all()


def test_controller_moves_p_towards_target_at_the_specified_speed() -> None:
    pipe = AugmentPipe(xflip=1)
    ada = AdaController(pipe, target=0.6, interval=4, speed_kimg=500)
    batch, steps = 64, 0
    while float(pipe.p) < 1.0:
        ada.accumulate(torch.ones([batch, 1]))        # D is sure every real is real: overfitting
        ada.step(batch)
        steps += 1
        assert steps < 10000
    assert steps * batch == pytest.approx(500_000, rel=0.01)   # 0 -> 1 in 500 kimg
    top = float(pipe.p)                                        # not capped at 1 (NVIDIA): float steps may pass it
    assert top == pytest.approx(1.0, abs=4 * batch / 500_000)
    for _ in range(8):
        ada.accumulate(-torch.ones([batch, 1]))
        ada.step(batch)
    assert float(pipe.p) == pytest.approx(top - 2 * 4 * batch / 500_000, abs=1e-6)
    # Only every 4th minibatch updates p.
    before = float(pipe.p)
    ada.accumulate(-torch.ones([batch, 1]))
    assert ada.step(batch) is None and float(pipe.p) == before
