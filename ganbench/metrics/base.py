"""The metric interface and its registry.

A metric is a dataclass whose fields are its parameters (with the reference defaults), so a
misspelled option is a TypeError turned into a ConfigError by `make_metric`, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import inspect
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
    reference: str = ""           # the implementation whose numbers this metric reproduces (for `metrics list`)
    cost: str = ""                # its typical cost in words, e.g. "one generator + feature pass (shared)"
    work_per_sample: float = 1.0  # relative work per generated sample, weighting the progress bar's ETA
    # Whether the number on a fixed set of images (an image set, not a generator) is the same for every --seed:
    # the set's first n images are scored whatever the seed, so only a metric that draws from the seed itself
    # (SWD's patches and directions) differs. False unless a test shows it (tests/test_imagesets.py).
    seed_free_on_images: bool = False
    # The feature network behind the published numbers of this metric's name (NVlabs' fid50k_full: "inception"),
    # or "" for a generic metric: measured with another one, its rows are honest but `eval` warns that they do
    # not compare with published values.
    published_extractor: str = ""

    @abstractmethod
    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        """Compute every key of `outputs` from what the context provides."""

    def not_applicable_to(self, G: Any) -> str | None:
        """Why this metric cannot measure generator `G` (the `NotApplicable` message), or None when it can.

        It looks only at G's structure (a W space, StyleGAN3's input transform), never at its weights, so
        `bench` asks it of networks built on the meta device and refuses a metric that fits none of a suite's
        models before anything is trained.
        """
        return None

    def params(self) -> dict[str, Any]:
        """The parameters this instance runs with (recorded with results)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}

    def result_keys(self, resolution: int | None = None) -> list[str]:
        """The keys `compute` returns for images of `resolution` (rows written when a run diverged)."""
        return list(self.outputs)


METRICS: Registry[type[Metric]] = Registry("metric")


def parameter_names(cls: type[Metric]) -> list[str]:
    """The parameters metric class `cls` accepts (its dataclass fields, else its constructor's keywords)."""
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    params = inspect.signature(cls.__init__).parameters
    return [p for p, v in params.items() if p != "self" and v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]


def make_metric(name: str, **params: Any) -> Metric:
    """Instantiate the metric registered as `name`; an unknown parameter is a ConfigError listing the valid ones."""
    from ganbench.registry import unknown_name

    cls = METRICS.get(name)
    valid = parameter_names(cls)
    unknown = [key for key in params if key not in valid]
    if unknown:
        raise ConfigError(f"bad parameters for metric {name!r}: {unknown_name('parameter', unknown[0], valid, 'valid')}")
    if dataclasses.is_dataclass(cls):
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, value in params.items():
            problem = _value_problem(key, defaults.get(key, dataclasses.MISSING), value)
            if problem:
                raise ConfigError(f"bad parameter {name}.{key}={value!r}: {problem}")
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"bad parameters for metric {name!r}: {exc}") from None


def _value_problem(key: str, default: Any, value: Any) -> str | None:
    """Why `value` cannot stand where the parameter's default is `default` (None when it can).

    The default's type is the parameter's type: counts are positive integers (seeds may be 0), real-valued
    parameters finite non-negative numbers, flags booleans, names strings; a default of None also takes None.
    """
    import math
    from numbers import Integral, Real

    if value is None:
        return None if default is None else "this parameter needs a value"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "must be true or false"
    is_int = isinstance(value, Integral) and not isinstance(value, bool)
    if isinstance(default, int) or (default is None and key.startswith("n_")):
        if not is_int:
            return "must be a whole number"
        lowest = 0 if key.endswith("seed") else 1
        return None if value >= lowest else f"must be at least {lowest}"
    if isinstance(default, float):
        if not isinstance(value, Real) or isinstance(value, bool) or not math.isfinite(value):
            return "must be a finite number"
        return None if value >= 0 else "must not be negative"
    if isinstance(default, str):   # the API may pass an object (an extractor) where the CLI passes its name
        return "must be a name (text)" if isinstance(value, (Real, bool)) else None
    if isinstance(default, tuple):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        return None if ok else "must be a list of finite numbers"
    return None


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
