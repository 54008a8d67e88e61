"""Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) || p(y))) over contiguous splits.

Probabilities are the softmax of the extractor's 'logits' output (for Inception: the 1008 logits
without the output bias, as NVlabs and torch-fidelity); 10 contiguous splits by default, mean and
std (ddof 0) of the per-split scores, all in float64. With shapes-net the classes are its 4 shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax

from ganbench.errors import ConfigError, GanbenchError
from ganbench.metrics.base import METRICS, Metric, register_variant


def inception_score(logits: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
    """(mean, std) of exp(mean KL(p(y|x) || p(y))) over `num_splits` contiguous splits of the logits."""
    logits = np.asarray(logits, np.float64)
    n = len(logits)
    if n < num_splits:
        raise GanbenchError(f"IS needs at least {num_splits} samples for {num_splits} splits, got {n}")
    log_p = log_softmax(logits, axis=1)
    p = np.exp(log_p)
    scores = []
    for i in range(num_splits):
        lo, hi = i * n // num_splits, (i + 1) * n // num_splits
        part, log_part = p[lo:hi], log_p[lo:hi]
        log_marginal = np.log(part.mean(axis=0, keepdims=True))
        kl = (part * (log_part - log_marginal)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


@METRICS.register("is")
@dataclass
class InceptionScore(Metric):
    """IS mean/std of n_gen generated images (None: the context's count)."""

    n_gen: int | None = None
    num_splits: int = 10
    extractor: str | None = None

    seed_free_on_images = True   # see Metric
    name = "is"
    outputs = {"is_mean": "higher", "is_std": None}
    needs = frozenset({"gen_logits"})
    reference = "NVlabs metrics/inception_score.py (1008 logits without bias, 10 splits); torch-fidelity isc"
    cost = "the shared generator + feature pass (as fid); no real images"

    def __post_init__(self) -> None:
        if self.num_splits < 1:
            raise ConfigError(f"{self.name}: num_splits must be at least 1, got {self.num_splits}")

    def compute(self, ctx) -> dict[str, float]:
        mean, std = inception_score(ctx.outputs("gen", "logits", self.extractor, self.n_gen), self.num_splits)
        return {f"{self.name}_mean": mean, f"{self.name}_std": std}


register_variant(InceptionScore, "is50k", "NVlabs `is50k`: IS of 50k generated images.",
                 {"is50k_mean": "higher", "is50k_std": None}, n_gen=50000,
                 class_attrs={"published_extractor": "inception"})
