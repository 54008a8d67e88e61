"""Network definitions for the ProGAN -> StyleGAN3 family, behind one registry.

A family registers a builder with `@register(name)`; `build(name, resolution, **overrides)` returns a
`ModelSpec` whose `config` rebuilds the same networks (`build(**spec.config)`), so a checkpoint that
stores the config describes itself and `load(path)` needs nothing but the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from ganbench.registry import Registry, import_submodules


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


def build(name: str, resolution: int, **overrides: Any) -> ModelSpec:
    """Build G and D of model `name` at `resolution`; overrides are builder keyword arguments."""
    _import_families()
    spec = MODELS.get(name)(resolution=resolution, **overrides)
    spec.config = {"name": name, "resolution": resolution, **overrides, **spec.config}
    return spec


def load(path: str, which: str = "G_ema", device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild network `which` ('G_ema', 'G' or 'D') from a checkpoint file alone, in eval mode."""
    from ganbench.checkpoint import load_checkpoint
    from ganbench.errors import CheckpointError

    ckpt = load_checkpoint(path, map_location=device)
    config = dict(ckpt.metadata["config"])
    spec = build(config.pop("name"), config.pop("resolution"), **config)
    net = spec.D if which == "D" else spec.G
    if which not in ckpt.state:
        raise CheckpointError(f"checkpoint {path} holds no {which!r} (has {', '.join(sorted(ckpt.state))})")
    try:
        net.load_state_dict(ckpt.state[which])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: {which} weights do not fit {config}: "
                              f"{str(exc).splitlines()[0]}") from None
    return net.to(device).eval().requires_grad_(False)
