"""Metrics, one module each, registered by name; every module in this package is discovered on use."""

from __future__ import annotations

from ganbench.metrics.base import METRICS, Metric, make_metric
from ganbench.registry import import_submodules
from ganbench.metrics.api import compute  # noqa: E402  (after base: api builds on it)


def list_metrics() -> list[str]:
    """Names of every registered metric."""
    import_submodules("ganbench.metrics")
    return METRICS.names()


def get_metric(name: str, **params) -> Metric:
    """Instantiate metric `name` with `params` (unknown parameters are errors)."""
    import_submodules("ganbench.metrics")
    return make_metric(name, **params)


__all__ = ["METRICS", "Metric", "compute", "get_metric", "list_metrics", "make_metric"]
