"""Multi-scale SSIM between pairs of images: ProGAN's diversity measure (lower = more diverse).

Pairs are consecutive images (0, 1), (2, 3), ... of a set. Per pair: 5 scales with weights
[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]; at each scale a Gaussian window (11x11, sigma 1.5, 'valid'
convolution) gives SSIM and its contrast-structure term with K1=0.01, K2=0.03 and a 0..255 range;
2x2 average pooling between scales (an odd side is zero-padded by one, as pytorch-msssim does). When
a scale is smaller than the window, the window shrinks to min(11, H, W) with sigma scaled alike
(ProGAN), so 32x32 images work. SSIM and CS are clipped at 0 before the weighted product.

Channels: `channels='per-channel'` (default) forms the weighted product per colour channel and then
averages the channels, as pytorch-msssim and tf.image.ssim_multiscale do; `channels='pooled'`
averages SSIM/CS over channels first (ProGAN's metrics/ms_ssim.py). Both agree on grey images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

import torch
import torch.nn.functional as F

from ganbench.errors import ConfigError
from ganbench.metrics.base import METRICS, Metric

if TYPE_CHECKING:
    from ganbench.metrics.context import MetricContext

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
CHANNEL_MODES = ("per-channel", "pooled")


def gaussian_window(size: int, sigma: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Normalised 1-D Gaussian of `size` taps centred between taps for even sizes (separable 2-D window)."""
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-coords**2 / (2 * sigma**2))
    return g / g.sum()


def _band(n: int, win: torch.Tensor) -> torch.Tensor:
    """[n, n - k + 1] matrix whose columns hold `win` at each 'valid' position: x @ band = 1-D valid filtering."""
    k = win.numel()
    rows = torch.arange(n - k + 1, device=win.device)[None, :] + torch.arange(k, device=win.device)[:, None]
    band = torch.zeros(n, n - k + 1, dtype=win.dtype, device=win.device)
    band.scatter_(0, rows, win[:, None].expand(k, n - k + 1).contiguous())
    return band


