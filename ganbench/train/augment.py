"""Adaptive discriminator augmentation (ADA): a differentiable augmentation pipeline and its p controller.

Every image shown to D passes through `AugmentPipe`. Each op fires per sample with probability
`p * weight`, so `p = 0` is exactly the identity and every op is differentiable (G learns through it).
Geometric ops are composed into one 3x3 matrix and applied in a single resampling: reflect padding,
2x upsampling and downsampling with the sym6 wavelet filter pair around bilinear sampling (as NVlabs: the pair is
exact, so an image no geometric op moved comes out unchanged rather than low-passed). Colour ops are composed
into one 4x4 matrix acting on homogeneous RGB. Defaults and presets follow stylegan2-ada-pytorch.

`AdaController` moves p every `interval` minibatches by sign(r_t - target) * (batch * interval) /
(speed_kimg * 1000), where r_t = E[sign(D(real))]: with the default 500 kimg, p can go 0 -> 1 in 500k
real images shown to D.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import ConfigError

GEOMETRIC_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
OTHER_OPS = ("imgfilter", "noise", "cutout")
ALL_OPS = GEOMETRIC_OPS + COLOR_OPS + OTHER_OPS

_BLIT = {"xflip": 1, "rotate90": 1, "xint": 1}
_GEOM = {"scale": 1, "rotate": 1, "aniso": 1, "xfrac": 1}
_COLOR = {op: 1 for op in COLOR_OPS}
PRESETS: dict[str, dict[str, float]] = {
    "blit": _BLIT,
    "geom": _GEOM,
    "color": _COLOR,
    "filter": {"imgfilter": 1},
    "noise": {"noise": 1},
    "cutout": {"cutout": 1},
    "bg": {**_BLIT, **_GEOM},
    "bgc": {**_BLIT, **_GEOM, **_COLOR},
    "bgcf": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1},
    "bgcfn": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1},
    "bgcfnc": {**_BLIT, **_GEOM, **_COLOR, "imgfilter": 1, "noise": 1, "cutout": 1},
}

# Scaling (low-pass) filters of Daubechies' least-asymmetric wavelets sym6 and sym2: published constants (the values
# of PyWavelets and of stylegan2-ada-pytorch's augment.py). Orthonormal: they sum to sqrt(2) and are orthogonal to
# their own even shifts, which is what makes the 2x up/down pair below exact.
SYM6 = (0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
        0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
        -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148)
SYM2 = (-0.12940952255092145, 0.22414386804185735, 0.836516303737469, 0.48296291314469025)

# The image filter's bands, lowest first (0-1/8, 1/8-1/4, 1/4-1/2, 1/2-1 of Nyquist), and their expected share of
# power in natural images (NVlabs' assumption).
FILTER_BAND_POWER = (10.0, 1.0, 1.0, 1.0)


# ---------------------------------------------------------------------------------------------------
# Pure helpers: filters, matrices, resampling.

def resample_filter() -> np.ndarray:
    """The geometric ops' 2x resampling filter: sym6 with unit DC gain (12 taps)."""
    h = np.asarray(SYM6, dtype=np.float64)
    return h / h.sum()


def band_filter_bank(bands: int = len(FILTER_BAND_POWER)) -> np.ndarray:
    """[bands, taps] zero-phase filters splitting the spectrum into octaves that sum to the identity.

    From sym2's power-complementary half-band pair lo(z) = H(z)H(1/z)/2 and hi(z) = H(-z)H(-1/z)/2 (lo + hi = 1):
    the top band is hi(z), the next lo(z)hi(z^2), then lo(z)lo(z^2)hi(z^4), and the lowest lo(z)lo(z^2)lo(z^4), so
    the bands telescope to a unit impulse (the same bank as NVlabs' augment.py builds).
    """
    h = np.asarray(SYM2, dtype=np.float64)
    g = h * (-1.0) ** np.arange(h.size)                   # H(-z)
    lo, hi = np.convolve(h, h[::-1]) / 2, np.convolve(g, g[::-1]) / 2

    def dilate(f: np.ndarray, k: int) -> np.ndarray:   # f(z^k): k - 1 zeros between the taps
        out = np.zeros((f.size - 1) * k + 1)
        out[::k] = f
        return out

    rows, low = [], np.ones(1)
    for level in range(bands - 1):                        # top band first: hi(z), lo(z)hi(z^2), ...
        rows.append(np.convolve(low, dilate(hi, 2 ** level)))
        low = np.convolve(low, dilate(lo, 2 ** level))
    rows.append(low)
    taps = max(r.size for r in rows)
    bank = np.zeros((bands, taps))
    for i, r in enumerate(reversed(rows)):                # lowest band first
        start = (taps - r.size) // 2
        bank[i, start:start + r.size] = r
    return bank


