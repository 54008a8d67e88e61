"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a cubic polynomial kernel.

Kernel k(x, y) = (x·y / d + 1)³; `num_subsets` subsets of m = min(N_real, N_gen, max_subset_size)
points each, drawn without replacement; the result is the mean and std (ddof 0) of the per-subset
MMD² estimates. NVlabs draws subsets from an unseeded RNG; here they come from `subset_seed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ganbench.errors import ConfigError, GanbenchError
from ganbench.metrics.base import METRICS, Metric, register_variant

if TYPE_CHECKING:
    import torch


WHOLE_KERNEL_BYTES = 2 ** 30


def _cubic_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # torch's matmul runs on torch's own thread pool: numpy's BLAS threads would compete with it (100x
    # slower on a busy 2-core machine for the small per-subset products)
    return (a @ b.T / a.shape[1] + 1) ** 3


def _mmd2(xx: torch.Tensor, yy: torch.Tensor, xy: torch.Tensor, m: int) -> float:
    """Unbiased MMD² of m-point samples from their kernel sums: xx and yy without their diagonals."""
    return float((xx + yy) / (m * (m - 1)) - 2 * xy / (m * m))


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² between two equal-size samples under the kernel (x·y/d + 1)³, in float64."""
    import torch

    x, y = torch.as_tensor(np.asarray(x, np.float64)), torch.as_tensor(np.asarray(y, np.float64))
    m, d = x.shape
    if tuple(y.shape) != (m, d) or m < 2:
        raise GanbenchError(f"KID needs two equal-size samples of at least 2 points, got {tuple(x.shape)} and "
                            f"{tuple(y.shape)}")
    kxx, kyy = _cubic_kernel(x, x), _cubic_kernel(y, y)
    return _mmd2(kxx.sum() - kxx.trace(), kyy.sum() - kyy.trace(), _cubic_kernel(x, y).sum(), m)


def whole_kernels_pay(n_gen: int, n_real: int, m: int, num_subsets: int) -> bool:
    """Whether the kernels of the whole sets, computed once, cost less than every subset's own.

    They take (n_gen² + n_real² + n_gen·n_real)·d multiply-adds against num_subsets·3·m²·d (each subset
    then only gathers its m x m blocks); asked to be 3x cheaper, and to fit in WHOLE_KERNEL_BYTES."""
    whole = n_gen * n_gen + n_real * n_real + n_gen * n_real
    return whole <= num_subsets * m * m and 8 * whole <= WHOLE_KERNEL_BYTES


def kernel_distance(gen: np.ndarray, real: np.ndarray, num_subsets: int = 100, max_subset_size: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """(mean, std) of unbiased polynomial MMD² over random equal-size subsets drawn without replacement.

    When the sets are not much larger than a subset (m = N at N <= 1000), each subset's kernel sums are
    taken from the whole sets' kernels instead of recomputed (a subset of every point sums the whole
    kernel, or its row or column sums): the same sums to float64 round-off."""
    import torch

    m = min(len(gen), len(real), max_subset_size)
    rng = np.random.RandomState(seed)
    draws = [(rng.choice(len(gen), m, replace=False), rng.choice(len(real), m, replace=False))
             for _ in range(num_subsets)]
    if m < 2 or not whole_kernels_pay(len(gen), len(real), m, num_subsets):
        gen, real = np.asarray(gen, np.float64), np.asarray(real, np.float64)
        mmds = [polynomial_mmd2(gen[ix], real[iy]) for ix, iy in draws]
        return float(np.mean(mmds)), float(np.std(mmds))
    x, y = torch.as_tensor(np.asarray(gen, np.float64)), torch.as_tensor(np.asarray(real, np.float64))
    kxx, kyy, kxy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
    whole_x, whole_y = m == len(gen), m == len(real)   # a subset of every point: the block is the whole kernel
    sum_xx, sum_yy, rows_xy, cols_xy = kxx.sum(), kyy.sum(), kxy.sum(1), kxy.sum(0)
    mmds = []
    for ix, iy in draws:
        ix, iy = torch.from_numpy(ix), torch.from_numpy(iy)
        xx = sum_xx if whole_x else kxx[ix[:, None], ix].sum()
        yy = sum_yy if whole_y else kyy[iy[:, None], iy].sum()
        xy = (cols_xy[iy].sum() if whole_x else rows_xy[ix].sum() if whole_y else kxy[ix[:, None], iy].sum())
        mmds.append(_mmd2(xx - kxx.diagonal()[ix].sum(), yy - kyy.diagonal()[iy].sum(), xy, m))
    return float(np.mean(mmds)), float(np.std(mmds))


@METRICS.register("kid")
@dataclass
class KID(Metric):
    """KID mean/std of n_gen generated vs n_real real features (None: the context's counts)."""

    n_gen: int | None = None
    n_real: int | None = None
    num_subsets: int = 100
    max_subset_size: int = 1000
    subset_seed: int = 0
    extractor: str | None = None

    seed_free_on_images = True   # see Metric
    name = "kid"
    outputs = {"kid_mean": "lower", "kid_std": None}
    needs = frozenset({"real_features", "gen_features"})
    reference = "NVlabs metrics/kernel_inception_distance.py (cubic kernel, 100 subsets of <=1000); clean-fid, torch-fidelity"
    cost = "the shared generator + feature pass (as fid), then 100 subset MMDs"

    def __post_init__(self) -> None:
        if self.num_subsets < 1 or self.max_subset_size < 2:
            raise ConfigError(f"{self.name}: need num_subsets >= 1 and max_subset_size >= 2, "
                              f"got {self.num_subsets} and {self.max_subset_size}")

    def compute(self, ctx) -> dict[str, float]:
        gen = ctx.outputs("gen", "features", self.extractor, self.n_gen)
        real = ctx.outputs("real", "features", self.extractor, self.n_real)
        mean, std = kernel_distance(gen, real, self.num_subsets, self.max_subset_size, self.subset_seed)
        prefix = self.name
        return {f"{prefix}_mean": mean, f"{prefix}_std": std}


register_variant(KID, "kid50k_full", "NVlabs `kid50k_full`: 50k generated vs every real image.",
                 {"kid50k_full_mean": "lower", "kid50k_full_std": None}, n_gen=50000,
                 class_attrs={"published_extractor": "inception"})
register_variant(KID, "kid50k", "NVlabs `kid50k`: 50k generated vs the first 50k reals.",
                 {"kid50k_mean": "lower", "kid50k_std": None}, n_gen=50000, n_real=50000,
                 class_attrs={"published_extractor": "inception"})
