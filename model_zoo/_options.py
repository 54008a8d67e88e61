"""Resolve a family's keyword options: family defaults < preset < explicit overrides, split into net and train."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from ganbench.errors import ConfigError

# A preset maps the image resolution to (network overrides, training overrides).
Preset = Callable[[int], tuple[dict[str, Any], dict[str, Any]]]
# A batch rule maps the actual minibatch size to a value (NVIDIA's ema_kimg = batch * 10 / 32, ...).
BatchRule = Callable[[int], Any]


@dataclass
class Family:
    """What a family accepts: network defaults, training defaults and named presets."""

    name: str
    net: dict[str, Any]
    train: dict[str, Any]
    presets: dict[str, Preset] = field(default_factory=dict)
    default_preset: str | None = None
    min_resolution: int = 4
    max_resolution: int = 1024      # the largest any paper trained; beyond it channel_base // res reaches 0
    # Values the reference derives from the actual batch; a preset or an explicit override that names the
    # key wins (stylegan2-ada-pytorch's presets fix ema_kimg and do not rescale it).
    derived: dict[str, BatchRule] = field(default_factory=dict)
    # Where each default comes from (key -> "repo file: expression"); presets name theirs in preset_sources.
    sources: dict[str, str] = field(default_factory=dict)
    preset_sources: dict[str, str] = field(default_factory=dict)


@dataclass
class Options:
    """Resolved options: `net` feeds the constructors, `train` becomes spec.train, `config` rebuilds both."""

    net: dict[str, Any]
    train: dict[str, Any]
    config: dict[str, Any]


def check_resolution(family: str, resolution: int, minimum: int = 4, maximum: int = 1024) -> None:
    """Reject resolutions that are not a power of two within [minimum, maximum]."""
    if (not isinstance(resolution, int) or isinstance(resolution, bool) or not minimum <= resolution <= maximum
            or resolution & (resolution - 1)):
        raise ConfigError(f"{family}: resolution must be a power of two from {minimum} to {maximum}, "
                          f"got {resolution!r}")


def resolve(family: Family, resolution: int, preset: str | None, overrides: dict[str, Any],
            batch: int | None = None) -> Options:
    """Merge defaults, the preset and overrides; unknown keys and presets are ConfigErrors naming the culprit.

    `batch` is the run's actual minibatch size (default: the family's or preset's `batch`); the family's
    `derived` values follow it unless the preset or an override names them. It is a run setting, not part of
    the config: the derived network values are spelled out there instead.
    """
    check_resolution(family.name, resolution, family.min_resolution, family.max_resolution)
    overrides = dict(overrides)
    batch = overrides.pop("batch", batch)
    name = family.default_preset if preset is None else preset
    net, train = dict(family.net), dict(family.train)
    fixed: set[str] = set()
    if name is not None:
        if name not in family.presets:
            raise ConfigError(f"{family.name}: unknown preset {name!r}; known: {', '.join(sorted(family.presets))}")
        pnet, ptrain = family.presets[name](resolution)
        net.update(pnet)
        train.update(ptrain)
        fixed |= set(pnet) | set(ptrain)
    if batch is not None:
        train["batch"] = batch
    unknown = sorted(k for k in overrides if k not in net and k not in train)
    if unknown:
        known = ", ".join(sorted(set(net) | set(train)))
        raise ConfigError(f"{family.name}: unknown option(s) {', '.join(unknown)}; known: {known}")
    for key, value in overrides.items():
        (net if key in net else train)[key] = value
    for key, rule in family.derived.items():
        if key not in fixed and key not in overrides:
            (net if key in net else train)[key] = rule(int(train["batch"]))
    # The config spells out every network hyperparameter, so a checkpoint rebuilds even if presets change.
    config = {"preset": preset, **net, **{k: v for k, v in overrides.items() if k in train}}
    return Options(net=net, train=train, config=config)


def value_sources(family: Family, preset: str | None, keys: Any, overrides: dict[str, Any]) -> dict[str, str]:
    """Where each resolved value comes from: an override, the preset, a batch rule, or the family's reference."""
    name = family.default_preset if preset is None else preset
    pset: set[str] = set()
    if name is not None and name in family.presets:
        pnet, ptrain = family.presets[name](family.min_resolution * 8)
        pset = set(pnet) | set(ptrain)
    out = {}
    for key in keys:
        if key in overrides:
            out[key] = "override"
        elif key in pset:
            out[key] = family.preset_sources.get(name, f"preset {name}")
        elif key in family.sources:
            out[key] = family.sources[key]
        else:
            out[key] = "ganbench default"
    return out


def build_spec(family: Family, resolution: int, preset: str | None, overrides: dict[str, Any],
               build_networks: Callable[[int, dict[str, Any]], tuple[Any, Any]]) -> "ModelSpec":
    """Resolve the options, build (G, D) from the network options, and package them as a ModelSpec."""
    from model_zoo import ModelSpec

    opts = resolve(family, resolution, preset, overrides)
    G, D = build_networks(resolution, opts.net)
    return ModelSpec(G=G, D=D, config=opts.config, train=opts.train)
