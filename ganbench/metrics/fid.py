"""Fréchet distance between Gaussian fits of real and generated features (FID; Heusel et al. 2017).

Conventions: `covariance='biased'` divides the scatter by N as NVlabs does (the default, and what
`fid50k_full` reports); `'unbiased'` divides by N-1 as pytorch-fid, clean-fid and torch-fidelity do.
The moments are float64 running sums from the feature pass; the distance is computed in float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ganbench.errors import ConfigError, DataError, GanbenchError
from ganbench.heap import numpy_small_pages
from ganbench.metrics.base import METRICS, Metric, register_variant

SQRTM_EPS = 1e-6
MAX_IMAG = 1e-3  # largest tolerated imaginary part of an eigenvalue's square root, as pytorch-fid's sqrtm check


class FrechetError(GanbenchError):
    """The covariances do not give a real distance (not positive semi-definite, or not finite); `which` is
    1 or 2 when one covariance is to blame."""

    def __init__(self, message: str, which: int | None = None) -> None:
        super().__init__(message)
        self.which = which


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) for symmetric positive semi-definite S1, S2, through symmetric eigendecompositions.

    S1 S2 is similar to R S2 R with R = S1^(1/2) (symmetric PSD), so the trace of its principal square root
    is the sum of the square roots of R S2 R's eigenvalues. Two `eigh` calls replace scipy's Schur-based
    `sqrtm` of the non-symmetric product: same value (to ~1e-15 relative on full-rank 2048-d covariances),
    ~6x faster at 2048 dimensions, and no spurious imaginary parts when there are fewer samples than
    dimensions. An eigenvalue below -MAX_IMAG² (its root would be imaginary beyond pytorch-fid's tolerance)
    means an input is not a covariance and is an error.

    Eigenvalues below d·eps·λmax are round-off of ones that are exactly 0 (a covariance of N < d samples
    has rank N-1) and count as 0: their square roots (~1e-8·sqrt(λmax) each, d-N of them) would otherwise
    add up to a visible error, e.g. FID of a 16-sample set against itself of -1.1e-5 instead of 0.
    """
    w1, v1 = _eigh(s1)
    if w1.min(initial=0.0) < -MAX_IMAG ** 2:
        raise FrechetError(f"sqrt(S1 S2) would have an imaginary component: the first covariance has an "
                           f"eigenvalue {w1.min():.3g} < 0, so it is not positive semi-definite", which=1)
    import torch

    v1t = torch.from_numpy(v1)
    root1 = (v1t * torch.from_numpy(np.sqrt(_drop_roundoff(w1)))) @ v1t.T
    inner = (root1 @ torch.from_numpy(np.ascontiguousarray(s2)) @ root1).numpy()
    return _trace_sqrt_psd(inner, "second")


def trace_sqrt_product_factored(s1: np.ndarray, factor2: np.ndarray) -> float:
    """Tr sqrt(S1 S2) with S2 = Bᵀ B given by its factor B [N, d], for N < d (fewer samples than dimensions).

    The non-zero eigenvalues of S1 Bᵀ B are those of B S1 Bᵀ (N x N, symmetric PSD when S1 is), so one
    N x N eigendecomposition replaces two d x d ones: at 2048-d and N=160 milliseconds instead of seconds.
    Same value as `trace_sqrt_product` to ~1e-12 relative (tests/test_fid.py).
    """
    import torch

    b = torch.from_numpy(np.ascontiguousarray(factor2, np.float64))
    inner = (b @ torch.from_numpy(np.ascontiguousarray(s1)) @ b.T).numpy()
    return _trace_sqrt_psd(inner, "first")


def _trace_sqrt_psd(inner: np.ndarray, which: str) -> float:
    """Tr sqrt of a product's symmetric similar form `inner` (symmetrised here); an eigenvalue below
    -MAX_IMAG² is an error blaming the `which` covariance."""
    w = _eigh((inner + inner.T) / 2, vectors=False)
    if w.min(initial=0.0) < -MAX_IMAG ** 2:
        raise FrechetError(f"sqrt(S1 S2) has an imaginary component {np.sqrt(-w.min()):.3g} (> {MAX_IMAG}): "
                           f"the {which} covariance is not positive semi-definite", which=1 if which == "first" else 2)
    return float(np.sqrt(_drop_roundoff(w)).sum())


