"""Fréchet distance between Gaussian fits of real and generated features (FID; Heusel et al. 2017).

Conventions: `covariance='biased'` divides the scatter by N as NVlabs does (the default, and what
`fid50k_full` reports); `'unbiased'` divides by N-1 as pytorch-fid, clean-fid and torch-fidelity do.
The moments are float64 running sums from the feature pass; the distance is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg

from ganbench.errors import ConfigError, GanbenchError
from ganbench.metrics.base import METRICS, Metric, register_variant

SQRTM_EPS = 1e-6
MAX_IMAG = 1e-3  # largest tolerated imaginary part on the diagonal of sqrtm(S1 S2), as pytorch-fid


class FrechetError(GanbenchError):
    """The matrix square root is too far from real to trust the distance."""


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1-mu2||² + Tr(S1 + S2 - 2 sqrt(S1 S2)) in float64.

    A non-finite square root (singular product) is retried with 1e-6·I added to both covariances; a
    square root whose diagonal keeps an imaginary part above 1e-3 is an error, not silently dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise GanbenchError(f"mismatched Gaussian shapes: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * SQRTM_EPS
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = float(np.max(np.abs(np.diagonal(covmean).imag)))
        if imag > MAX_IMAG:
            raise FrechetError(f"sqrtm of the covariance product has an imaginary component {imag:.3g} "
                               f"(> {MAX_IMAG}); too few samples for the feature dimension?")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


@METRICS.register("fid")
@dataclass
class FID(Metric):
    """FID of n_gen generated vs n_real real images (None: the context's counts) on the context's extractor.

    Presets below carry NVlabs' names and sample counts and report under their own name.
    """

    n_gen: int | None = None
    n_real: int | None = None
    covariance: str = "biased"
    extractor: str | None = None

    name = "fid"
    outputs = {"fid": "lower"}
    needs = frozenset({"real_features", "gen_features"})

    def __post_init__(self) -> None:
        if self.covariance not in ("biased", "unbiased"):
            raise ConfigError(f"{self.name}: covariance must be 'biased' (NVlabs, ÷N) or 'unbiased' (÷(N-1)), "
                              f"got {self.covariance!r}")

    def compute(self, ctx) -> dict[str, float]:
        gen = ctx.moments("gen", self.extractor, self.n_gen)
        real = ctx.moments("real", self.extractor, self.n_real)
        value = frechet_distance(gen.mean, gen.cov(self.covariance), real.mean, real.cov(self.covariance))
        return {self.name: value}


register_variant(FID, "fid50k_full", "NVlabs `fid50k_full`: 50k generated vs every real image.",
                 {"fid50k_full": "lower"}, n_gen=50000)
register_variant(FID, "fid50k", "NVlabs `fid50k`: 50k generated vs the first 50k reals.",
                 {"fid50k": "lower"}, n_gen=50000, n_real=50000)
register_variant(FID, "fid10k_full", "10k generated vs every real image.",
                 {"fid10k_full": "lower"}, n_gen=10000)
register_variant(FID, "fid10k", "10k generated vs the first 10k reals.",
                 {"fid10k": "lower"}, n_gen=10000, n_real=10000)
