"""Feature extractors (inception, vgg16, shapes-net, ...) behind one interface, looked up by name."""

from __future__ import annotations

from typing import Any

from ganbench.features.base import EXTRACTORS, FeatureExtractor
from ganbench.registry import import_submodules


def list_extractors() -> list[str]:
    """Names of every registered feature extractor."""
    import_submodules("ganbench.features")
    return EXTRACTORS.names()


def get_extractor(name: str, **kwargs: Any) -> FeatureExtractor:
    """Build the extractor registered as `name` (weights resolved through ganbench.assets)."""
    import_submodules("ganbench.features")
    return EXTRACTORS.get(name)(**kwargs)


__all__ = ["EXTRACTORS", "FeatureExtractor", "get_extractor", "list_extractors"]
