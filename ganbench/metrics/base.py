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


def register_variant(base: type[Metric], name: str, doc: str, outputs: dict[str, Direction],
                     class_attrs: dict[str, Any] | None = None, **defaults: Any) -> type[Metric]:
    """Register `name` as a preset of dataclass metric `base`: other parameter defaults, its own result keys.

    NVlabs' named metrics (`fid50k_full`, `kid50k`, `ppl2_wend`, ...) are such presets; declaring them as one
    call keeps the parameter set in one place (the base) and each preset's difference on one line.
    """
    fields = base.__dataclass_fields__
    unknown = sorted(set(defaults) - set(fields))
    if unknown:
        raise ValueError(f"metric variant {name!r}: {base.__name__} has no parameters {unknown}")
    new_fields = [(key, fields[key].type, dataclasses.field(default=value)) for key, value in defaults.items()]
    class_name = "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))
    namespace = {"__doc__": doc, "name": name, "outputs": dict(outputs), **(class_attrs or {})}
    cls = dataclasses.make_dataclass(class_name, new_fields, bases=(base,), namespace=namespace)
    cls.__module__ = base.__module__
    return METRICS.register(name)(cls)
