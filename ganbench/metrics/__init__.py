"""Metrics, one module each, registered by name; every module in this package is discovered on use."""

from __future__ import annotations

from ganbench.metrics.base import METRICS, Metric, make_metric
from ganbench.registry import import_submodules


def list_metrics() -> list[str]:
    """Names of every registered metric."""
    import_submodules("ganbench.metrics")
    return METRICS.names()


def get_metric(name: str, **params) -> Metric:
    """Instantiate metric `name` with `params` (unknown parameters are errors)."""
    import_submodules("ganbench.metrics")
    return make_metric(name, **params)


def __getattr__(name: str):
    """`compute` is imported on first use, so `import ganbench.metrics` stays light (no torch)."""
    if name == "compute":
        from ganbench.metrics.api import compute

        return compute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METRICS", "Metric", "compute", "get_metric", "list_metrics", "make_metric"]
