"""Typed configs for evaluation and benchmark suites, and the benchmarks.toml loader.

A suite file is TOML with one table per suite under `[suites.NAME]`; every key is checked, so a
misspelled option is a ConfigError naming the key and the file instead of a silently ignored setting.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ganbench.errors import ConfigError

DEFAULT_BENCHMARKS = "benchmarks.toml"


DEFAULT_TRAIN_KIMG = 10.0  # `ganbench train --kimg` when not given (a family's `kimg` default is its published length)
DEFAULT_K = 3.0  # noise allowance of a check: k x the combined seed std (see CheckSettings)


@dataclass(frozen=True)
class Tolerance:
    """How far a metric may move in its worse direction before a check fails: absolute, % of baseline, or both.

    With both, the larger allowance applies (`fid=+0.5,fid=+2%` lets FID rise by max(0.5, 2% of the baseline)).
    """

    abs: float = 0.0
    rel: float = 0.0  # percent of |baseline|
    sign: int = 0  # +1 / -1 when the user wrote a sign, 0 when they gave a bare magnitude

    def allowed(self, baseline: float) -> float:
        """The allowed worsening, as a non-negative amount in the metric's units."""
        return max(self.abs, self.rel / 100.0 * abs(baseline))

    def merged(self, other: "Tolerance", key: str) -> "Tolerance":
        """This tolerance with `other`'s part added (one absolute and one relative part per key at most)."""
        if (self.abs and other.abs) or (self.rel and other.rel):
            raise ConfigError(f"tolerance for {key!r} gives the {'absolute' if self.abs and other.abs else 'relative'} "
                              "part twice")
        if self.sign and other.sign and self.sign != other.sign:
            raise ConfigError(f"tolerance for {key!r} has parts with opposite signs ({self} and {other})")
        return Tolerance(abs=self.abs or other.abs, rel=self.rel or other.rel, sign=self.sign or other.sign)

    def __str__(self) -> str:
        sign = {1: "+", -1: "-", 0: ""}[self.sign]
        parts = ([f"{sign}{self.abs:g}"] if self.abs else []) + ([f"{sign}{self.rel:g}%"] if self.rel else [])
        return " or ".join(parts) or "0"


@dataclass
class CheckSettings:
    """How `ganbench check` (and a suite's check) decides: tolerances per key and k, the noise allowance.

    A group fails when its mean is worse than the baseline's by more than
    max(absolute tolerance, relative tolerance x |baseline|, k x combined std of the two means).
    """

    k: float = DEFAULT_K
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    source: Path | None = None

    def overridden(self, tolerances: dict[str, Tolerance] | None = None, k: float | None = None) -> "CheckSettings":
        """These settings with some keys (and k) replaced, e.g. by a suite's table or by command-line options."""
        return CheckSettings(k=self.k if k is None else _check_k(k, "--k"),
                             tolerances={**self.tolerances, **(tolerances or {})}, source=self.source)


def _check_k(k: Any, where: str) -> float:
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k < 0:
        raise ConfigError(f"{where}: k must be a finite number >= 0, got {k!r}")
    return float(k)


@dataclass
class ModelEntry:
    """One model of a suite: a zoo family, its preset, and per-model overrides of the suite settings."""

    name: str
    preset: str | None = None
    kimg: float | None = None
    batch: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """Run-folder stem: the family plus its preset, e.g. `stylegan2-tiny`."""
        return f"{self.name}-{self.preset}" if self.preset else self.name


@dataclass
class Suite:
    """A named benchmark: what to train, how long, what to measure, and the regression tolerances."""

    name: str
    dataset: str
    resolution: int
    models: list[ModelEntry]
    metrics: list[str]
    kimg: float = 10.0
    batch: int = 32
    snapshot_kimg: float | None = None
    n: int | None = None  # generated images per metric (None: each metric's own default)
    n_real: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    eval_seed: int = 0
    extractor: str = "shapes-net"
    device: str = "cpu"
    description: str = ""
    skip_unknown: bool = False   # ignore non-image files in the dataset folder / zip (train and eval)
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    tolerances: dict[str, Tolerance] = field(default_factory=dict)
    k: float | None = None
    baseline: str | None = None
    source: Path | None = None
    check_defaults: CheckSettings = field(default_factory=CheckSettings)

    def check_settings(self) -> CheckSettings:
        """The file's [check] defaults with this suite's own tolerances and k on top."""
        return self.check_defaults.overridden(self.tolerances, self.k)

    def baseline_path(self, out_dir: Path) -> Path:
        """Where the suite's baseline lives: relative paths resolve against the suite file's folder."""
        if self.baseline is None:
            return Path(out_dir) / f"baseline-{self.name}.csv"
        path = Path(os.path.expanduser(self.baseline))
        if not path.is_absolute() and self.source is not None:
            path = self.source.parent / path
        return path


