"""`compute(...)`: the one-call Python API over MetricContext and the metric registry."""

from __future__ import annotations

import numbers
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from ganbench.devices import resolve_device
from ganbench.errors import ConfigError
from ganbench.features.base import FeatureExtractor
from ganbench.metrics.base import Metric, make_metric
from ganbench.metrics.context import MetricContext, as_generator, check_n_real
from ganbench.registry import import_submodules

DEFAULT_N = 10000
ACCEPTED = ("a generator network (e.g. model_zoo.load(path)), a path to a network file or to an image folder, .zip, "
            ".npz or .npy, a function z -> images (with z_dim), an ImageDataset (open_dataset(spec)) or uint8 images")


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
    "unbiased")`); `real` is an ImageDataset, uint8 images or a dataset spec such as "shapes:5000" (a spec
    is opened at the generator's size; real images of another size than the generated ones are a ConfigError);
    `extractor` is a registered name or a built FeatureExtractor.

    What is measured: a generator network; a path to a network file (its G_ema is loaded on `device` with
    `model_zoo.load`) or to an image folder, .zip, .npz or .npy (opened as `eval` opens an image set); a
    `model_zoo.build(...)` ModelSpec (its G: freshly built, G_ema is a copy of it); uint8 images (NCHW, or
    NHWC, recognised by a last axis of 1 or 3 channels and a second that is not, and taken as such) or an
    ImageDataset. A plain function `z -> images` (float in [-1, 1] or uint8, NCHW) is measured like a
    generator; `z_dim` gives its latent size (or a `z_dim` attribute on the function). Its float output beyond
    +-2 is an error ([0, 255] floats would be clamped to white), and a first batch wholly in [0, 1] is warned
    about (return x*2-1). `n` is the number of generated samples, a whole number of at least 2 (default: what
    the metrics ask for, else all given images, else 10000); `n_real=None` uses every real image, and an
    `n_real` above the real data's size is a ConfigError, as in eval. `device` is `auto`, `cpu`, `cuda` or
    `cuda:N`, checked first. Returns {result key: value} for every metric; feature passes are shared, real
    outputs are cached on disk (see MetricContext).
    """
    n, n_real = sample_count(n, "n"), sample_count(n_real, "n_real")
    metrics = build_metrics(names, n)
    device = resolve_device(device)
    generator_or_images = measured_source(generator_or_images, z_dim, device)
    if n is None and generator_or_images is not None and not isinstance(generator_or_images, torch.nn.Module):
        n_gen = len(generator_or_images)
        for m in metrics:
            if getattr(m, "n_gen", None) and m.n_gen > n_gen:
                raise ConfigError(f"metric {m.name!r} needs {m.n_gen} generated images but {n_gen} were given")
    else:
        n_gen = n if n is not None else required_n_gen(metrics)
    ctx = MetricContext(generator=generator_or_images, real=real, n_gen=n_gen, n_real=n_real, extractor=extractor,
                        seed=seed, batch_size=batch_size, device=device, cache_dir=cache_dir, progress=progress)
    if ctx.real is not None:
        check_n_real(n_real, ctx.real, real if isinstance(real, str) else getattr(ctx.real, "name", "array"))
    results: dict[str, float] = {}
    for m in metrics:
        results.update(m.compute(ctx))
    return results


def sample_count(value: Any, name: str) -> int | None:
    """`value` (None, or a whole number of at least 2, as eval's --n / --n-real) as an int, else a ConfigError."""
    if value is None:
        return None
    shown = value if isinstance(value, numbers.Real) else repr(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ConfigError(f"{name} must be a whole number, got {shown}")
    if int(value) < 2:
        raise ConfigError(f"{name} must be at least 2, got {int(value)}")
    return int(value)


def measured_source(source: Any, z_dim: int | None, device: torch.device) -> Any:
    """What compute() measures, from what the user handed it: a network, images, or a function (see compute)."""
    import model_zoo
    from ganbench.data.base import ImageDataset

    if isinstance(source, (str, os.PathLike)):
        return _open_path(source, device)
    if isinstance(source, model_zoo.ModelSpec):
        return source.G
    if isinstance(source, torch.nn.Module):
        if getattr(source, "z_dim", None) is None:
            raise ConfigError(f"compute() measures generators, but got a {type(source).__name__} (a network without "
                              f"z_dim); it accepts {ACCEPTED}")
        return source
    if source is None or isinstance(source, (ImageDataset, torch.Tensor, np.ndarray, list, tuple)):
        return source
    if callable(source):
        return as_generator(source, z_dim)
    raise ConfigError(f"compute() cannot measure a {type(source).__name__}; it accepts {ACCEPTED}")


def _open_path(source: str | os.PathLike, device: torch.device) -> Any:
    """A network file's G_ema, an image set, or an embedded dataset spec ('shapes:1000')."""
    import model_zoo
    from ganbench.data import open_dataset
    from ganbench.data.imagesets import is_image_set, open_image_set
    from ganbench.data.sources import EMBEDDED

    text = str(source)
    path = Path(text).expanduser()
    if not path.exists():
        if text.partition(":")[0] in EMBEDDED.names():
            return open_dataset(text)
        raise ConfigError(f"{text!r} does not exist: compute() accepts {ACCEPTED}")
    if is_image_set(path):
        return open_image_set(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder without images: for a training run, pass one snapshot "
                          f"(model_zoo.load('{path}/network-snapshot-....pt'))")
    return model_zoo.load(path, device=device)