def _batch_eye(n: int, size: int, device: torch.device) -> torch.Tensor:
    return torch.eye(size, device=device).unsqueeze(0).repeat(n, 1, 1)


def translate2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Batch of 3x3 translation matrices."""
    m = _batch_eye(tx.shape[0], 3, tx.device)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def scale2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    """Batch of 3x3 scaling matrices."""
    m = _batch_eye(sx.shape[0], 3, sx.device)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def rotate2d(theta: torch.Tensor) -> torch.Tensor:
    """Batch of 3x3 counter-clockwise rotation matrices (radians)."""
    m = _batch_eye(theta.shape[0], 3, theta.device)
    c, s = torch.cos(theta), torch.sin(theta)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def translate3d(t: torch.Tensor) -> torch.Tensor:
    """Batch of 4x4 matrices adding t to every colour channel."""
    m = _batch_eye(t.shape[0], 4, t.device)
    m[:, :3, 3] = t[:, None]
    return m


def scale3d(s: torch.Tensor) -> torch.Tensor:
    """Batch of 4x4 matrices scaling every colour channel by s."""
    m = _batch_eye(s.shape[0], 4, s.device)
    m[:, 0, 0] = m[:, 1, 1] = m[:, 2, 2] = s
    return m


def rotate3d(axis: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Batch of 4x4 matrices rotating colours by theta around the unit `axis` (Rodrigues)."""
    n = theta.shape[0]
    x, y, z = axis[0], axis[1], axis[2]
    k = torch.tensor([[0, -z, y], [z, 0, -x], [-y, x, 0]], device=theta.device, dtype=theta.dtype)
    c, s = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
    r = torch.eye(3, device=theta.device) + s * k + (1 - c) * (k @ k)
    m = _batch_eye(n, 4, theta.device)
    m[:, :3, :3] = r
    return m


def _filter_1d(x: torch.Tensor, f: torch.Tensor, dim: int, pad: int) -> torch.Tensor:
    """Correlate each channel of NCHW `x` with 1-D `f` along H (dim=2) or W (dim=3), zero padding `pad`."""
    c = x.shape[1]
    if dim == 3:
        w = f.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
        return F.conv2d(F.pad(x, [pad, pad, 0, 0]), w, groups=c)
    w = f.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, [0, 0, pad, pad]), w, groups=c)


def upsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2x upsampling: zero insertion, then convolution with the even-length `f` (gain 2 per axis).

    Coarse sample i sits at fine position 2i + 0.5 (pixel centres align). With `downsample2x`, which correlates with
    the same filter, the pair is an adjoint pair: exact for an orthogonal wavelet filter such as sym6.
    """
    n, c, h, w = x.shape
    taps = f.numel()
    y = torch.stack([x, torch.zeros_like(x)], dim=-1).reshape(n, c, h, 2 * w)
    y = torch.stack([y, torch.zeros_like(y)], dim=3).reshape(n, c, 2 * h, 2 * w)
    lo = taps // 2 - 1
    y = F.pad(y, [lo + 1, lo, lo + 1, lo])
    g = f.flip(0) * 2
    return _filter_1d(_filter_1d(y, g, 3, 0), g, 2, 0)


def downsample2x(x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Correlate with the even-length `f`, then keep every second sample (the inverse of `upsample2x`)."""
    pad = f.numel() // 2 - 1
    y = _filter_1d(_filter_1d(x, f, 3, pad), f, 2, pad)
    return y[:, :, ::2, ::2]


