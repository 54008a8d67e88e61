"""Regression checks: compare a results table with a baseline, metric by metric, in each metric's better direction.

A tolerance is the worsening a metric may show before the check fails: `fid=+0.5` lets FID rise by
0.5, `is=-0.2` lets IS fall by 0.2, `+5%` is relative to the baseline value, and `*=...` sets the
default for keys without their own (otherwise any worsening beyond float noise fails). Keys are looked
up as the result key (`kid_mean`), then its metric (`kid`), then `*`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ganbench.config import Tolerance
from ganbench.errors import ConfigError
from ganbench.checkpoint import atomic_write_bytes
from ganbench.results import normalise, read_results

KEY = ["run", "metric", "extractor"]
BASELINE_COLUMNS = ["run", "metric", "metric_group", "direction", "extractor", "kimg", "value", "n_samples", "seed"]
EXACT = Tolerance(0.0)
FLOAT_NOISE = 1e-9  # relative slack so a value that went through CSV text compares equal to itself


@dataclass
class CheckReport:
    """The per-(run, metric) comparison and its verdict."""

    table: pd.DataFrame  # run, metric, extractor, direction, baseline, current, delta, tolerance, status
    passed: bool

    def failures(self) -> pd.DataFrame:
        """Rows that make the check fail (regressed, missing, or unreadable values)."""
        return self.table[self.table["status"].isin(FAILING)]


FAILING = ("regressed", "missing", "not a number")


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One value per (run, metric, extractor): the mean over seeds at the run's last evaluated checkpoint."""
    df = normalise(df)
    if df.empty:
        return pd.DataFrame(columns=BASELINE_COLUMNS)
    last_kimg = df.groupby(KEY, sort=False)["kimg"].transform("max")
    at_last = df[(df["kimg"] == last_kimg) | last_kimg.isna()]
    agg = at_last.groupby(KEY, sort=False).agg(
        metric_group=("metric_group", "first"), direction=("direction", "first"), kimg=("kimg", "max"),
        value=("value", "mean"), n_samples=("n_samples", "max"), seed=("seed", "min")).reset_index()
    return agg[BASELINE_COLUMNS]


def read_baseline(path: str | os.PathLike) -> pd.DataFrame:
    """Read a baseline (written by `write_baseline`, or any results table) as one value per key."""
    return summarize(read_results(path))


def write_baseline(path: str | os.PathLike, results: pd.DataFrame) -> pd.DataFrame:
    """Summarise `results` and write it atomically as the new baseline; returns what was written."""
    base = summarize(results)
    data = base.to_csv(index=False).encode("utf-8")
    atomic_write_bytes(path, lambda f: f.write(data))
    return base


def tolerance_for(metric: str, group: str, tolerances: dict[str, Tolerance]) -> tuple[str, Tolerance]:
    """The tolerance that applies to result key `metric` of metric `group`, and the name it came from."""
    for name in (metric, group, "*"):
        if name and name in tolerances:
            return name, tolerances[name]
    return "", EXACT


def _validate_signs(summary: pd.DataFrame, tolerances: dict[str, Tolerance]) -> None:
    for row in summary.itertuples(index=False):
        name, tol = tolerance_for(row.metric, row.metric_group, tolerances)
        if name in ("", "*") or tol.sign == 0 or row.direction not in ("lower", "higher"):
            continue
        worse = 1 if row.direction == "lower" else -1
        if tol.sign != worse:
            good = f"{name}={'+' if worse > 0 else '-'}{abs(tol.amount):g}{'%' if tol.relative else ''}"
            raise ConfigError(f"tolerance {name}={tol} points the wrong way: {row.metric} is {row.direction}-is-better, "
                              f"so it worsens by going {'up' if worse > 0 else 'down'} (write {good})")


def _status(direction: str, base: float, cur: float, tol: Tolerance) -> tuple[float, str]:
    delta = cur - base
    if direction not in ("lower", "higher"):
        return delta, "unchecked"
    if math.isnan(cur) and not math.isnan(base):
        return delta, "not a number"
    if math.isnan(base):
        return delta, "new"
    worsening = delta if direction == "lower" else -delta
    slack = tol.allowed(base) + FLOAT_NOISE * max(1.0, abs(base))
    if worsening > slack:
        return delta, "regressed"
    return delta, "improved" if worsening < -FLOAT_NOISE * max(1.0, abs(base)) else "ok"


def compare(results: pd.DataFrame, baseline: pd.DataFrame, tolerances: dict[str, Tolerance]) -> CheckReport:
    """Compare current results with a baseline; fail on any regression or on a baseline key with no result."""
    cur = summarize(results)
    base = summarize(baseline)
    _validate_signs(pd.concat([cur, base], ignore_index=True), tolerances)
    merged = cur.merge(base, on=KEY, how="outer", suffixes=("", "_base"), indicator=True)
    rows = []
    for r in merged.to_dict("records"):
        direction = r["direction"] if r["_merge"] != "right_only" else r["direction_base"]
        group = r["metric_group"] if r["_merge"] != "right_only" else r["metric_group_base"]
        direction = direction if isinstance(direction, str) else ""
        name, tol = tolerance_for(r["metric"], group if isinstance(group, str) else "", tolerances)
        if r["_merge"] == "right_only":
            delta, status = float("nan"), "missing"
        elif r["_merge"] == "left_only":
            delta, status = float("nan"), "new"
        else:
            delta, status = _status(direction, float(r["value_base"]), float(r["value"]), tol)
        rows.append({"run": r["run"], "metric": r["metric"], "extractor": r["extractor"], "direction": direction,
                     "baseline": r.get("value_base"), "current": r.get("value") if r["_merge"] != "right_only" else None,
                     "delta": delta, "tolerance": f"{tol}" if name else "exact", "status": status})
    table = pd.DataFrame(rows, columns=["run", "metric", "extractor", "direction", "baseline", "current", "delta",
                                        "tolerance", "status"])
    table = table.sort_values(["run", "metric", "extractor"], kind="stable", ignore_index=True)
    return CheckReport(table=table, passed=not table["status"].isin(FAILING).any())


def check_files(results: list[str | os.PathLike], baseline: str | os.PathLike,
                tolerances: dict[str, Tolerance]) -> CheckReport:
    """`compare` on files; a missing baseline is a ConfigError suggesting --update-baseline."""
    from ganbench.results import read_many

    if not Path(baseline).is_file():
        raise ConfigError(f"baseline {baseline} does not exist (create it with --update-baseline)")
    return compare(read_many(results), read_baseline(baseline), tolerances)