def _filter(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' Gaussian filter per channel.

    Up to 256 px as two banded matrix products (BLAS beats depthwise conv on CPU there), above as
    depthwise convolutions, whose cost does not grow with the image side.
    """
    if max(x.shape[2], x.shape[3]) <= 256:
        return _band(x.shape[2], win).T @ x @ _band(x.shape[3], win)
    c, k = x.shape[1], win.numel()
    x = F.conv2d(x, win.reshape(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return F.conv2d(x, win.reshape(1, 1, 1, k).expand(c, 1, 1, k), groups=c)


def ssim_terms(x: torch.Tensor, y: torch.Tensor, max_val: float = 255.0, win_size: int = 11,
               win_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> tuple[torch.Tensor, torch.Tensor]:
    """SSIM and contrast-structure maps averaged over space: two [N, C] tensors (window shrinks on small images)."""
    size = min(win_size, x.shape[2], x.shape[3])
    win = gaussian_window(size, size * win_sigma / win_size, x.dtype).to(x.device)
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    mu_x, mu_y = _filter(x, win), _filter(y, win)
    sxx = _filter(x * x, win) - mu_x**2
    syy = _filter(y * y, win) - mu_y**2
    sxy = _filter(x * y, win) - mu_x * mu_y
    cs_map = (2 * sxy + c2) / (sxx + syy + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, weights: Iterable[float] = MS_SSIM_WEIGHTS, max_val: float = 255.0,
            win_size: int = 11, win_sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
            channels: str = "per-channel") -> torch.Tensor:
    """MS-SSIM of each image pair (x[i], y[i]) of NCHW images in 0..max_val: [N] float64."""
    if channels not in CHANNEL_MODES:
        raise ConfigError(f"channels must be one of {CHANNEL_MODES}, got {channels!r}")
    if x.shape != y.shape or x.ndim != 4:
        raise ConfigError(f"MS-SSIM needs two NCHW batches of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    w = torch.tensor(list(weights), dtype=torch.float64, device=x.device)
    levels = w.numel()
    if min(x.shape[2], x.shape[3]) < 2 ** (levels - 1):
        raise ConfigError(f"MS-SSIM with {levels} scales needs images of at least {2 ** (levels - 1)} px, "
                          f"got {x.shape[2]}x{x.shape[3]}")
    x, y = x.to(torch.float64), y.to(torch.float64)
    terms = []
    for level in range(levels):
        ssim, cs = ssim_terms(x, y, max_val, win_size, win_sigma, k1, k2)
        if channels == "pooled":
            ssim, cs = ssim.mean(dim=1, keepdim=True), cs.mean(dim=1, keepdim=True)
        terms.append((ssim if level == levels - 1 else cs).clamp_min(0))
        if level < levels - 1:
            pad = (x.shape[2] % 2, x.shape[3] % 2)
            x, y = (F.avg_pool2d(t, kernel_size=2, padding=pad) for t in (x, y))
    stacked = torch.stack(terms, dim=0)  # [levels, N, C]
    return torch.prod(stacked ** w[:, None, None], dim=0).mean(dim=1)


def consecutive_pairs(batches: Iterable[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Re-batch a stream of images into pairs (0, 1), (2, 3), ...; an odd last image is dropped."""
    carry = None
    for images in batches:
        if carry is not None:
            images = torch.cat([carry, images])
            carry = None
        if images.shape[0] % 2:
            carry, images = images[-1:], images[:-1]
        if images.shape[0]:
            yield images[0::2], images[1::2]


def mean_ms_ssim(batches: Iterable[torch.Tensor], **kwargs) -> float:
    """Mean MS-SSIM over consecutive pairs of a stream of uint8 NCHW images."""
    total, count = 0.0, 0
    for a, b in consecutive_pairs(batches):
        vals = ms_ssim(a, b, **kwargs)
        total += float(vals.sum())
        count += vals.numel()
    if count == 0:
        raise ConfigError("MS-SSIM needs at least two images")
    return total / count


@METRICS.register("ms_ssim")
@dataclass
class MSSSIM(Metric):
    """Mean MS-SSIM of consecutive generated pairs; ProGAN used 20k images (10k pairs): n_gen=20000."""

    n_gen: int | None = None  # None: the context's n_gen
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS
    win_size: int = 11
    win_sigma: float = 1.5
    k1: float = 0.01
    k2: float = 0.03
    channels: str = "per-channel"

    seed_free_on_images = True   # see Metric
    name = "ms_ssim"
    outputs = {"ms_ssim": None}  # neither direction is better: it should match the real data's value
    needs = frozenset({"gen_images"})
    reference = "ProGAN/AC-GAN MS-SSIM diversity (5 scales, 11x11 Gaussian); pytorch-msssim above 160 px"
    cost = "its own generator pass over n_gen images, one MS-SSIM per consecutive pair"

    def __post_init__(self) -> None:
        if self.channels not in CHANNEL_MODES:
            raise ConfigError(f"ms_ssim channels must be one of {CHANNEL_MODES}, got {self.channels!r}")
        self.weights = tuple(float(v) for v in self.weights)

    def _kwargs(self) -> dict:
        return dict(weights=self.weights, win_size=self.win_size, win_sigma=self.win_sigma, k1=self.k1,
                    k2=self.k2, channels=self.channels)

    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        images = (imgs for imgs, _z, _c in ctx.generated_batches(self.n_gen, seed=ctx.seed))
        return {"ms_ssim": mean_ms_ssim(images, **self._kwargs())}


@METRICS.register("ms_ssim_real")
@dataclass
class MSSSIMReal(MSSSIM):
    """The same on consecutive pairs of the first n_real reals: the value a generator's `ms_ssim` should match."""

    n_real: int | None = None  # None: the context's n_real

    name = "ms_ssim_real"
    outputs = {"ms_ssim_real": None}
    needs = frozenset({"real_images"})
    cost = "n_gen real images, one MS-SSIM per consecutive pair (no generator)"

    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        images = (imgs for imgs, _labels in ctx.real_batches(self.n_real))
        return {"ms_ssim_real": mean_ms_ssim(images, **self._kwargs())}
