"""Resolve a family's keyword options: family defaults < preset < explicit overrides, split into net and train."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from ganbench.errors import ConfigError

# A preset maps the image resolution to (network overrides, training overrides).
Preset = Callable[[int], tuple[dict[str, Any], dict[str, Any]]]


@dataclass
class Family:
    """What a family accepts: network defaults, training defaults and named presets."""

    name: str
    net: dict[str, Any]
    train: dict[str, Any]
    presets: dict[str, Preset] = field(default_factory=dict)
    default_preset: str | None = None
    min_resolution: int = 4


@dataclass
class Options:
    """Resolved options: `net` feeds the constructors, `train` becomes spec.train, `config` rebuilds both."""

    net: dict[str, Any]
    train: dict[str, Any]
    config: dict[str, Any]


def check_resolution(family: str, resolution: int, minimum: int = 4) -> None:
    """Reject resolutions that are not a power of two >= minimum."""
    if not isinstance(resolution, int) or resolution < minimum or 2 ** int(math.log2(resolution)) != resolution:
        raise ConfigError(f"{family}: resolution must be a power of two >= {minimum}, got {resolution!r}")


def resolve(family: Family, resolution: int, preset: str | None, overrides: dict[str, Any]) -> Options:
    """Merge defaults, the preset and overrides; unknown keys and presets are ConfigErrors naming the culprit."""
    check_resolution(family.name, resolution, family.min_resolution)
    name = family.default_preset if preset is None else preset
    net, train = dict(family.net), dict(family.train)
    if name is not None:
        if name not in family.presets:
            raise ConfigError(f"{family.name}: unknown preset {name!r}; known: {', '.join(sorted(family.presets))}")
        pnet, ptrain = family.presets[name](resolution)
        net.update(pnet)
        train.update(ptrain)
    unknown = sorted(k for k in overrides if k not in net and k not in train)
    if unknown:
        known = ", ".join(sorted(set(net) | set(train)))
        raise ConfigError(f"{family.name}: unknown option(s) {', '.join(unknown)}; known: {known}")
    for key, value in overrides.items():
        (net if key in net else train)[key] = value
    # The config spells out every network hyperparameter, so a checkpoint rebuilds even if presets change.
    config = {"preset": preset, **net, **{k: v for k, v in overrides.items() if k in train}}
    return Options(net=net, train=train, config=config)


def build_spec(family: Family, resolution: int, preset: str | None, overrides: dict[str, Any],
               build_networks: Callable[[int, dict[str, Any]], tuple[Any, Any]]) -> "ModelSpec":
    """Resolve the options, build (G, D) from the network options, and package them as a ModelSpec."""
    from model_zoo import ModelSpec

    opts = resolve(family, resolution, preset, overrides)
    G, D = build_networks(resolution, opts.net)
    return ModelSpec(G=G, D=D, config=opts.config, train=opts.train)
