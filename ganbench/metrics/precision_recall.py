"""Improved precision and recall (Kynkäänniemi et al. 2019) from k-NN balls in feature space.

Each real point gets a ball of radius = distance to its k-th nearest other real point (k=3);
precision is the share of generated points inside at least one real ball, recall the share of real
points inside at least one generated ball. Distances are float32 Euclidean from torch.cdist (as
NVlabs and torch-fidelity compute them), in row blocks of `row_batch_size` so N=50k never materialises
an N×N matrix; the radii stay float32 (NVlabs rounds them to float16).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ganbench.errors import ConfigError, GanbenchError
from ganbench.metrics.base import METRICS, Metric, register_variant


def _kth_radii(manifold: torch.Tensor, k: int, block: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Distance from every point to its k-th nearest other point (self at distance 0 is skipped)."""
    radii = torch.cat([torch.cdist(rows, manifold).kthvalue(k + 1, dim=1).values for rows in manifold.split(block)])
    return radii.to(dtype).to(torch.float32)


def _coverage(probes: torch.Tensor, manifold: torch.Tensor, radii: torch.Tensor, block: int) -> float:
    """Share of probes within radius of at least one manifold point."""
    inside = [(torch.cdist(rows, manifold) <= radii[None, :]).any(dim=1) for rows in probes.split(block)]
    return float(torch.cat(inside).float().mean())


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
    precision = _coverage(g, r, _kth_radii(r, k, row_batch_size, rdt), row_batch_size)
    recall = _coverage(r, g, _kth_radii(g, k, row_batch_size, rdt), row_batch_size)
    return precision, recall


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
                 n_gen=50000, extractor="vgg16")
register_variant(PrecisionRecall, "pr50k3",
                 "NVlabs `pr50k3`: VGG16 features, 50k generated vs the first 50k reals, k=3.",
                 {"pr50k3_precision": "higher", "pr50k3_recall": "higher"},
                 n_gen=50000, n_real=50000, extractor="vgg16")
