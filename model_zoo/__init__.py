"""Network definitions for the ProGAN -> StyleGAN3 family, behind one registry.

A family registers a builder with `@register(name)`; `build(name, resolution, **overrides)` returns a
`ModelSpec` whose `config` rebuilds the same networks (`build(**spec.config)`), so a checkpoint that
stores the config describes itself and `load(path)` needs nothing but the file. `load` also reads NVlabs'
PyTorch pickles and TF-era pickles, through model_zoo/formats (the one place that knows those formats).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from ganbench.registry import Registry, import_submodules

if TYPE_CHECKING:
    from model_zoo.formats import NetworkFile


@dataclass
class ModelSpec:
    """Networks plus everything needed to rebuild and train them."""

    G: nn.Module
    D: nn.Module
    config: dict[str, Any]                 # kwargs for build(): name, resolution and every override
    train: dict[str, Any] = field(default_factory=dict)  # family training defaults (lr, betas, loss, reg, ...)


MODELS: Registry[Callable[..., ModelSpec]] = Registry("model")


def register(name: str) -> Callable:
    """Decorator registering a builder `fn(resolution, **overrides) -> ModelSpec`."""
    return MODELS.register(name)


def _import_families() -> None:
    import_submodules("model_zoo")


def list_models() -> list[str]:
    """Names of every registered model."""
    _import_families()
    return MODELS.names()


def build(name: str, resolution: int, batch: int | None = None, **overrides: Any) -> ModelSpec:
    """Build G and D of model `name` at `resolution`; overrides are builder keyword arguments.

    `batch` is the run's minibatch size: values the family's reference derives from it (NVIDIA's EMA
    half-life, StyleGAN3's magnitude EMA and blur fade) follow it. It is a run setting, so it stays out of
    `spec.config`; the network values derived from it are spelled out there.
    """
    _import_families()
    builder = MODELS.get(name)
    kwargs = dict(overrides) if batch is None else {**overrides, "batch": batch}
    spec = builder(resolution=resolution, **kwargs)
    spec.config = {"name": name, "resolution": resolution, **overrides, **spec.config}
    return spec


def default_batch(name: str, resolution: int, preset: str | None = None) -> int:
    """The minibatch size the family's preset (or its defaults) publishes, e.g. 32 for stylegan2."""
    with torch.device("meta"):     # options only: no weights are allocated
        spec = build(name, resolution, **({"preset": preset} if preset is not None else {}))
    return int(spec.train["batch"])


def open_network_file(path: str | os.PathLike) -> "NetworkFile":
    """Read a network file of any supported format (ganbench checkpoint, NVlabs or TF-era pickle) as data."""
    from model_zoo.formats import open_file

    return open_file(path)


def snapshot_kimg(name: str) -> float | None:
    """The kimg a snapshot file name stands for, in any format `load` reads (ganbench's network-snapshot-*.pt,
    NVlabs' network-snapshot-*.pkl); None when `name` is not a snapshot name."""
    from model_zoo.formats import snapshot_kimg as kimg_of

    return kimg_of(name)


def load(path: str | os.PathLike, which: str = "G_ema", device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild network `which` ('G_ema', 'G' or 'D') from a network file alone, in eval mode.

    The file may be a ganbench checkpoint, an NVlabs PyTorch pickle or a TF-era ProGAN / StyleGAN / StyleGAN2
    pickle; none of its code runs (see model_zoo/formats). `device` is checked first, as the CLI's --device is
    (`auto`, `cpu`, `cuda`, `cuda:N`): one this machine lacks is a ConfigError, before the file is read.
    """
    from ganbench.devices import resolve_device

    device = resolve_device(device)
    return open_network_file(path).build(which, device)


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """What a network file holds, as plain data: format, family, resolution, config, kimg, training data."""
    return open_network_file(path).describe()
