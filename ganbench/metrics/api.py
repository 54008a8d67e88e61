"""`compute(...)`: the one-call Python API over MetricContext and the metric registry."""

from __future__ import annotations

from typing import Any, Iterable

import torch

from ganbench.errors import ConfigError
from ganbench.features.base import FeatureExtractor
from ganbench.metrics.base import Metric, make_metric
from ganbench.metrics.context import MetricContext, as_generator
from ganbench.registry import import_submodules

DEFAULT_N = 10000


def build_metrics(names: str | Iterable[str | Metric], n: int | None = None) -> list[Metric]:
    """Metric objects for names (or ready Metric instances); an explicit `n` sets every metric's n_gen."""
    import_submodules("ganbench.metrics")
    if isinstance(names, str):
        names = [names]
    metrics = [m if isinstance(m, Metric) else make_metric(m) for m in names]
    if not metrics:
        raise ConfigError("no metrics requested")
    if n is not None:
        for m in metrics:
            if hasattr(m, "n_gen"):
                m.n_gen = int(n)
    return metrics


def required_n_gen(metrics: list[Metric], default: int = DEFAULT_N) -> int:
    """The most generated samples any of `metrics` asks for (`default` when none says)."""
    wanted = [m.n_gen for m in metrics if getattr(m, "n_gen", None)]
    return max(wanted) if wanted else default


def compute(names: str | Iterable[str | Metric], generator_or_images: Any, real: Any = None, n: int | None = None,
            extractor: str | FeatureExtractor = "shapes-net", seed: int = 0, n_real: int | None = None, batch_size: int = 64,
            device: str | torch.device = "cpu", cache_dir: Any = None, progress: Any = None,
            z_dim: int | None = None) -> dict[str, float]:
    """Compute metrics `names` for a generator (or uint8 NCHW images / dataset) against `real`.

    `names` are registered metric names or Metric instances (e.g. `get_metric("fid", covariance=
    "unbiased")`); `real` is an ImageDataset, uint8 images or a dataset spec such as "shapes:5000";
    `extractor` is a registered name or a built FeatureExtractor. A plain function `z -> images` (float in
    [-1, 1] or uint8, NCHW) is measured like a generator; `z_dim` gives its latent size (or a `z_dim` attribute
    on the function). `n` is the number of generated samples
    (default: what the metrics ask for, else all given images, else 10000); `n_real=None` uses every
    real image. Returns {result key: value} for every metric;
    feature passes are shared, real outputs are cached on disk (see MetricContext).
    """
    metrics = build_metrics(names, n)
    generator_or_images = as_generator(generator_or_images, z_dim)
    if n is None and not isinstance(generator_or_images, torch.nn.Module):
        n_gen = len(generator_or_images)
        for m in metrics:
            if getattr(m, "n_gen", None) and m.n_gen > n_gen:
                raise ConfigError(f"metric {m.name!r} needs {m.n_gen} generated images but {n_gen} were given")
    else:
        n_gen = n if n is not None else required_n_gen(metrics)
    ctx = MetricContext(generator=generator_or_images, real=real, n_gen=n_gen, n_real=n_real, extractor=extractor,
                        seed=seed, batch_size=batch_size, device=device, cache_dir=cache_dir, progress=progress)
    results: dict[str, float] = {}
    for m in metrics:
        results.update(m.compute(ctx))
    return results
