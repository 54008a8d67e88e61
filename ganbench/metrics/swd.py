"""Sliced Wasserstein distance between Laplacian-pyramid patch descriptors (Karras et al., ProGAN).

Each image set is decomposed into a Laplacian pyramid (5x5 binomial filter, reflect borders) from
full resolution down to 16x16; every level contributes 128 random 7x7 patches per image. Each set's
descriptors are normalised per channel by that set's own mean and std, then the two sets are
compared along random unit directions: project, sort, mean absolute difference. Values are x1e3.

Randomness is explicit and reproducible, and independent of batch size: the patch centres of
image i come from `numpy.random.default_rng([seed, 0, i])`, per level (finest first) x then y
(`rng.integers(3, side - 3, 128)` each); directions come from `default_rng([seed, 1])`, per level
(finest first) and per repeat as `standard_normal((dim, dirs_per_repeat))`. Both image sets use
the same patch positions, so a set compared with itself scores exactly 0.

Memory: descriptors are kept as float32, 128 x 147 values (75 kB) per image, level and set; e.g.
8192 images per set at 256 px (5 levels) hold about 6 GB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.errors import ConfigError
from ganbench.metrics.base import METRICS, Metric

if TYPE_CHECKING:
    from ganbench.metrics.context import MetricContext

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0])


def pyramid_resolutions(height: int, min_res: int = 16) -> list[int]:
    """Heights of the pyramid levels: full resolution halved down to `min_res` (one level if smaller)."""
    res = [height]
    while res[-1] // 2 >= min_res and res[-1] % 2 == 0:
        res.append(res[-1] // 2)
    return res


def _blur(x: torch.Tensor, gain: float = 1.0, stride: int = 1) -> torch.Tensor:
    """5x5 binomial filter per channel with mirror (no edge repeat) borders, like cv2.pyrDown's kernel."""
    k1 = torch.as_tensor(_BINOMIAL / _BINOMIAL.sum(), dtype=x.dtype, device=x.device)
    kernel = (torch.outer(k1, k1) * gain).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, stride=stride, groups=x.shape[1])


def laplacian_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """Band-pass levels (finest first) and the low-pass residual last, in float32 (as ProGAN)."""
    levels = [images.to(torch.float32)]
    for _ in range(1, num_levels):
        down = _blur(levels[-1], stride=2)  # = blur then keep every other pixel
        up = torch.zeros_like(levels[-1])
        up[:, :, ::2, ::2] = down
        levels[-1] = levels[-1] - _blur(up, gain=4.0)
        levels.append(down)
    return levels


def patch_centres(seed: int, index: int, shapes: list[tuple[int, int]], per_image: int = 128,
                  size: int = 7) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) centres of image `index`'s patches at each level of (height, width) `shapes`."""
    rng = np.random.default_rng([seed, 0, index])
    half = size // 2
    out = []
    for h, w in shapes:
        if h < size or w < size:
            raise ConfigError(f"SWD needs pyramid levels of at least {size}x{size} pixels, got {h}x{w}")
        xs = rng.integers(half, w - half, size=per_image)
        out.append((xs, rng.integers(half, h - half, size=per_image)))
    return out


