"""Sliced Wasserstein distance between Laplacian-pyramid patch descriptors (Karras et al., ProGAN).

Each image set is decomposed into a Laplacian pyramid (5x5 binomial filter, reflect borders) from
full resolution down to 16x16; every level contributes 128 random 7x7 patches per image. Each set's
descriptors are normalised per channel by that set's own mean and std, then the two sets are
compared along random unit directions: project, sort, mean absolute difference. Values are x1e3.

Patch protocol (`patches`, recorded with every result): "independent" (the default, as ProGAN, whose
`feed` draws fresh random positions for every minibatch of either set) draws each set's patch
positions separately, so a set compared with itself scores clearly above 0 (about 20 for 10k shapes
images at 32 px); "shared" reuses the first set's positions for the second set, which gave 1.4-3.8 %
lower values than ProGAN's protocol and exactly 0 for a set against itself (ganbench before 2026-12).

Randomness is explicit and reproducible, and independent of batch size: the patch centres of
image i of the first set come from `numpy.random.default_rng([seed, 0, i])`, those of the second set
(independent protocol) from `default_rng([seed, 2, i])`, per level (finest first) x then y
(`rng.integers(3, side - 3, 128)` each); directions come from `default_rng([seed, 1])`, per level
(finest first) and per repeat as `standard_normal((dim, dirs_per_repeat))`.

Memory is bounded: a set keeps, per level, whichever is smaller of the level's pixels (float32) and
its 128 x 147 descriptors per image, so at 32 px it holds 15 kB per image instead of 150 kB; the
descriptors are gathered again in chunks while projecting, and only `buffer_bytes` of projections
(both sets, a block of directions at a time) exist at once. Per-channel moments are accumulated in
float64 as images arrive (pixels weighted by how many patches cover them). Sorting runs on
`torch.get_num_threads()` threads, or on as many worker processes on AMD Zen 4, where numpy's in-process
sort is ~6x slower (ganbench.metrics.row_sort). The result equals the unbounded computation (every
descriptor in memory, every direction at once) up to float32 rounding of the projections.
10k images per set at 32 px (benchmarks/metrics2_speed.py, 2 threads): 1.9 GB peak RSS instead of the
unbounded code's 8.9 GB. It is 1.9x faster on an EPYC whose numpy sorts in ~14 ms (~48 s against ~94 s)
and 4.75-5.6x on a Zen 4 EPYC (25-29 s against 137-140 s; there the old code's sorts ran on numpy's slow
AVX-512 kernel, and the new code sorting on threads took 63 s). What is left is work, not overhead: the
4 x 128 projections (~770 GFLOP, at 50-60 GFLOP/s for a 147-deep product) and 2048 sorts of 1.28M values
(7-14 ms each with numpy's AVX2 sort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ganbench.errors import ConfigError
from ganbench.metrics.base import METRICS, Metric
from ganbench.metrics.row_sort import row_sorter

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


PATCH_PROTOCOLS = ("independent", "shared")


def patch_centres(seed: int, index: int, shapes: list[tuple[int, int]], per_image: int = 128,
                  size: int = 7, stream: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) centres of image `index`'s patches at each level of (height, width) `shapes`.

    `stream` 0 is the first image set's positions, 1 the second set's under the independent protocol."""
    rng = np.random.default_rng([seed, 0, index] if stream == 0 else [seed, 2, index])
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
    nhwc = np.ascontiguousarray(level.to(torch.float32).permute(0, 2, 3, 1).numpy())
    return torch.from_numpy(_gather_nhwc(nhwc, xs, ys, size))


def _gather_nhwc(level: np.ndarray, xs: np.ndarray, ys: np.ndarray, size: int,
                 channels_last: bool = False) -> np.ndarray:
    """[N*M, C, size, size] patches of an NHWC float32 array at [N, M] centres (one strided copy).

    `channels_last` gives [N*M, size, size, C] instead: rows of size*C contiguous floats, ~20 % faster."""
    n, per_image = xs.shape
    half = size // 2
    windows = np.lib.stride_tricks.sliding_window_view(level, (size, size), axis=(1, 2))  # N, H', W', C, k, k
    if channels_last:
        windows = windows.transpose(0, 1, 2, 4, 5, 3)
    img = np.repeat(np.arange(n), per_image)
    return windows[img, ys.reshape(-1) - half, xs.reshape(-1) - half]


