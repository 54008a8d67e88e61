"""The metric interface and its registry.

A metric is a dataclass whose fields are its parameters (with the reference defaults), so a
misspelled option is a TypeError turned into a ConfigError by `make_metric`, never silently ignored.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Literal

from ganbench.errors import ConfigError
from ganbench.registry import Registry

if TYPE_CHECKING:
    from ganbench.metrics.context import MetricContext

Direction = Literal["lower", "higher"] | None

# What a metric may ask the context for; the orchestrator uses this to share passes.
NEEDS = frozenset({"real_features", "gen_features", "real_logits", "gen_logits", "gen_attributes",
                   "real_images", "gen_images", "generator", "labels"})


class Metric(ABC):
    """One metric: `compute(ctx)` returns {output key: value}; `outputs` says which way is better per key."""

    name: str = ""
    outputs: dict[str, Direction] = {}
    needs: frozenset[str] = frozenset()

    @abstractmethod
    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        """Compute every key of `outputs` from what the context provides."""

    def params(self) -> dict[str, Any]:
        """The parameters this instance runs with (recorded with results)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


METRICS: Registry[type[Metric]] = Registry("metric")


def make_metric(name: str, **params: Any) -> Metric:
    """Instantiate the metric registered as `name`; unknown parameters are a ConfigError."""
    cls = METRICS.get(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for metric {name!r}: {exc}") from None