_SUITE_KEYS = {f.name for f in fields(Suite)} - {"name", "source", "check_defaults"}
_CHECK_KEYS = {"k", "tolerances"}
_MODEL_KEYS = {"name", "preset", "kimg", "batch", "overrides"}


def parse_tolerance(key: str, text: str | float | int | list) -> Tolerance:
    """Parse `+0.5`, `-0.2`, `0.5`, `+5%`, or a list of one absolute and one relative part, into a Tolerance."""
    if isinstance(text, list):
        if not text:
            raise ConfigError(f"tolerance for {key!r} is an empty list")
        out = parse_tolerance(key, text[0])
        for part in text[1:]:
            out = out.merged(parse_tolerance(key, part), key)
        return out
    if isinstance(text, bool):
        raise ConfigError(f"tolerance for {key!r} must be a number like +0.5, -0.2 or +5%, got {text!r}")
    raw = str(text).strip()
    relative = raw.endswith("%")
    body = raw[:-1].strip() if relative else raw
    sign = 1 if body.startswith("+") else -1 if body.startswith("-") else 0
    try:
        amount = float(body)
    except ValueError:
        raise ConfigError(f"tolerance for {key!r} must be a number like +0.5, -0.2 or +5%, got {raw!r}") from None
    if not math.isfinite(amount):
        raise ConfigError(f"tolerance for {key!r} must be finite, got {raw!r}")
    sign = sign if amount != 0 else 0
    return Tolerance(rel=abs(amount), sign=sign) if relative else Tolerance(abs=abs(amount), sign=sign)


def _tolerance_table(value: Any, where: str) -> dict[str, Tolerance]:
    table = _typed(value, dict, "tolerances", where)
    out = {}
    for key, text in table.items():
        try:
            out[key] = parse_tolerance(key, text)
        except ConfigError as exc:   # named the key but not the file it came from
            raise ConfigError(f"{where}: {exc}") from None
    return out


def check_settings_from_table(table: Any, source: Path | None = None) -> CheckSettings:
    """Validate a `[check]` table (k, tolerances) and build its CheckSettings."""
    where = f"{source or 'benchmarks'} [check]"
    table = _typed(table, dict, "check", where)
    _check_keys(table, _CHECK_KEYS, where)
    k = _check_k(table["k"], where) if "k" in table else DEFAULT_K
    return CheckSettings(k=k, tolerances=_tolerance_table(table.get("tolerances", {}), where), source=source)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"benchmark file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"benchmark file {path} is a folder") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"benchmark file {path} is not valid TOML: {exc}") from None


def load_check_settings(path: str | os.PathLike | None = None) -> CheckSettings:
    """The `[check]` table of a benchmarks file (default: see default_benchmarks_path); built-in defaults when
    the default file is absent or has no such table."""
    if path is None:
        path = default_benchmarks_path()
        if not path.is_file():
            return CheckSettings()
    path = Path(path)
    data = _read_toml(path)
    _check_keys(data, {"suites", "check"}, str(path))
    return check_settings_from_table(data["check"], path) if "check" in data else CheckSettings(source=path)


def parse_metric_list(text: str | list[str]) -> list[str]:
    """Split `fid,kid,is` into names, keeping order and dropping duplicates."""
    items = text if isinstance(text, list) else str(text).split(",")
    names = [s.strip() for s in items if str(s).strip()]
    if not names:
        raise ConfigError("no metrics given (e.g. --metrics fid,kid,is)")
    return list(dict.fromkeys(names))