def apply_affine(images: torch.Tensor, g_inv: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """Resample `images` so output pixel p shows input point g_inv @ p (pixel units, origin at centre).

    Reflect-pads by the margin the transformed corners and the filters need, upsamples 2x, samples bilinearly on the
    fine grid, downsamples 2x and crops, so rotations and scalings alias little and the identity transform returns
    the images unchanged.
    """
    n, c, h, w = images.shape
    corners = torch.tensor([[-w / 2, -h / 2, 1], [w / 2, -h / 2, 1], [-w / 2, h / 2, 1], [w / 2, h / 2, 1]],
                           device=images.device, dtype=g_inv.dtype)
    src = corners @ g_inv.transpose(1, 2)                       # [N, 4, 3]
    support = f.numel() // 2   # coarse pixels the up- and down-sampling filters reach together
    mx = float(src[..., 0].abs().max()) - w / 2 + support
    my = float(src[..., 1].abs().max()) - h / 2 + support
    mx, my = int(min(max(math.ceil(mx), 0), w - 1)), int(min(max(math.ceil(my), 0), h - 1))
    x = F.pad(images, [mx, mx, my, my], mode="reflect") if (mx or my) else images
    x = upsample2x(x, f)
    # Fine-grid pixel centres of the output area plus the downsampling filter's reach (k coarse pixels a side), in
    # original pixel units relative to the image centre, taken a quarter pixel (half a fine pixel) lower, as NVlabs
    # conjugates its transform: the fine grid then maps onto itself under flips and quarter turns with the samples
    # staying on their lattice. The sampled area is NVlabs' too: the output plus its filter reach.
    k = (f.numel() + 3) // 4
    hs, ws = h + 2 * k, w + 2 * k
    ys = (torch.arange(2 * hs, device=images.device, dtype=g_inv.dtype) + 0.5) / 2 - hs / 2 + 0.25
    xs = (torch.arange(2 * ws, device=images.device, dtype=g_inv.dtype) + 0.5) / 2 - ws / 2 + 0.25
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx, gy, torch.ones_like(gx)], dim=-1).reshape(1, -1, 3)
    src = pts @ g_inv.transpose(1, 2)                            # [N, 4 hs ws, 3]
    hp, wp = h + 2 * my, w + 2 * mx                              # the padded, upsampled image grid_sample reads
    grid = torch.stack([(src[..., 0] - 0.25) / (wp / 2), (src[..., 1] - 0.25) / (hp / 2)], dim=-1)
    grid = grid.reshape(n, 2 * hs, 2 * ws, 2).to(images.dtype)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return downsample2x(x, f)[:, :, k:k + h, k:k + w]


# ---------------------------------------------------------------------------------------------------

