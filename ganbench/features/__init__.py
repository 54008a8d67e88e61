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


def extractor_options(factory: Any) -> list[str] | None:
    """The keyword options an extractor factory accepts (None when it takes any), `device` aside."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "device"]


def check_extractor(spec: str) -> str:
    """Validate an extractor spec (name and option keys) without building it or touching its weights.

    Returns the base name; an unknown name or option is a ConfigError listing the valid ones, so a typo
    stops an evaluation before any work rather than leaving it with nothing measured.
    """
    from ganbench.errors import ConfigError
    from ganbench.registry import unknown_name

    import_submodules("ganbench.features")
    base, options = parse_spec(str(spec))
    factory = EXTRACTORS.get(base)
    valid = extractor_options(factory)
    unknown = [key for key in options if valid is not None and key not in valid]
    if unknown:
        raise ConfigError(f"extractor {spec!r}: {unknown_name('option', unknown[0], valid, 'valid')}")
    return base


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


__all__ = ["EXTRACTORS", "FeatureExtractor", "check_extractor", "get_extractor", "list_extractors", "parse_spec"]