def _eigh(a: np.ndarray, vectors: bool = True):
    """Float64 symmetric eigendecomposition on torch's LAPACK and thread pool (numpy's BLAS threads would
    compete with torch's on a busy machine: 2-3x slower at 2048-d); LinAlgError when it does not converge."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(a, np.float64))
    try:
        if vectors:
            w, v = torch.linalg.eigh(t)
            return w.numpy(), v.numpy()
        return torch.linalg.eigvalsh(t).numpy()
    except RuntimeError as exc:  # torch's _LinAlgError is a RuntimeError
        raise np.linalg.LinAlgError(str(exc)) from None


def _drop_roundoff(w: np.ndarray) -> np.ndarray:
    """Symmetric-matrix eigenvalues with those below d·eps·λmax (round-off, negatives included) set to 0."""
    cut = w.size * np.finfo(np.float64).eps * max(float(w.max(initial=0.0)), 0.0)
    return np.where(w > cut, w, 0.0)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     factor2: np.ndarray | None = None) -> float:
    """||mu1-mu2||² + Tr(S1 + S2 - 2 sqrt(S1 S2)) in float64, never below 0 (the distance cannot be).

    `factor2`, optional: B [N, d] with sigma2 = Bᵀ B (the centred samples over sqrt of the divisor). With
    N < d the trace of the root then comes from an N x N eigendecomposition (`trace_sqrt_product_factored`).

    Non-finite inputs are an error naming which; an eigendecomposition that does not converge is retried
    with 1e-6·I added to both covariances (the reference codes' fallback for a singular product). What is
    left of round-off after `trace_sqrt_product` drops it is within ~1e-12 of the traces and may be
    negative only when the true distance is 0, so the result is clipped at 0.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise GanbenchError(f"mismatched Gaussian shapes: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    for name, a in (("mean 1", mu1), ("mean 2", mu2), ("covariance 1", s1), ("covariance 2", s2)):
        if not np.isfinite(a).all():
            raise FrechetError(f"{name} has non-finite entries (NaN or inf features?)")
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    diff = mu1 - mu2
    try:
        if factor2 is not None and factor2.shape[0] < factor2.shape[1] == s1.shape[0]:
            tr_covmean = trace_sqrt_product_factored(s1, factor2)
        else:
            tr_covmean = trace_sqrt_product(s1, s2)
    except np.linalg.LinAlgError:
        offset = np.eye(s1.shape[0]) * SQRTM_EPS
        tr_covmean = trace_sqrt_product(s1 + offset, s2 + offset)
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean))


@METRICS.register("fid")
@dataclass
class FID(Metric):
    """FID of n_gen generated vs n_real real images (None: the context's counts) on the context's extractor.

    Presets below carry NVlabs' names and sample counts and report under their own name.
    """

    reference = "NVlabs frechet_inception_distance.py (covariance ÷N); pytorch-fid, clean-fid: covariance=unbiased"
    cost = "one generator + feature pass over n_gen (shared with kid/is/pr), real features cached"

    n_gen: int | None = None
    n_real: int | None = None
    covariance: str = "biased"
    extractor: str | None = None

    seed_free_on_images = True   # see Metric
    name = "fid"
    outputs = {"fid": "lower"}
    needs = frozenset({"real_features", "gen_features"})

    def __post_init__(self) -> None:
        if self.covariance not in ("biased", "unbiased"):
            raise ConfigError(f"{self.name}: covariance must be 'biased' (NVlabs, ÷N) or 'unbiased' (÷(N-1)), "
                              f"got {self.covariance!r}")

    @numpy_small_pages()  # a dozen 32 MiB float64 arrays: huge pages cost far more to fault in than they save
    def compute(self, ctx) -> dict[str, float]:
        gen = ctx.moments("gen", self.extractor, self.n_gen)
        real = ctx.moments("real", self.extractor, self.n_real)
        gen_cov, real_cov = gen.cov(self.covariance), real.cov(self.covariance)
        factor = None
        if gen.n < gen.total.size:  # fewer samples than dimensions: the N x N route (trace_sqrt_product_factored)
            rows = np.asarray(ctx.outputs("gen", "features", self.extractor, gen.n), np.float64) - gen.mean
            factor = rows / np.sqrt(gen.n if self.covariance == "biased" else gen.n - 1)
        try:
            value = frechet_distance(real.mean, real_cov, gen.mean, gen_cov, factor)
        except FrechetError as exc:
            file = getattr(ctx, "real_file", None)
            if exc.which == 1 and file is not None:  # the real side came from the file: name it, not "the first"
                raise DataError(f"{file.path}: sigma is not positive semi-definite (FID would take the root of a "
                                f"negative eigenvalue), so it is not a covariance matrix") from None
            raise
        return {self.name: value}


INCEPTION = {"published_extractor": "inception"}

register_variant(FID, "fid50k_full", "NVlabs `fid50k_full`: 50k generated vs every real image.",
                 {"fid50k_full": "lower"}, class_attrs=INCEPTION, n_gen=50000)
register_variant(FID, "fid50k", "NVlabs `fid50k`: 50k generated vs the first 50k reals.",
                 {"fid50k": "lower"}, class_attrs=INCEPTION, n_gen=50000, n_real=50000)
register_variant(FID, "fid10k_full", "10k generated vs every real image.",
                 {"fid10k_full": "lower"}, class_attrs=INCEPTION, n_gen=10000)
register_variant(FID, "fid10k", "10k generated vs the first 10k reals.",
                 {"fid10k": "lower"}, class_attrs=INCEPTION, n_gen=10000, n_real=10000)
