"""Equivariance metrics EQ-T, EQ-T_frac and EQ-R (Karras et al. 2021, "Alias-Free GANs", appendix E).

For StyleGAN3 generators, whose synthesis input exposes a user transform `G.synthesis.input.transform`
(3x3, the inverse of the wanted image transform): each sample renders an image with the identity
transform and again with a random translation or rotation, moves the first image the same way with
a resampling operator, and accumulates the squared difference inside the valid mask. The result is
the PSNR (dynamic range 2, images in [-1, 1]) of the masked MSE pooled over all samples, in dB.

- EQ-T (`eqt50k_int`): translation by a whole number of pixels, |t| <= 0.125 of the image per axis.
- EQ-T_frac (`eqt50k_frac`): fractional translation, resampled with a 6-tap Lanczos-3 filter.
- EQ-R (`eqr50k`): rotation by U(-pi, pi), resampled by 4x upsampling with an oriented band-limited
  Lanczos filter then bilinear sampling; the generated image is band-limited the same way
  (pseudo-rotation) so both sides carry the same spectrum.

Translations are in image-size units (one pixel = 1 / resolution); the content moves by +t.
Generators are run with noise_mode='const', so both renders of a sample see the same noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F

from ganbench.errors import ConfigError, NotApplicable
from ganbench.metrics._sampling import label_sampler, progress_reporter
from ganbench.metrics.base import Metric, register_variant

if TYPE_CHECKING:
    from ganbench.metrics.context import MetricContext

KINDS = ("int", "frac", "rot")


# ---- resampling operators --------------------------------------------------------------------------------------

def sinc(x: torch.Tensor) -> torch.Tensor:
    """Normalised sinc, sin(pi x) / (pi x), with sinc(0) = 1."""
    y = (x * math.pi).abs()
    return torch.where(y < 1e-30, torch.ones_like(x), torch.sin(y) / y.clamp_min(1e-30))


def lanczos_window(x: torch.Tensor, a: int) -> torch.Tensor:
    """Lanczos window sinc(x / a) on |x| < a, zero outside."""
    return torch.where(x.abs() < a, sinc(x / a), torch.zeros_like(x))


def rotation_matrix(angle: float | torch.Tensor) -> torch.Tensor:
    """3x3 matrix [[cos, sin, 0], [-sin, cos, 0], [0, 0, 1]] in the convention of the transform buffer."""
    a = torch.as_tensor(angle, dtype=torch.float64)
    c, s = torch.cos(a), torch.sin(a)
    return torch.stack([torch.stack([c, s, a * 0]), torch.stack([-s, c, a * 0]),
                        torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)])


def _shift(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """out[y, x] = in[y - dy, x - dx], zero where that falls outside."""
    h, w = x.shape[2], x.shape[3]
    out = torch.zeros_like(x)
    if abs(dx) < w and abs(dy) < h:
        out[:, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            x[:, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _box_mask(x: torch.Tensor, x0: int, x1: int, y0: int, y1: int) -> torch.Tensor:
    """Ones on rows [y0, y1) and columns [x0, x1) (clipped to the image), zeros elsewhere."""
    m = torch.zeros_like(x)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, x.shape[3]), min(y1, x.shape[2])
    if x0 < x1 and y0 < y1:
        m[:, :, y0:y1, x0:x1] = 1
    return m


def integer_translate(x: torch.Tensor, tx: float, ty: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the content by (round(tx * W), round(ty * H)) pixels; returns (image, valid mask)."""
    h, w = x.shape[2], x.shape[3]
    ix, iy = int(round(float(tx) * w)), int(round(float(ty) * h))
    return _shift(x, ix, iy), _box_mask(x, ix, w + ix, iy, h + iy)


def lanczos_taps(frac: float, a: int = 3) -> tuple[list[int], torch.Tensor]:
    """Offsets j = -(a-1)..a and normalised weights L(j - frac) for reading x(p - frac) from x[p - j]."""
    offsets = list(range(-(a - 1), a + 1))
    d = torch.tensor(offsets, dtype=torch.float64) - frac
    weights = sinc(d) * sinc(d / a)
    return offsets, weights / weights.sum()