class _Level:
    """One pyramid level of one image set: stored pixels or descriptors, centres, float64 moments."""

    def __init__(self, per_image: int, size: int) -> None:
        self.per_image, self.size = per_image, size
        self.keep_pixels: bool | None = None
        self.chunks: list[np.ndarray] = []      # NHWC pixels, or [m, C, k, k] descriptors
        self.centres: list[tuple[np.ndarray, np.ndarray]] = []  # per pixel chunk: xs, ys [n, per_image]
        self.s1: np.ndarray | None = None
        self.s2: np.ndarray | None = None
        self.count = 0
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def add(self, level: torch.Tensor, xs: np.ndarray, ys: np.ndarray) -> None:
        n, c, h, w = level.shape
        k = self.size
        if self.keep_pixels is None:
            self.keep_pixels = h * w <= self.per_image * k * k
            self.s1, self.s2 = np.zeros(c), np.zeros(c)
        if self.keep_pixels:
            # Each pixel counts once per patch covering it: the descriptors' moments without gathering them.
            flat = (np.arange(n)[:, None] * (h * w) + ys * w + xs).reshape(-1)
            hist = np.bincount(flat, minlength=n * h * w).astype(np.float32).reshape(n, 1, h, w)
            # float32 counts are exact (< 2**24); float64 only for the products and sums.
            cover = F.conv2d(torch.from_numpy(hist), torch.ones(1, 1, k, k), padding=k // 2).to(torch.float64)
            lv = level.to(torch.float64)
            self.s1 += (lv * cover).sum(dim=(0, 2, 3)).numpy()
            self.s2 += (lv * lv * cover).sum(dim=(0, 2, 3)).numpy()
            self.chunks.append(np.ascontiguousarray(level.permute(0, 2, 3, 1).numpy(), dtype=np.float32))
            self.centres.append((xs, ys))
        else:
            desc = extract_patches(level, xs, ys, k).numpy()
            d64 = desc.astype(np.float64)
            self.s1 += d64.sum(axis=(0, 2, 3))
            self.s2 += (d64 * d64).sum(axis=(0, 2, 3))
            self.chunks.append(desc)
        self.count += n * self.per_image * k * k

    def normalize(self) -> None:
        """Standardise the stored values per channel with this set's own moments (float64, as ProGAN)."""
        mean = self.s1 / self.count
        std = np.sqrt(np.maximum(self.s2 / self.count - mean**2, 0.0)).clip(min=1e-12)
        self.mean, self.std = mean, std
        for chunk in self.chunks:
            axis_shape = (1, 1, 1, -1) if self.keep_pixels else (1, -1, 1, 1)
            chunk[...] = (chunk.astype(np.float64) - mean.reshape(axis_shape)) / std.reshape(axis_shape)

    @property
    def num_descriptors(self) -> int:
        return self.count // (self.size * self.size)

    def descriptor_chunks(self, rows: int = 32768) -> Iterable[np.ndarray]:
        """Normalised descriptors [m, C*k*k] float32 in order, gathered `rows` at a time.

        Descriptors gathered from stored pixels are in (k, k, C) order, stored descriptors in (C, k, k)."""
        k = self.size
        if self.keep_pixels:
            for pixels, (xs, ys) in zip(self.chunks, self.centres):
                step = max(1, rows // self.per_image)
                for i in range(0, pixels.shape[0], step):
                    d = _gather_nhwc(pixels[i:i + step], xs[i:i + step], ys[i:i + step], k, channels_last=True)
                    yield d.reshape(d.shape[0], -1)
        else:
            for desc in self.chunks:
                for i in range(0, desc.shape[0], rows):
                    yield desc[i:i + rows].reshape(-1, desc.shape[1] * k * k)


class PyramidDescriptors:
    """Streaming collector of one image set's pyramid patches: bounded memory, exact moments."""

    def __init__(self, seed: int = 0, per_image: int = 128, patch_size: int = 7, min_res: int = 16,
                 stream: int = 0) -> None:
        self.seed, self.per_image, self.patch_size, self.min_res = seed, per_image, patch_size, min_res
        self.stream = stream
        self.resolutions: list[int] | None = None
        self.levels: list[_Level] = []
        self.count = 0

    def add(self, images: torch.Tensor) -> None:
        """Add a batch of NCHW images (uint8 or float in the 0..255 range)."""
        h, w = images.shape[2], images.shape[3]
        if self.resolutions is None:
            self.resolutions = pyramid_resolutions(h, self.min_res)
            self.levels = [_Level(self.per_image, self.patch_size) for _ in self.resolutions]
            if w % (h // self.resolutions[-1]) != 0:
                raise ConfigError(f"SWD needs a width divisible by {h // self.resolutions[-1]}, got {h}x{w}")
        elif h != self.resolutions[0]:
            raise ConfigError(f"SWD got images of height {h} after images of height {self.resolutions[0]}")
        # The descriptors are numpy work on the CPU (and ProGAN's pyramid ran there): images on a GPU move first.
        levels = laplacian_pyramid(images.cpu(), len(self.resolutions))
        shapes = [(lvl.shape[2], lvl.shape[3]) for lvl in levels]
        centres = [patch_centres(self.seed, self.count + i, shapes, self.per_image, self.patch_size, self.stream)
                   for i in range(images.shape[0])]
        for k, level in enumerate(levels):
            xs = np.stack([c[k][0] for c in centres])
            ys = np.stack([c[k][1] for c in centres])
            self.levels[k].add(level, xs, ys)
        self.count += images.shape[0]

    def finalize(self) -> list[_Level]:
        """The normalised levels, finest first (descriptors are gathered from them on demand)."""
        if self.resolutions is None:
            raise ConfigError("SWD got no images")
        for level in self.levels:
            level.normalize()
        return self.levels


def _directions(rng: np.random.Generator, dim: int, dir_repeats: int, dirs_per_repeat: int) -> torch.Tensor:
    """[dir_repeats * dirs_per_repeat, dim] float32 unit directions, repeat by repeat (ProGAN's draw order)."""
    out = []
    for _ in range(dir_repeats):
        dirs = rng.standard_normal((dim, dirs_per_repeat))
        dirs /= np.sqrt(np.sum(dirs**2, axis=0, keepdims=True))
        out.append(dirs.astype(np.float32).T)
    return torch.from_numpy(np.ascontiguousarray(np.concatenate(out)))


def _project(level: "_Level", dirs: torch.Tensor, out: np.ndarray) -> None:
    """out[j, i] = descriptor i of `level` projected on direction j.

    Chunks of 8192 descriptors (a few MB, cache-sized) are multiplied as [rows, dim] @ [dim, block] and
    written transposed into the direction-major buffer: ~20 % faster than [block, dim] @ [dim, rows]."""
    start = 0
    dirs_t = dirs.T.contiguous()
    for desc in level.descriptor_chunks(rows=8192):
        stop = start + desc.shape[0]
        out[:, start:stop] = (torch.from_numpy(desc) @ dirs_t).numpy().T
        start = stop


# Projection buffers (both sets): 1.28M descriptors per set (10k images, 128 patches each) take 6 passes
# over the descriptors per level (blocks of 86 of the 512 directions, 0.9 GB); 10k images at 32 px then peak
# at ~1.8 GB RSS in all. 4 passes of 128 directions (1.3 GB) were 5 % faster but peaked at 2.3 GB.
BUFFER_BYTES = 1_000_000_000


def sliced_wasserstein(a: "_Level", b: "_Level", rng: np.random.Generator, dir_repeats: int = 4,
                       dirs_per_repeat: int = 128, buffer_bytes: int = BUFFER_BYTES) -> float:
    """Mean over repeats of the mean |sorted(a·dir) - sorted(b·dir)| over random unit directions.

    Directions are projected a block at a time so that both sets' projections fit in `buffer_bytes`;
    each block's sorts run on `torch.get_num_threads()` threads or worker processes (ganbench.metrics.row_sort)."""
    m = a.num_descriptors
    if m != b.num_descriptors:
        raise ConfigError(f"SWD compares equal-sized descriptor sets, got {m} and {b.num_descriptors} descriptors")
    dirs = _directions(rng, a.chunks[0].shape[-1 if a.keep_pixels else 1] * a.size**2, dir_repeats,
                       dirs_per_repeat)
    if a.keep_pixels:  # stored pixels are gathered channel-last: reorder each direction's (C, k, k) to (k, k, C)
        c = a.chunks[0].shape[-1]
        dirs = dirs.reshape(-1, c, a.size, a.size).permute(0, 2, 3, 1).reshape(dirs.shape[0], -1).contiguous()
    total = dirs.shape[0]
    block = int(max(1, min(total, buffer_bytes // (2 * 4 * m))))
    block = -(-total // -(-total // block))  # equal blocks: 512 directions in 4 x 128, not 3 x 150 + 62
    sums = np.zeros(total)
    with row_sorter(block, m, torch.get_num_threads(), sorts=total) as sorter:
        for start in range(0, total, block):
            d = dirs[start:start + block]
            _project(a, d, sorter.a[:d.shape[0]])
            _project(b, d, sorter.b[:d.shape[0]])
            sums[start:start + d.shape[0]] = sorter.sums(d.shape[0])
    per_dir = sums / m
    return float(per_dir.reshape(dir_repeats, dirs_per_repeat).mean(axis=1).mean())


def swd_from_descriptors(desc_a: list["_Level"], desc_b: list["_Level"], resolutions: list[int],
                         seed: int = 0, dir_repeats: int = 4, dirs_per_repeat: int = 128,
                         buffer_bytes: int = BUFFER_BYTES) -> dict[str, float]:
    """`swd<res>` per level (x1e3) and their mean `swd_avg` from two finalized collectors' levels."""
    rng = np.random.default_rng([seed, 1])
    out = {f"swd{res}": 1e3 * sliced_wasserstein(a, b, rng, dir_repeats, dirs_per_repeat, buffer_bytes)
           for res, a, b in zip(resolutions, desc_a, desc_b)}
    out["swd_avg"] = float(np.mean(list(out.values())))
    return out


def swd(images_a: Iterable[torch.Tensor] | torch.Tensor, images_b: Iterable[torch.Tensor] | torch.Tensor,
        seed: int = 0, patches_per_image: int = 128, patch_size: int = 7, dir_repeats: int = 4,
        dirs_per_repeat: int = 128, min_res: int = 16, patches: str = "independent",
        buffer_bytes: int = BUFFER_BYTES) -> dict[str, float]:
    """SWD (x1e3) per pyramid level and averaged between two equal-sized image sets (tensors or batch iterables).

    `patches`: "independent" (ProGAN: each set draws its own patch positions) or "shared" (the second set
    reuses the first set's positions). `buffer_bytes` bounds the projection buffers, not the result."""
    if patches not in PATCH_PROTOCOLS:
        raise ConfigError(f"SWD patches must be one of {', '.join(PATCH_PROTOCOLS)}, got {patches!r}")
    sides = []
    for stream, images in enumerate((images_a, images_b)):
        coll = PyramidDescriptors(seed, patches_per_image, patch_size, min_res,
                                  stream=stream if patches == "independent" else 0)
        for batch in ([images] if isinstance(images, torch.Tensor) else images):
            coll.add(batch)
        sides.append(coll)
    if sides[0].resolutions != sides[1].resolutions:
        raise ConfigError(f"SWD compares images of one size, got heights {sides[0].resolutions} "
                          f"and {sides[1].resolutions}")
    if sides[0].count != sides[1].count:
        raise ConfigError(f"SWD compares equal-sized image sets, got {sides[0].count} and {sides[1].count} images")
    return swd_from_descriptors(sides[0].finalize(), sides[1].finalize(), sides[0].resolutions,
                                seed, dir_repeats, dirs_per_repeat, buffer_bytes)


@METRICS.register("swd")
@dataclass
class SWD(Metric):
    """ProGAN's SWD on n generated vs the first n real images (None: the context's n_gen, capped by the reals).

    `patches` names the patch protocol (module docstring); it is a parameter so results record it."""

    n_gen: int | None = None
    patches_per_image: int = 128
    patch_size: int = 7
    dir_repeats: int = 4
    dirs_per_repeat: int = 128
    min_res: int = 16
    patches: str = "independent"

    name = "swd"

    def __post_init__(self) -> None:
        if self.patches not in PATCH_PROTOCOLS:
            raise ConfigError(f"swd.patches must be one of {', '.join(PATCH_PROTOCOLS)}, got {self.patches!r}")

    # compute() returns swd_avg and the swd<res> keys of the levels the image resolution has.
    outputs = {**{f"swd{2**k}": "lower" for k in range(3, 11)}, "swd_avg": "lower"}
    needs = frozenset({"gen_images", "real_images"})
    reference = "ProGAN metrics/sliced_wasserstein.py (Laplacian pyramid, 7x7 patches, 4x128 directions)"
    cost = "its own generator pass over n images + n reals through a Laplacian pyramid; patch sorting"

    def result_keys(self, resolution: int | None = None) -> list[str]:
        if resolution is None:
            return list(self.outputs)
        return [f"swd{r}" for r in pyramid_resolutions(resolution, self.min_res)] + ["swd_avg"]

    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        n = min(self.n_gen or ctx.num_gen(), ctx.num_real())
        fake = (images for images, _z, _c in ctx.generated_batches(n, seed=ctx.seed))
        real = (images for images, _labels in ctx.real_batches(n))
        out = swd(fake, real, ctx.seed, self.patches_per_image, self.patch_size, self.dir_repeats,
                  self.dirs_per_repeat, self.min_res, self.patches)
        odd = [key for key in out if key not in self.outputs]
        if odd:   # swd48: a level with no direction would sit in the table unchecked
            raise ConfigError(f"SWD's pyramid has levels of {', '.join(k[3:] for k in odd)} px: it follows ProGAN's "
                              f"power-of-two sizes (8-1024 px); resize the images to one (eval does so for image sets)")
        return out