class AugmentPipe(nn.Module):
    """Differentiable per-sample augmentations of NCHW images in [-1, 1], each firing with p * weight."""

    def __init__(self, xflip: float = 0, rotate90: float = 0, xint: float = 0, xint_max: float = 0.125,
                 scale: float = 0, rotate: float = 0, aniso: float = 0, xfrac: float = 0,
                 scale_std: float = 0.2, rotate_max: float = 1, aniso_std: float = 0.2, xfrac_std: float = 0.125,
                 brightness: float = 0, contrast: float = 0, lumaflip: float = 0, hue: float = 0,
                 saturation: float = 0, brightness_std: float = 0.2, contrast_std: float = 0.5,
                 hue_max: float = 1, saturation_std: float = 1,
                 imgfilter: float = 0, imgfilter_bands: tuple[float, ...] = (1, 1, 1, 1), imgfilter_std: float = 1,
                 noise: float = 0, cutout: float = 0, noise_std: float = 0.1, cutout_size: float = 0.5,
                 p: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("p", torch.tensor(float(p)))
        self.weights = {"xflip": xflip, "rotate90": rotate90, "xint": xint, "scale": scale, "rotate": rotate,
                        "aniso": aniso, "xfrac": xfrac, "brightness": brightness, "contrast": contrast,
                        "lumaflip": lumaflip, "hue": hue, "saturation": saturation, "imgfilter": imgfilter,
                        "noise": noise, "cutout": cutout}
        self.xint_max, self.scale_std, self.rotate_max = xint_max, scale_std, rotate_max
        self.aniso_std, self.xfrac_std = aniso_std, xfrac_std
        self.brightness_std, self.contrast_std = brightness_std, contrast_std
        self.hue_max, self.saturation_std = hue_max, saturation_std
        self.imgfilter_bands, self.imgfilter_std = tuple(imgfilter_bands), imgfilter_std
        self.noise_std, self.cutout_size = noise_std, cutout_size
        self.register_buffer("resample_filter", torch.tensor(resample_filter(), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("band_filters", torch.tensor(band_filter_bank(), dtype=torch.float32), persistent=False)

    @property
    def enabled_ops(self) -> list[str]:
        return [k for k, v in self.weights.items() if v > 0]

    def _gate(self, name: str, n: int, device: torch.device, p_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Bool [N]: which samples apply op `name` this call."""
        prob = self.p * self.weights[name] if p_scale is None else p_scale
        return torch.rand([n], device=device) < prob

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Augment a batch; identity (bit-exact) when p == 0."""
        if float(self.p) <= 0 or not self.enabled_ops:
            return images
        n, c, h, w = images.shape
        dev = images.device
        w_ = self.weights
        x = images

        g = _batch_eye(n, 3, dev)       # output pixel -> input point
        ident = True
        if w_["xflip"] > 0:
            i = torch.floor(torch.rand([n], device=dev) * 2) * self._gate("xflip", n, dev)
            g = g @ scale2d(1 - 2 * i, torch.ones_like(i))
            ident = False
        if w_["rotate90"] > 0:
            i = torch.floor(torch.rand([n], device=dev) * 4) * self._gate("rotate90", n, dev)
            g = g @ rotate2d(math.pi / 2 * i)
            ident = False
        if w_["xint"] > 0:
            t = (torch.rand([n, 2], device=dev) * 2 - 1) * self._gate("xint", n, dev)[:, None]
            g = g @ translate2d(-torch.round(t[:, 0] * self.xint_max * w), -torch.round(t[:, 1] * self.xint_max * h))
            ident = False
        if w_["scale"] > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.scale_std)
            s = torch.where(self._gate("scale", n, dev), s, torch.ones_like(s))
            g = g @ scale2d(1 / s, 1 / s)
            ident = False
        p_rot = 1 - torch.sqrt(torch.clamp(1 - self.p * w_["rotate"], min=0))  # two rotations: ~p overall
        if w_["rotate"] > 0:
            theta = (torch.rand([n], device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = theta * self._gate("rotate", n, dev, p_rot)
            g = g @ rotate2d(theta)
            ident = False
        if w_["aniso"] > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.aniso_std)
            s = torch.where(self._gate("aniso", n, dev), s, torch.ones_like(s))
            g = g @ scale2d(1 / s, s)
            ident = False
        if w_["rotate"] > 0:
            theta = (torch.rand([n], device=dev) * 2 - 1) * math.pi * self.rotate_max
            theta = theta * self._gate("rotate", n, dev, p_rot)
            g = g @ rotate2d(theta)
        if w_["xfrac"] > 0:
            t = torch.randn([n, 2], device=dev) * self.xfrac_std * self._gate("xfrac", n, dev)[:, None]
            g = g @ translate2d(-t[:, 0] * w, -t[:, 1] * h)
            ident = False
        if not ident:
            x = apply_affine(x, g, self.resample_filter.to(dev))

        cm = _batch_eye(n, 4, dev)
        color = False
        luma = torch.tensor([1.0, 1.0, 1.0, 0.0], device=dev) / math.sqrt(3)
        vv = torch.outer(luma, luma)
        if w_["brightness"] > 0:
            b = torch.randn([n], device=dev) * self.brightness_std * self._gate("brightness", n, dev)
            cm = translate3d(b) @ cm
            color = True
        if w_["contrast"] > 0:
            s = torch.exp2(torch.randn([n], device=dev) * self.contrast_std)
            s = torch.where(self._gate("contrast", n, dev), s, torch.ones_like(s))
            cm = scale3d(s) @ cm
            color = True
        if w_["lumaflip"] > 0:
            i = torch.floor(torch.rand([n], device=dev) * 2) * self._gate("lumaflip", n, dev)
            cm = (torch.eye(4, device=dev) - 2 * vv * i[:, None, None]) @ cm
            color = True
        if w_["hue"] > 0 and c > 1:
            theta = (torch.rand([n], device=dev) * 2 - 1) * math.pi * self.hue_max
            theta = theta * self._gate("hue", n, dev)
            cm = rotate3d(luma[:3], theta) @ cm
            color = True
        if w_["saturation"] > 0 and c > 1:
            s = torch.exp2(torch.randn([n], device=dev) * self.saturation_std)
            s = torch.where(self._gate("saturation", n, dev), s, torch.ones_like(s))
            cm = (vv + (torch.eye(4, device=dev) - vv) * s[:, None, None]) @ cm
            color = True
        if color:
            flat = x.reshape(n, c, h * w)
            if c == 3:
                flat = cm[:, :3, :3] @ flat + cm[:, :3, 3:]
            elif c == 1:   # grey: the mean gain and offset over the RGB rows
                flat = flat * cm[:, :3, :3].sum(dim=2).mean(dim=1)[:, None, None] + cm[:, :3, 3:].mean(dim=1, keepdim=True)
            else:
                raise ConfigError(f"colour augmentation needs 1 or 3 channels, got {c}")
            x = flat.reshape(n, c, h, w)

        if w_["imgfilter"] > 0:
            x = self._imgfilter(x)
        if w_["noise"] > 0:
            sigma = torch.randn([n, 1, 1, 1], device=dev).abs() * self.noise_std
            sigma = sigma * self._gate("noise", n, dev).view(n, 1, 1, 1)
            x = x + torch.randn_like(x) * sigma
        if w_["cutout"] > 0:
            size = torch.full([n, 2, 1, 1], self.cutout_size, device=dev)
            size = size * self._gate("cutout", n, dev).view(n, 1, 1, 1)
            centre = torch.rand([n, 2, 1, 1], device=dev)
            cx = ((torch.arange(w, device=dev) + 0.5) / w).view(1, 1, w)
            cy = ((torch.arange(h, device=dev) + 0.5) / h).view(1, h, 1)
            keep = ((cx - centre[:, 0]).abs() >= size[:, 0] / 2) | ((cy - centre[:, 1]).abs() >= size[:, 1] / 2)
            x = x * keep.unsqueeze(1).to(x.dtype)
        return x

    def _imgfilter(self, x: torch.Tensor) -> torch.Tensor:
        """Amplify each band by 2^N(0, std^2), each change normalised to keep the expected power (NVlabs' scheme)."""
        n, c, h, w = x.shape
        dev = x.device
        nb = len(FILTER_BAND_POWER)
        power = torch.tensor(FILTER_BAND_POWER, device=dev)
        power = power / power.sum()
        gains = torch.ones([n, nb], device=dev)
        for i, band_weight in enumerate(self.imgfilter_bands):
            if band_weight <= 0:
                continue
            t = torch.exp2(torch.randn([n], device=dev) * self.imgfilter_std)
            t = torch.where(self._gate("imgfilter", n, dev, self.p * self.weights["imgfilter"] * band_weight),
                            t, torch.ones_like(t))
            step = torch.ones_like(gains)
            step[:, i] = t
            gains = gains * step / (step.square() * power).sum(dim=1, keepdim=True).sqrt()
        filt = gains @ self.band_filters.to(dev)           # [N, taps]
        taps = filt.shape[1]
        pad = taps // 2
        xr = x.reshape(1, n * c, h, w)
        fw = filt.repeat_interleave(c, dim=0)
        xr = F.conv2d(F.pad(xr, [pad, pad, 0, 0], mode="reflect" if w > pad else "replicate"),
                      fw.view(n * c, 1, 1, taps), groups=n * c)
        xr = F.conv2d(F.pad(xr, [0, 0, pad, pad], mode="reflect" if h > pad else "replicate"),
                      fw.view(n * c, 1, taps, 1), groups=n * c)
        return xr.reshape(n, c, h, w)


def build_augment_pipe(name: str, p: float = 0.0, **overrides: Any) -> AugmentPipe:
    """An `AugmentPipe` from a preset name (blit, geom, color, filter, noise, cutout, bg, ..., bgcfnc)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown augmentation pipeline {name!r}; known: {', '.join(PRESETS)}")
    bad = [k for k in overrides if k not in AugmentPipe.__init__.__code__.co_varnames]
    if bad:
        raise ConfigError(f"unknown augmentation option(s) {', '.join(bad)}")
    return AugmentPipe(**{**PRESETS[name], **overrides}, p=p)


class AdaController:
    """Adjusts the pipe's p from the sign of D's outputs on reals, towards `target`."""

    def __init__(self, pipe: AugmentPipe, target: float = 0.6, interval: int = 4, speed_kimg: float = 500.0) -> None:
        self.pipe, self.target, self.interval, self.speed_kimg = pipe, target, interval, speed_kimg
        self.sign_sum, self.count, self.calls = 0.0, 0, 0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Record D's logits on (augmented) reals of one minibatch part."""
        self.sign_sum += float(torch.sign(real_logits.detach()).sum())
        self.count += int(real_logits.numel())

    def step(self, batch_size: int, reduce: Any = None) -> float | None:
        """Call once per minibatch; every `interval` calls update p and return r_t (else None).

        `reduce([sum, count]) -> [sum, count]` totals the statistics across processes.
        """
        self.calls += 1
        if self.calls % self.interval != 0:
            return None
        stats = [self.sign_sum, float(self.count)]
        if reduce is not None:
            stats = reduce(stats)
        self.sign_sum, self.count = 0.0, 0
        if stats[1] <= 0:
            return None
        rt = stats[0] / stats[1]
        adjust = np.sign(rt - self.target) * (batch_size * self.interval) / (self.speed_kimg * 1000)
        # No cap at 1, as NVIDIA (p >= 1 applies every augmentation; p must fall below 1 again before less is)
        self.pipe.p.copy_(torch.clamp(self.pipe.p + float(adjust), min=0.0))
        return rt

    def state_dict(self) -> dict[str, Any]:
        return {"sign_sum": float(self.sign_sum), "count": int(self.count), "calls": int(self.calls),
                "p": float(self.pipe.p)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sign_sum, self.count, self.calls = float(state["sign_sum"]), int(state["count"]), int(state["calls"])
        self.pipe.p.fill_(float(state["p"]))
