"""Time of the Fréchet distance itself (after the feature pass): ganbench's eigen route vs scipy's sqrtm.

    python benchmarks/frechet_speed.py [--dims 512,2048] [--n 4096] [--reps 2] [--csv reports/frechet_speed.csv]

For each feature dimension, two random covariances from `n` correlated samples; `scipy_sqrtm_s` is
`scipy.linalg.sqrtm(S1 @ S2)` + trace (the route of pytorch-fid, clean-fid and NVlabs' metric code),
`ganbench_s` is `ganbench.metrics.fid.frechet_distance` (two symmetric eigendecompositions). `rel_diff`
is the relative difference of the two distances. Best of `reps` wall times; torch/numpy thread count as set
by the environment (OMP_NUM_THREADS).

Measured 2026-11-25, idle 2-core AMD EPYC box, 2 threads, n=4096:
    dim 2048: scipy sqrtm 11.5 s, ganbench 1.9 s, rel_diff 2e-15 (1 thread: 13.7 s vs 3.4 s)
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg
from _table import emit

from ganbench.metrics.fid import frechet_distance

FIELDS = ["dim", "n", "scipy_sqrtm_s", "ganbench_s", "speedup", "fid_scipy", "fid_ganbench", "rel_diff"]


def best_of(reps: int, fn):
    times, value = [], None
    for _ in range(reps):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def scipy_route(mu1, s1, mu2, s2) -> float:
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1 + s2 - 2 * covmean))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", default="512,2048")
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--csv", default="reports/frechet_speed.csv")
    args = ap.parse_args()
    rows = []
    for dim in (int(d) for d in args.dims.split(",")):
        rng = np.random.default_rng(dim)
        a = rng.standard_normal((args.n, dim))
        b = 1.1 * rng.standard_normal((args.n, dim)) + 0.3 * a + 0.1
        mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
        t_ref, ref = best_of(args.reps, lambda: scipy_route(mu1, s1, mu2, s2))
        t_ours, ours = best_of(args.reps, lambda: frechet_distance(mu1, s1, mu2, s2))
        rows.append({"dim": dim, "n": args.n, "scipy_sqrtm_s": round(t_ref, 3), "ganbench_s": round(t_ours, 3),
                     "speedup": round(t_ref / t_ours, 2), "fid_scipy": ref, "fid_ganbench": ours,
                     "rel_diff": f"{abs(ref - ours) / abs(ref):.1e}"})
    emit(rows, FIELDS, args.csv)


if __name__ == "__main__":
    main()