def parse_value(text: str) -> Any:
    """Interpret a command-line value as JSON when it parses (numbers, booleans, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_metric_params(items: list[str] | None) -> dict[str, dict[str, Any]]:
    """Parse repeated `METRIC.PARAM=VALUE` options into {metric: {param: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        metric, dot, param = key.strip().partition(".")
        if not sep or not dot or not metric or not param:
            raise ConfigError(f"metric parameter {item!r} must look like METRIC.PARAM=VALUE (e.g. ls.num_samples=2000)")
        out.setdefault(metric, {})[param] = parse_value(value.strip())
    return out


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _typed(value: Any, kind: type | tuple[type, ...], key: str, where: str) -> Any:
    """`value` if it is a `kind` (a TOML boolean is not accepted as a number), else a ConfigError naming `key`."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ConfigError(f"{where}: {key!r} must be {names}, got {value!r}")
    return value


def _model_entry(item: Any, where: str) -> ModelEntry:
    if isinstance(item, str):
        return ModelEntry(name=item)
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: each model must be a name or a table, got {item!r}")
    _check_keys(item, _MODEL_KEYS, where)
    if "name" not in item:
        raise ConfigError(f"{where}: model table lacks 'name'")
    return ModelEntry(
        name=_typed(item["name"], str, "name", where),
        preset=_typed(item["preset"], str, "preset", where) if "preset" in item else None,
        kimg=float(_typed(item["kimg"], (int, float), "kimg", where)) if "kimg" in item else None,
        batch=_typed(item["batch"], int, "batch", where) if "batch" in item else None,
        overrides=dict(_typed(item.get("overrides", {}), dict, "overrides", where)),
    )


def suite_from_table(name: str, table: dict[str, Any], source: Path | None = None,
                     check: CheckSettings | None = None) -> Suite:
    """Validate one `[suites.NAME]` table and build its Suite."""
    where = f"{source or 'suite'} [suites.{name}]"
    _check_keys(table, _SUITE_KEYS, where)
    for key in ("dataset", "resolution", "models", "metrics"):
        if key not in table:
            raise ConfigError(f"{where}: missing required key {key!r}")
    models_raw = _typed(table["models"], list, "models", where)
    if not models_raw:
        raise ConfigError(f"{where}: 'models' is empty")
    models = [_model_entry(m, f"{where} models[{i}]") for i, m in enumerate(models_raw)]
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"{where}: models repeat ({', '.join(labels)}); give each a distinct preset")
    resolution = _typed(table["resolution"], int, "resolution", where)
    if resolution < 4 or resolution & (resolution - 1):
        raise ConfigError(f"{where}: 'resolution' must be a power of two >= 4, got {resolution}")
    seeds = _typed(table.get("seeds", [0]), list, "seeds", where)
    for s in seeds:
        _typed(s, int, "seeds", where)
    params = _typed(table.get("metric_params", {}), dict, "metric_params", where)
    for metric, p in params.items():
        _typed(p, dict, f"metric_params.{metric}", where)
    tolerances = _tolerance_table(table.get("tolerances", {}), where)
    n = _typed(table["n"], int, "n", where) if "n" in table else None
    if n is not None and n < 2:
        raise ConfigError(f"{where}: 'n' must be at least 2, got {n}")
    n_real = table.get("n_real")
    return Suite(
        name=name,
        dataset=_typed(table["dataset"], str, "dataset", where),
        resolution=resolution,
        models=models,
        metrics=parse_metric_list(_typed(table["metrics"], list, "metrics", where)),
        kimg=float(_typed(table.get("kimg", 10.0), (int, float), "kimg", where)),
        batch=_typed(table.get("batch", 32), int, "batch", where),
        snapshot_kimg=(float(_typed(table["snapshot_kimg"], (int, float), "snapshot_kimg", where))
                       if "snapshot_kimg" in table else None),
        n=n,
        n_real=_typed(n_real, int, "n_real", where) if n_real is not None else None,
        seeds=list(seeds) or [0],
        eval_seed=_typed(table.get("eval_seed", 0), int, "eval_seed", where),
        extractor=_typed(table.get("extractor", "shapes-net"), str, "extractor", where),
        device=_typed(table.get("device", "cpu"), str, "device", where),
        description=_typed(table.get("description", ""), str, "description", where),
        skip_unknown=_typed(table.get("skip_unknown", False), bool, "skip_unknown", where),
        metric_params={k: dict(v) for k, v in params.items()},
        tolerances=tolerances,
        k=_check_k(table["k"], where) if "k" in table else None,
        check_defaults=check or CheckSettings(),
        baseline=_typed(table["baseline"], str, "baseline", where) if "baseline" in table else None,
        source=source,
    )


def load_suites(path: str | os.PathLike) -> dict[str, Suite]:
    """Read every suite of a benchmarks TOML file, validating all keys."""
    path = Path(path)
    data = _read_toml(path)
    _check_keys(data, {"suites", "check"}, str(path))
    check = check_settings_from_table(data["check"], path) if "check" in data else CheckSettings(source=path)
    suites = _typed(data.get("suites", {}), dict, "suites", str(path))
    if not suites:
        raise ConfigError(f"benchmark file {path} defines no [suites.NAME] table")
    return {name: suite_from_table(name, _typed(table, dict, name, str(path)), source=path, check=check)
            for name, table in suites.items()}


def default_benchmarks_path() -> Path:
    """benchmarks.toml in the working directory, else the one beside the installed source tree."""
    here = Path(DEFAULT_BENCHMARKS)
    if here.is_file():
        return here
    return Path(__file__).resolve().parents[1] / DEFAULT_BENCHMARKS


def load_suite(name: str, path: str | os.PathLike | None = None) -> Suite:
    """The suite `name` from `path` (default: see default_benchmarks_path)."""
    path = Path(path) if path is not None else default_benchmarks_path()
    suites = load_suites(path)
    if name not in suites:
        raise ConfigError(f"unknown suite {name!r} in {path}; known: {', '.join(sorted(suites))}")
    return suites[name]
