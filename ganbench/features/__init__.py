"""Feature extractors (inception, vgg16, shapes-net, ...) behind one interface, looked up by name."""

from __future__ import annotations

import inspect
from typing import Any

from ganbench.features.base import EXTRACTORS, FeatureExtractor
from ganbench.registry import import_submodules


def list_extractors() -> list[str]:
    """Names of every registered feature extractor."""
    import_submodules("ganbench.features")
    return EXTRACTORS.names()


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'inception:mode=legacy_tensorflow,weights=/w.pt' -> ('inception', {'mode': ..., 'weights': ...})."""
    from ganbench.errors import ConfigError

    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"extractor option {item!r} in {spec!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return name.strip(), options


def get_extractor(name: str, **kwargs: Any) -> FeatureExtractor:
    """Build the extractor `name` (weights resolved through ganbench.assets).

    `name` may carry options, e.g. 'inception:mode=legacy_tensorflow'; keyword arguments win over them.
    Unknown options are ConfigErrors.
    """
    from ganbench.errors import ConfigError

    import_submodules("ganbench.features")
    base, options = parse_spec(name)
    factory = EXTRACTORS.get(base)
    merged = {**options, **kwargs}
    try:
        inspect.signature(factory).bind(**merged)
    except TypeError as exc:
        raise ConfigError(f"bad options for extractor {base!r}: {exc}") from None
    return factory(**merged)


__all__ = ["EXTRACTORS", "FeatureExtractor", "get_extractor", "list_extractors", "parse_spec"]