def extract_patches(level: torch.Tensor, xs: np.ndarray, ys: np.ndarray, size: int = 7) -> torch.Tensor:
    """Patches centred at (xs, ys) of [N, M] centres per image: [N * M, C, size, size] float32."""
    n, per_image = xs.shape
    half = size // 2
    img = torch.arange(n).repeat_interleave(per_image)
    offs = torch.arange(-half, half + 1)
    rows = torch.as_tensor(ys.reshape(-1))[:, None] + offs[None, :]
    cols = torch.as_tensor(xs.reshape(-1))[:, None] + offs[None, :]
    patches = level[img[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # [N*M, size, size, C]
    return patches.permute(0, 3, 1, 2).to(torch.float32)


def normalize_descriptors(desc: torch.Tensor) -> torch.Tensor:
    """Standardise per channel with this set's own statistics (float64 moments), flatten to float32 [M, C*k*k]."""
    out = torch.empty_like(desc, dtype=torch.float32)
    for c in range(desc.shape[1]):  # one channel at a time keeps the float64 copy small for large sets
        chan = desc[:, c].to(torch.float64)
        out[:, c] = ((chan - chan.mean()) / chan.std(unbiased=False).clamp_min(1e-12)).float()
    return out.reshape(desc.shape[0], -1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, rng: np.random.Generator, dir_repeats: int = 4,
                       dirs_per_repeat: int = 128) -> float:
    """Mean over repeats of the mean |sorted(a·dir) - sorted(b·dir)| over random unit directions."""
    if a.shape != b.shape:
        raise ConfigError(f"SWD compares equal-sized descriptor sets, got {tuple(a.shape)} and {tuple(b.shape)}")
    results = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((a.shape[1], dirs_per_repeat))
        dirs /= np.sqrt(np.sum(dirs**2, axis=0, keepdims=True))
        d = torch.as_tensor(dirs, dtype=a.dtype)
        # [dirs, M] rows sorted by numpy: several times faster than torch.sort on CPU.
        pa = np.sort((d.T @ a.T).cpu().numpy(), axis=1)
        pb = np.sort((d.T @ b.T).cpu().numpy(), axis=1)
        results.append(float(np.abs(pa - pb).mean(dtype=np.float64)))
    return float(np.mean(results))


class PyramidDescriptors:
    """Streaming collector of per-level patch descriptors, so a large set never sits in memory as images."""

    def __init__(self, seed: int = 0, per_image: int = 128, patch_size: int = 7, min_res: int = 16) -> None:
        self.seed, self.per_image, self.patch_size, self.min_res = seed, per_image, patch_size, min_res
        self.resolutions: list[int] | None = None
        self.parts: list[list[torch.Tensor]] = []
        self.count = 0

    def add(self, images: torch.Tensor) -> None:
        """Add a batch of NCHW images (uint8 or float in the 0..255 range)."""
        h, w = images.shape[2], images.shape[3]
        if self.resolutions is None:
            self.resolutions = pyramid_resolutions(h, self.min_res)
            self.parts = [[] for _ in self.resolutions]
            if w % (h // self.resolutions[-1]) != 0:
                raise ConfigError(f"SWD needs a width divisible by {h // self.resolutions[-1]}, got {h}x{w}")
        elif h != self.resolutions[0]:
            raise ConfigError(f"SWD got images of height {h} after images of height {self.resolutions[0]}")
        levels = laplacian_pyramid(images, len(self.resolutions))
        shapes = [(lvl.shape[2], lvl.shape[3]) for lvl in levels]
        centres = [patch_centres(self.seed, self.count + i, shapes, self.per_image, self.patch_size)
                   for i in range(images.shape[0])]
        for k, level in enumerate(levels):
            xs = np.stack([c[k][0] for c in centres])
            ys = np.stack([c[k][1] for c in centres])
            self.parts[k].append(extract_patches(level, xs, ys, self.patch_size))
        self.count += images.shape[0]

    def finalize(self) -> list[torch.Tensor]:
        """Normalised descriptors per level, finest first."""
        if self.resolutions is None:
            raise ConfigError("SWD got no images")
        return [normalize_descriptors(torch.cat(p)) for p in self.parts]


def swd_from_descriptors(desc_a: list[torch.Tensor], desc_b: list[torch.Tensor], resolutions: list[int],
                         seed: int = 0, dir_repeats: int = 4, dirs_per_repeat: int = 128) -> dict[str, float]:
    """`swd<res>` per level (x1e3) and their mean `swd_avg` from two finalized descriptor lists."""
    rng = np.random.default_rng([seed, 1])
    out = {f"swd{res}": 1e3 * sliced_wasserstein(a, b, rng, dir_repeats, dirs_per_repeat)
           for res, a, b in zip(resolutions, desc_a, desc_b)}
    out["swd_avg"] = float(np.mean(list(out.values())))
    return out


def swd(images_a: Iterable[torch.Tensor] | torch.Tensor, images_b: Iterable[torch.Tensor] | torch.Tensor,
        seed: int = 0, patches_per_image: int = 128, patch_size: int = 7, dir_repeats: int = 4,
        dirs_per_repeat: int = 128, min_res: int = 16) -> dict[str, float]:
    """SWD (x1e3) per pyramid level and averaged between two equal-sized image sets (tensors or batch iterables)."""
    sides = []
    for images in (images_a, images_b):
        coll = PyramidDescriptors(seed, patches_per_image, patch_size, min_res)
        for batch in ([images] if isinstance(images, torch.Tensor) else images):
            coll.add(batch)
        sides.append(coll)
    if sides[0].resolutions != sides[1].resolutions:
        raise ConfigError(f"SWD compares images of one size, got heights {sides[0].resolutions} "
                          f"and {sides[1].resolutions}")
    return swd_from_descriptors(sides[0].finalize(), sides[1].finalize(), sides[0].resolutions,
                                seed, dir_repeats, dirs_per_repeat)


@METRICS.register("swd")
@dataclass
class SWD(Metric):
    """ProGAN's SWD on n generated vs the first n real images (None: the context's n_gen, capped by the reals)."""

    n_gen: int | None = None
    patches_per_image: int = 128
    patch_size: int = 7
    dir_repeats: int = 4
    dirs_per_repeat: int = 128
    min_res: int = 16

    name = "swd"
    # compute() returns swd_avg and the swd<res> keys of the levels the image resolution has.
    outputs = {**{f"swd{2**k}": "lower" for k in range(3, 11)}, "swd_avg": "lower"}
    needs = frozenset({"gen_images", "real_images"})
    reference = "ProGAN metrics/sliced_wasserstein.py (Laplacian pyramid, 7x7 patches, 4x128 directions)"
    cost = "its own generator pass over n images + n reals through a Laplacian pyramid; patch sorting"

    def result_keys(self, resolution: int | None = None) -> list[str]:
        if resolution is None:
            return list(self.outputs)
        levels = [r for r in (2 ** k for k in range(3, 11)) if self.min_res <= r <= resolution]
        return [f"swd{r}" for r in sorted(levels, reverse=True)] + ["swd_avg"]

    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        n = min(self.n_gen or ctx.num_gen(), ctx.num_real())
        fake = (images for images, _z, _c in ctx.generated_batches(n, seed=ctx.seed))
        real = (images for images, _labels in ctx.real_batches(n))
        return swd(fake, real, ctx.seed, self.patches_per_image, self.patch_size, self.dir_repeats,
                   self.dirs_per_repeat, self.min_res)