def fractional_translate(x: torch.Tensor, tx: float, ty: float, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the content by (tx * W, ty * H) pixels with separable Lanczos-a interpolation; (image, valid mask).

    The mask keeps the pixels whose 2a taps all lie inside the source image.
    """
    h, w = x.shape[2], x.shape[3]
    sx, sy = float(tx) * w, float(ty) * h
    ix, iy = math.floor(sx), math.floor(sy)
    out = x
    for axis, (i, frac) in enumerate(((ix, sx - ix), (iy, sy - iy))):
        offsets, weights = lanczos_taps(frac, a)
        acc = torch.zeros_like(out)
        for j, wt in zip(offsets, weights.tolist()):
            acc = acc + wt * (_shift(out, i + j, 0) if axis == 0 else _shift(out, 0, i + j))
        out = acc
    return out, _box_mask(x, ix + a, w + ix - (a - 1), iy + a, h + iy - (a - 1))


def bandlimit_filter(mat: torch.Tensor, a: int = 3, amax: int = 16, aflt: int = 64, up: int = 4,
                     cutoff_in: float = 1.0, cutoff_out: float = 1.0) -> torch.Tensor:
    """Odd-sized 2-D FIR filter (at `up`x resolution) band-limiting both before and after the affine `mat`.

    It is the product of two circular convolutions on a (2 aflt up - 1)^2 grid of 1/up-pixel taps: the
    input-space sinc with the output-space (transformed) sinc, and the two Lanczos-a windows likewise;
    cropped to +-amax pixels and normalised so that each of the up x up polyphase components sums to 1/up^2.
    """
    if not a <= amax < aflt:
        raise ConfigError(f"bandlimit filter needs a <= amax < aflt, got {a}, {amax}, {aflt}")
    mat = torch.as_tensor(mat, dtype=torch.float64)
    n = aflt * up * 2 - 1
    centre = aflt * up - 1
    # Tap positions in pixels, index 0 = position 0 (FFT order), so the circular convolutions stay centred.
    taps = ((torch.arange(n, dtype=torch.float64) - centre) / up).roll(-centre)
    yi, xi = torch.meshgrid(taps, taps, indexing="ij")
    xo, yo = (torch.stack([xi, yi], dim=2) @ mat[:2, :2].T).unbind(2)

    def circ_conv(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        return torch.fft.ifftn(torch.fft.fftn(p) * torch.fft.fftn(q)).real

    f = circ_conv(sinc(xi * cutoff_in) * sinc(yi * cutoff_in), sinc(xo * cutoff_out) * sinc(yo * cutoff_out))
    f = f * circ_conv(lanczos_window(xi, a) * lanczos_window(yi, a), lanczos_window(xo, a) * lanczos_window(yo, a))
    f = f.roll([centre, centre], dims=[0, 1])  # back to the centre at index `centre`
    crop = (aflt - amax) * up
    f = f[crop:-crop, crop:-crop]  # (2 amax up - 1)^2, centred
    f = F.pad(f, [0, 1, 0, 1]).reshape(amax * 2, up, amax * 2, up)
    f = f / f.sum(dim=[0, 2], keepdim=True) / up**2
    return f.reshape(amax * 2 * up, amax * 2 * up)[:-1, :-1].float()


def affine_transform(x: torch.Tensor, mat: torch.Tensor, a: int = 3, amax: int = 6, up: int = 4
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample x under the 3x3 image transform `mat`: band-limited `up`x upsampling, then bilinear sampling."""
    from model_zoo.layers import upsample2d

    n, _c, h, w = x.shape
    mat = torch.as_tensor(mat, dtype=torch.float64)
    f = bandlimit_filter(mat, a=a, amax=amax, up=up).to(x.device)
    p = f.shape[0] // 2
    theta = torch.linalg.inv(mat)
    theta[:2, 2] *= 2  # image units -> grid_sample's [-1, 1] units
    theta[0, 2] += 1 / up / w  # the upsampled grid is offset by half a sub-pixel
    theta[1, 2] += 1 / up / h
    theta[0, :] *= w / (w + p / up * 2)  # the padded upsampled image is wider than the output
    theta[1, :] *= h / (h + p / up * 2)
    grid = F.affine_grid(theta[:2, :3].to(x.dtype).to(x.device).unsqueeze(0).repeat(n, 1, 1), list(x.shape),
                         align_corners=False)
    y = upsample2d(x, f, up=up, padding=p)
    z = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    m = torch.zeros_like(y)
    c = p * 2 + 1
    m[:, :, c:-c, c:-c] = 1
    m = F.grid_sample(m, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return z, m


def fractional_rotate(x: torch.Tensor, angle: float, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate the content as the transform buffer rotation_matrix(-angle) does; (image, valid mask)."""
    return affine_transform(x, rotation_matrix(angle), a=a, amax=a * 2)


def pseudo_rotate(x: torch.Tensor, angle: float, a: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Band-limit x as a rotation by `angle` would, without rotating it; (image, valid mask)."""
    from model_zoo.layers import filter2d

    f = bandlimit_filter(rotation_matrix(-angle), a=a, amax=a * 2, up=1).to(x.device)
    y = filter2d(x, f)
    c = f.shape[0] // 2
    m = torch.zeros_like(y)
    m[:, :, c:-c, c:-c] = 1
    return y, m


def psnr(sq_err_sum: float, mask_sum: float) -> float:
    """PSNR in dB of the pooled MSE for images in [-1, 1] (dynamic range 2); inf when the MSE is 0."""
    mse = sq_err_sum / mask_sum
    return math.inf if mse == 0 else 20 * math.log10(2) - 10 * math.log10(mse)


# ---- the sampling loop ---------------------------------------------------------------------------------------

def _transform_of(G: Any) -> torch.Tensor | None:
    m = getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None)
    return m if isinstance(m, torch.Tensor) and tuple(m.shape) == (3, 3) else None


def missing_transform(G: Any) -> str | None:
    """Why G cannot be measured for equivariance (it has no StyleGAN3 input transform), or None."""
    if _transform_of(G) is None:
        return (f"equivariance metrics need a StyleGAN3 generator with G.synthesis.input.transform; "
                f"{type(G).__name__} has none")
    return None


def input_transform(G: Any) -> torch.Tensor:
    """G.synthesis.input.transform, or NotApplicable naming the generator when it has none."""
    why = missing_transform(G)
    if why:
        raise NotApplicable(why)
    return _transform_of(G)


@torch.no_grad()
def equivariance(G: Any, n: int, kinds: tuple[str, ...] = KINDS, batch_size: int = 16, seed: int = 0,
                 translate_max: float = 0.125, rotate_max: float = 1.0, device: str | torch.device = "cpu",
                 labels: Callable[[int, torch.Generator], torch.Tensor | None] | None = None,
                 report: Callable[[int], None] | None = None) -> dict[str, float]:
    """PSNR (dB) per kind in `kinds` ('int', 'frac', 'rot') over n samples; G's transform is restored after."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ConfigError(f"equivariance kinds must be among {KINDS}, got {kinds}")
    M = input_transform(G)
    saved = M.detach().clone()
    eye = torch.eye(3, dtype=M.dtype, device=M.device)
    gen = torch.Generator().manual_seed(seed)
    sums = {k: [0.0, 0.0] for k in kinds}
    res = int(G.img_resolution)
    try:
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            z = torch.randn([b, G.z_dim], generator=gen).to(device)
            c = labels(b, gen) if labels is not None else None
            ws = G.mapping(z, None if c is None else c.to(device), truncation_psi=1.0)
            M.copy_(eye)
            orig = G.synthesis(ws, noise_mode="const").float()
            for kind in kinds:
                if kind == "rot":
                    angle = float((torch.rand([], generator=gen, dtype=torch.float64) * 2 - 1) * rotate_max * math.pi)
                    M.copy_(rotation_matrix(-angle).to(M))
                    img = G.synthesis(ws, noise_mode="const").float()
                    ref, ref_mask = fractional_rotate(orig, angle)
                    img, img_mask = pseudo_rotate(img, angle)
                    mask = ref_mask * img_mask
                else:
                    t = (torch.rand([2], generator=gen, dtype=torch.float64) * 2 - 1) * translate_max
                    if kind == "int":
                        t = (t * res).round() / res
                    M.copy_(eye)
                    M[:2, 2] = -t.to(M)
                    img = G.synthesis(ws, noise_mode="const").float()
                    move = integer_translate if kind == "int" else fractional_translate
                    ref, mask = move(orig, float(t[0]), float(t[1]))
                sums[kind][0] += float(((ref - img).square() * mask).double().sum())
                sums[kind][1] += float(mask.double().sum())
            if report is not None:
                report(start + b)
    finally:
        M.copy_(saved)
    return {k: psnr(*sums[k]) for k in kinds}


# ---- registered metrics --------------------------------------------------------------------------------------

@dataclass
class Equivariance(Metric):  # registered below once per kind
    """Equivariance PSNR of one kind over n_gen samples (NVlabs: 50k)."""

    n_gen: int | None = 50000  # None: the context's n_gen
    batch_size: int = 16
    translate_max: float = 0.125
    rotate_max: float = 1.0  # times pi

    needs = frozenset({"generator", "labels"})
    reference = "StyleGAN3 metrics/equivariance.py (EQ-T integer/fractional, EQ-R; PSNR in dB)"
    cost = "two synthesis calls per sample (original + transformed) over n_gen samples"
    work_per_sample = 2.0
    kind = "int"

    def not_applicable_to(self, G: Any) -> str | None:
        return missing_transform(G)

    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        G = ctx.generator
        if not isinstance(G, torch.nn.Module):
            raise ConfigError(f"{self.name} needs a generator network, not pre-generated images")
        input_transform(G)
        n = self.n_gen or ctx.num_gen()
        out = equivariance(G, n, (self.kind,), self.batch_size, ctx.seed, self.translate_max, self.rotate_max,
                           ctx.device, label_sampler(ctx, G), progress_reporter(ctx, self.name, n))
        return {self.name: out[self.kind]}


register_variant(Equivariance, "eqt50k_int", "EQ-T: integer-translation equivariance PSNR (dB, higher is better).",
                 {"eqt50k_int": "higher"}, class_attrs={"kind": "int"})
register_variant(Equivariance, "eqt50k_frac", "EQ-T_frac: fractional-translation equivariance PSNR (dB).",
                 {"eqt50k_frac": "higher"}, class_attrs={"kind": "frac"})
register_variant(Equivariance, "eqr50k", "EQ-R: rotation equivariance PSNR (dB, higher is better).",
                 {"eqr50k": "higher"}, class_attrs={"kind": "rot"})


__all__ = ["equivariance", "integer_translate", "fractional_translate", "fractional_rotate", "pseudo_rotate",
           "bandlimit_filter", "psnr"]
