"""Improved precision and recall (Kynkäänniemi et al. 2019) from k-NN balls in feature space.

Each real point gets a ball of radius = distance to its k-th nearest other real point (k=3);
precision is the share of generated points inside at least one real ball, recall the share of real
points inside at least one generated ball. Distances are float32 Euclidean from torch.cdist (as
NVlabs and torch-fidelity compute them), in blocks of `row_batch_size` x `row_batch_size` so N=50k
never materialises an N×N matrix; the radii stay float32 (NVlabs rounds them to float16).

Work: each within-set distance matrix is symmetric, so only its blocks on and above the diagonal are
computed, and precision and recall read the same gen x real blocks. That is about 2 N² distances where
NVlabs and torch-fidelity compute 4 N² (two radius passes and two coverage passes), so N=50000 of 4096-d
VGG16 features costs ~2 x 10^13 multiply-adds: 592 s and 3.2 GB peak RSS, 1.6 GB of it the features,
on 2 CPU cores (benchmarks/metrics2_speed.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganbench.errors import ConfigError, GanbenchError
from ganbench.metrics.base import METRICS, Metric, register_variant


def _spans(n: int, block: int) -> list[tuple[int, int]]:
    return [(start, min(n, start + block)) for start in range(0, n, block)]


def _merge_smallest(best: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """The len(best[0]) smallest of each row of cat(best, dist), ascending."""
    keep = best.shape[1]
    part = dist.topk(min(keep, dist.shape[1]), dim=1, largest=False).values
    return torch.cat([best, part], dim=1).topk(keep, dim=1, largest=False).values


def _kth_radii(manifold: torch.Tensor, k: int, block: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Distance from every point to its k-th nearest other point (self at distance 0 is skipped).

    The distance matrix is symmetric, so only the blocks on and above the diagonal are computed: each
    feeds the running k+1 smallest of its rows and, transposed, of its columns."""
    spans = _spans(len(manifold), block)
    best = torch.full((len(manifold), k + 1), float("inf"), dtype=torch.float32, device=manifold.device)
    for bi, (i0, i1) in enumerate(spans):
        for j0, j1 in spans[bi:]:
            dist = torch.cdist(manifold[i0:i1], manifold[j0:j1])
            best[i0:i1] = _merge_smallest(best[i0:i1], dist)
            if j0 != i0:
                best[j0:j1] = _merge_smallest(best[j0:j1], dist.T)
    return best[:, k].to(dtype).to(torch.float32)


def _coverages(gen: torch.Tensor, real: torch.Tensor, real_radii: torch.Tensor, gen_radii: torch.Tensor,
               block: int) -> tuple[float, float]:
    """(share of gen points inside a real ball, share of real points inside a gen ball).

    Both read the same gen x real distance blocks, so the cross distances are computed once."""
    in_real = torch.zeros(len(gen), dtype=torch.bool, device=gen.device)
    in_gen = torch.zeros(len(real), dtype=torch.bool, device=gen.device)
    for g0, g1 in _spans(len(gen), block):
        for r0, r1 in _spans(len(real), block):
            dist = torch.cdist(gen[g0:g1], real[r0:r1])
            in_real[g0:g1] |= (dist <= real_radii[None, r0:r1]).any(dim=1)
            in_gen[r0:r1] |= (dist <= gen_radii[g0:g1, None]).any(dim=0)
    return float(in_real.float().mean()), float(in_gen.float().mean())


def precision_recall(gen: np.ndarray, real: np.ndarray, k: int = 3, row_batch_size: int = 10000,
                     device: str | torch.device = "cpu", radius_dtype: str = "float32") -> tuple[float, float]:
    """(precision, recall) of generated vs real features with k-NN radii, float32 distances on `device`.

    `radius_dtype='float16'` rounds the radii as NVlabs does, for bit-level parity with its numbers.
    """
    if radius_dtype not in ("float32", "float16"):
        raise GanbenchError(f"radius_dtype must be 'float32' or 'float16', got {radius_dtype!r}")
    rdt = getattr(torch, radius_dtype)
    g = torch.as_tensor(np.asarray(gen, np.float32)).to(device)
    r = torch.as_tensor(np.asarray(real, np.float32)).to(device)
    if min(len(g), len(r)) <= k:
        raise GanbenchError(f"precision/recall with k={k} needs more than {k} points per set, got {len(g)} and {len(r)}")
    return _coverages(g, r, _kth_radii(r, k, row_batch_size, rdt), _kth_radii(g, k, row_batch_size, rdt),
                      row_batch_size)


@METRICS.register("pr")
@dataclass
class PrecisionRecall(Metric):
    """Precision and recall of n_gen generated vs n_real real features (the context's extractor unless set).

    NVlabs computes them on VGG16 fc2 features (`pr50k3_full` selects `vgg16`); `pr` uses the
    context's extractor so it also runs offline with shapes-net.
    """

    n_gen: int | None = None
    n_real: int | None = None
    k: int = 3
    row_batch_size: int = 10000
    radius_dtype: str = "float32"
    extractor: str | None = None

    seed_free_on_images = True   # see Metric
    name = "pr"
    outputs = {"precision": "higher", "recall": "higher"}
    needs = frozenset({"real_features", "gen_features"})
    reference = "NVlabs metrics/precision_recall.py (Kynkaanniemi et al. 2019: VGG16 fc2, k=3)"
    cost = "the shared generator + feature pass (as fid), then N x N feature distances in row blocks"

    def __post_init__(self) -> None:
        if self.k < 1 or self.row_batch_size < 1:
            raise ConfigError(f"{self.name}: k and row_batch_size must be positive, got {self.k}, {self.row_batch_size}")
        if self.radius_dtype not in ("float32", "float16"):
            raise ConfigError(f"{self.name}: radius_dtype must be 'float32' or 'float16', got {self.radius_dtype!r}")

    def compute(self, ctx) -> dict[str, float]:
        gen = ctx.outputs("gen", "features", self.extractor, self.n_gen)
        real = ctx.outputs("real", "features", self.extractor, self.n_real)
        precision, recall = precision_recall(gen, real, self.k, self.row_batch_size, getattr(ctx, "device", "cpu"),
                                             self.radius_dtype)
        keys = list(self.outputs)
        return {keys[0]: precision, keys[1]: recall}


register_variant(PrecisionRecall, "pr50k3_full",
                 "NVlabs `pr50k3_full`: VGG16 features, 50k generated vs every real image, k=3.",
                 {"pr50k3_full_precision": "higher", "pr50k3_full_recall": "higher"},
                 n_gen=50000, extractor="vgg16", class_attrs={"published_extractor": "vgg16"})
register_variant(PrecisionRecall, "pr50k3",
                 "NVlabs `pr50k3`: VGG16 features, 50k generated vs the first 50k reals, k=3.",
                 {"pr50k3_precision": "higher", "pr50k3_recall": "higher"},
                 n_gen=50000, n_real=50000, extractor="vgg16",
                 class_attrs={"published_extractor": "vgg16"})
