"""Regression checks: compare results with a baseline, group by group, in each metric's better direction.

A group is one comparable identity (`ganbench.results.COMPARABLE`: run, snapshot kimg, result key and every
setting that changes the number); its seeds are repeats, summarised as mean, std and count. A baseline group
is compared only with the current group of the same identity; one with no partner is "not comparable" and
fails unless allowed. The direction (lower or higher is better) comes from the metric registry.

A group regresses when its mean is worse than the baseline's by more than the margin
max(absolute tolerance, relative tolerance x |baseline|, k x combined std), where the combined std is
sqrt(s_b^2/n_b + s_c^2/n_c) of the two means (a side with one seed borrows the other side's s).
Tolerance keys are looked up as the result key (`kid_mean`), then its metric (`kid`), then `*`.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ganbench.checkpoint import atomic_write_bytes
from ganbench.config import DEFAULT_K, Tolerance
from ganbench.errors import ConfigError
from ganbench.results import (COMPARABLE, DIVERGED, NUMERIC, SETTINGS, read_csv_text, canonical, check_directions,
                              csv_bytes, normalise, parse_numbers, read_results, repeat_groups,
                              with_registry_directions)

BASELINE_COLUMNS = [*COMPARABLE, "direction", "mean", "std", "count", "seeds", "flag", "checkpoint"]
TABLE_COLUMNS = ["run", "kimg", "metric", "settings", "direction", "baseline", "baseline_std", "baseline_count",
                 "current", "current_std", "current_count", "delta", "margin", "margin_from", "status", "note"]
FLOAT_NOISE = 1e-9  # relative slack so a value that went through CSV text compares equal to itself
FAILING = ("regressed", "diverged", "not a number", "not comparable")
JUDGED = ("ok", "improved", "regressed")  # verdicts that used a margin


@dataclass
class CheckReport:
    """The per-group comparison and its verdict."""

    table: pd.DataFrame  # TABLE_COLUMNS
    passed: bool
    allow_missing: bool = False

    def failures(self) -> pd.DataFrame:
        """Rows that make the check fail (regressed, diverged, unreadable, or not comparable unless allowed)."""
        failing = [s for s in FAILING if not (self.allow_missing and s == "not comparable")]
        return self.table[self.table["status"].isin(failing)]

    @property
    def judged(self) -> int:
        """Groups that were measured against a margin (ok, improved, regressed). A check that judged none has
        verified nothing (every group new, informational or allowed to be missing) and does not pass."""
        return int(self.table["status"].isin(JUDGED).sum())


# ---- groups and baselines ----------------------------------------------------------------------------------------

def _last_snapshot(groups: pd.DataFrame) -> pd.DataFrame:
    """Groups at the last evaluated kimg of each (run, settings)."""
    if groups.empty:
        return groups
    keys = pd.Series(canonical(groups, ["run", *SETTINGS]), index=groups.index)
    last = groups["kimg"].groupby(keys).transform("max")
    return groups[(groups["kimg"] == last) | last.isna()].reset_index(drop=True)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """The baseline of a results table: each comparable group at its run's last evaluated kimg (mean, std, count)."""
    return _last_snapshot(repeat_groups(df))[BASELINE_COLUMNS]


def _not_a_folder(path: Path, what: str) -> None:
    if path.is_dir():
        raise ConfigError(f"{what} {path} is a folder; give a CSV file name (e.g. {path / 'baseline.csv'})")


def read_baseline(path: str | os.PathLike) -> pd.DataFrame:
    """A baseline written by `write_baseline` (or any results table, summarised) as groups; no rows is an error."""
    path = Path(path)
    _not_a_folder(path, "baseline")
    if not path.is_file():
        raise ConfigError(f"baseline {path} does not exist (create it with --update-baseline)")
    header, rows = read_csv_text(path, "baseline", required=(), empty="; recreate it with --update-baseline")
    raw = pd.DataFrame(rows, columns=header, dtype=str)
    if raw.empty:
        raise ConfigError(f"baseline {path} has no rows (only a header); recreate it with --update-baseline")
    if "mean" not in raw.columns and "value" not in raw.columns:
        raise ConfigError(f"baseline {path} has neither 'mean' (a baseline) nor 'value' (a results table)")
    required = [*COMPARABLE, *(["mean", "std", "count"] if "mean" in raw.columns else [])]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise ConfigError(f"baseline {path} lacks column(s) {', '.join(missing)}: it does not record the settings its "
                          "numbers were made with (an older ganbench wrote it?); recreate it with --update-baseline")
    if "mean" not in raw.columns:
        return summarize(read_results(path))
    base = parse_numbers(raw, [*NUMERIC, "mean", "std"], lambda i: f"baseline {path} row {i + 2}")
    check_directions(base, path, "baseline")
    base["count"] = pd.to_numeric(raw["count"], errors="coerce").astype("float64")
    bad = base["count"].isna() | (base["count"] < 1)
    if bad.any():
        raise ConfigError(f"baseline {path} row {int(bad.idxmax()) + 2}: count {raw['count'][bad].iloc[0]!r} "
                          "is not a positive number")
    for col in ("seeds", "flag", "checkpoint"):
        if col not in base.columns:
            base[col] = ""
    return with_registry_directions(base)[BASELINE_COLUMNS]


def write_baseline(path: str | os.PathLike, results: pd.DataFrame) -> pd.DataFrame:
    """Summarise `results` and write it atomically as the new baseline; returns what was written."""
    path = Path(path)
    _not_a_folder(path, "baseline")
    if normalise(results).empty:
        raise ConfigError("the results have no rows to make a baseline from")
    base = summarize(results)
    _refuse_non_finite(base)
    data = csv_bytes(base)
    try:
        atomic_write_bytes(path, lambda f: f.write(data))
    except OSError as exc:
        raise ConfigError(f"cannot write baseline {path} ({exc.strerror or type(exc).__name__})") from None
    return base


def unfit_for_baseline(base: pd.DataFrame) -> str:
    """Why a summary cannot be a baseline ('' when it can): a group with a direction must hold a finite number; a
    NaN, infinite or diverged one could never be compared with, so every later check would fail on it (or, worse,
    let anything pass)."""
    bad = base[base["direction"].isin(["lower", "higher"])
               & ~base["mean"].map(lambda v: math.isfinite(float(v)))]
    if bad.empty:
        return ""
    b = bad.iloc[0]
    what = "diverged (NaN)" if b["flag"] == DIVERGED else f"is {float(b['mean'])!r}"
    kimg = "" if pd.isna(b["kimg"]) else f" at kimg {b['kimg']:g}"
    return (f"{b['run']} {b['metric']}{kimg} {what}{f' (and {len(bad) - 1} more group(s))' if len(bad) > 1 else ''}; "
            "a baseline holds finite numbers only")


def _refuse_non_finite(base: pd.DataFrame) -> None:
    why = unfit_for_baseline(base)
    if why:
        raise ConfigError(f"cannot make a baseline: {why} (rerun that evaluation, or leave that run out)")


def refuse_same_file(baseline: str | os.PathLike, results: list[str | os.PathLike]) -> None:
    """The baseline may not be one of the results files: `--update-baseline` would replace the results with
    their summary, and a check would compare the file with itself."""
    base = Path(baseline)
    for path in results:
        same = (base.exists() and Path(path).exists() and os.path.samefile(base, path)) \
            or base.resolve() == Path(path).resolve()
        if same:
            raise ConfigError(f"baseline {baseline} is the results file {path}; give the baseline its own file "
                              "(e.g. baseline.csv)")


# ---- tolerances ----------------------------------------------------------------------------------------------------

def tolerance_names() -> list[str]:
    """Every valid tolerance key: `*`, registered metric names and their result keys."""
    from ganbench.metrics import METRICS, list_metrics

    names = set(list_metrics())
    for name in list_metrics():
        names.update(METRICS.get(name).outputs)
    return ["*", *sorted(names)]


TOLERANCE_FORMS = ("accepted: NAME=+0.5 or NAME=-0.2 (absolute, signed the way NAME worsens: + when lower is better, "
                   "- when higher is better), NAME=0.5 (unsigned), NAME=+5% (relative to the baseline), NAME twice "
                   "for both parts, *=0.5 or *=1% (the default for every other key, unsigned); NAME is a metric or "
                   "result key")
_AMOUNT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?%?")  # what TOLERANCE_FORMS allows


def _unknown_key(key: str, valid: list[str]) -> str:
    """Why `key` is no tolerance key, with the closest valid one when one is close (also in another case)."""
    from ganbench.registry import unknown_name

    return unknown_name("tolerance key", key, valid, label="valid")


def validate_tolerance_names(tolerances: dict[str, Tolerance], where: str = "--tolerance") -> None:
    """An unknown tolerance key is a ConfigError listing the valid ones (and the closest, when one is close)."""
    valid = tolerance_names()
    for key in tolerances:
        if key not in valid:
            raise ConfigError(f"{where}: {_unknown_key(key, valid)}")


def _worse_directions(key: str) -> set[str]:
    """The better directions ('lower', 'higher') of what tolerance key `key` applies to: a metric's result keys,
    or every registered metric's result key of that name; informational keys add none."""
    from ganbench.metrics import METRICS, list_metrics

    if key in METRICS:
        return {d for d in METRICS.get(key).outputs.values() if d}
    return {METRICS.get(n).outputs[key] for n in list_metrics() if METRICS.get(n).outputs.get(key)}


def _sign_problem(key: str, tol: Tolerance) -> str | None:
    """Why a signed tolerance cannot be meant as written: `*` is unsigned, and a sign must point the worse way."""
    if not tol.sign:
        return None
    bare = str(Tolerance(abs=tol.abs, rel=tol.rel))
    if key == "*":
        return (f"the default '*' takes no sign, as it covers lower- and higher-is-better keys alike and always "
                f"means the worse way (write *={bare}); {TOLERANCE_FORMS}")
    directions = _worse_directions(key)
    if len(directions) > 1:
        return (f"{key} has lower- and higher-is-better result keys, so a sign cannot point the worse way for all "
                f"(write {key}={bare}, or give each result key its own)")
    if len(directions) == 1:
        direction = directions.pop()
        worse = 1 if direction == "lower" else -1
        if tol.sign != worse:
            good = str(Tolerance(abs=tol.abs, rel=tol.rel, sign=worse))
            return (f"points the wrong way: {key} is {direction}-is-better, so it worsens by going "
                    f"{'up' if worse > 0 else 'down'} (write {key}={good})")
    return None


def validate_tolerances(tolerances: dict[str, Tolerance], where: str) -> None:
    """Known keys, an unsigned `*`, and signs that point each key's worse way (from the metric registry, so before
    any result is read); errors name `where` (e.g. "benchmarks.toml [check]") and the tolerance."""
    validate_tolerance_names(tolerances, where)
    for key, tol in tolerances.items():
        problem = _sign_problem(key, tol)
        if problem:
            raise ConfigError(f"{where} tolerance '{key}={tol}': {problem}")


def _spec_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return value.strip() if isinstance(value, str) else str(value)


def parse_tolerance_spec(key: str, value: object, label: str) -> Tolerance:
    """One tolerance, `key` = `value` (a string, or a number from TOML), held to TOLERANCE_FORMS; `label` names it
    in errors (e.g. "--tolerance 'fid=+1'"). The key must be known and a sign must point its worse way."""
    from ganbench.config import parse_tolerance

    text = _spec_text(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not _AMOUNT.fullmatch(text):
        what = "no amount" if text == "" else f"{text!r} is not an amount"
        raise ConfigError(f"{label}: {what}; {TOLERANCE_FORMS}")
    if not math.isfinite(float(text.rstrip("%"))):
        raise ConfigError(f"{label}: {text!r} is not a finite amount; {TOLERANCE_FORMS}")
    valid = tolerance_names()
    if key not in valid:
        raise ConfigError(f"{label}: {_unknown_key(key, valid)}")
    tol = parse_tolerance(key, text)
    problem = _sign_problem(key, tol)
    if problem:
        raise ConfigError(f"{label}: {problem}")
    return tol


def _merge(out: dict[str, Tolerance], key: str, tol: Tolerance, label: str) -> None:
    try:
        out[key] = out[key].merged(tol, key) if key in out else tol
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def parse_tolerance_option(text: str | None, where: str = "--tolerance") -> dict[str, Tolerance]:
    """`--tolerance fid=+0.5,is=-0.2,kid=+5%,*=1%` held to TOLERANCE_FORMS: anything else (an empty item, a
    missing name or amount, nan, 1_0, a signed `*`, a sign pointing the better way, an unknown key) is a one-line
    ConfigError naming the item. A key given twice combines an absolute and a relative part."""
    out: dict[str, Tolerance] = {}
    if not (text or "").strip():
        return out
    for item in text.split(","):
        spec = item.strip()
        if not spec:
            raise ConfigError(f"{where} {text!r}: an empty tolerance between commas; {TOLERANCE_FORMS}")
        key, sep, value = spec.partition("=")
        key = key.strip()
        label = f"{where} '{spec}'"
        if not sep or not key:
            raise ConfigError(f"{label}: not NAME=AMOUNT; {TOLERANCE_FORMS}")
        _merge(out, key, parse_tolerance_spec(key, value, label), label)
    return out


def _table_tolerances(table: object, where: str) -> None:
    """Hold each raw entry of a TOML tolerances table to TOLERANCE_FORMS (wrong types are left to the loader)."""
    if not isinstance(table, dict):
        return
    for key, value in table.items():
        out: dict[str, Tolerance] = {}
        for part in value if isinstance(value, list) else [value]:
            label = f"{where} tolerance '{key}={_spec_text(part)}'"
            _merge(out, str(key), parse_tolerance_spec(str(key), part, label), label)


def validate_tolerance_file(path: str | os.PathLike, suite: str | None = None) -> None:
    """The tolerances of the [check] table of a benchmarks file (and of [suites.SUITE]) as written there, so that
    an error names the file, the table and the entry, e.g. "benchmarks.toml [check] tolerance 'fid=-1': ...".
    A file that cannot be read or parsed is left to the loader, which says so."""
    import tomllib

    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return
    check = data.get("check")
    if isinstance(check, dict):
        _table_tolerances(check.get("tolerances"), f"{path} [check]")
    suites = data.get("suites")
    table = suites.get(suite) if suite is not None and isinstance(suites, dict) else None
    if isinstance(table, dict):
        _table_tolerances(table.get("tolerances"), f"{path} [suites.{suite}]")


def tolerance_for(metric: str, group: str, tolerances: dict[str, Tolerance]) -> tuple[str, Tolerance]:
    """The tolerance that applies to result key `metric` of metric `group`, and the name it came from."""
    for name in (metric, group, "*"):
        if name and name in tolerances:
            return name, tolerances[name]
    return "", Tolerance()


def _validate_signs(groups: pd.DataFrame, tolerances: dict[str, Tolerance]) -> None:
    for metric, group, direction in sorted(set(zip(groups["metric"], groups["metric_group"], groups["direction"]))):
        name, tol = tolerance_for(metric, group, tolerances)
        if name in ("", "*") or tol.sign == 0 or direction not in ("lower", "higher"):
            continue
        worse = 1 if direction == "lower" else -1
        if tol.sign != worse:
            good = str(Tolerance(abs=tol.abs, rel=tol.rel, sign=worse))
            raise ConfigError(f"tolerance {name}={tol} points the wrong way: {metric} is {direction}-is-better, "
                              f"so it worsens by going {'up' if worse > 0 else 'down'} (write {name}={good})")


def combined_std(base_std: float, base_n: float, cur_std: float, cur_n: float) -> float:
    """Std of the difference of two means over seeds; a side with one seed borrows the other side's spread."""
    sb = base_std if base_n >= 2 and math.isfinite(base_std) else None
    sc = cur_std if cur_n >= 2 and math.isfinite(cur_std) else None
    if sb is None and sc is None:
        return 0.0
    sb = sc if sb is None else sb
    sc = sb if sc is None else sc
    return math.sqrt(sb * sb / max(base_n, 1) + sc * sc / max(cur_n, 1))


def margin(base: pd.Series, cur: pd.Series, tolerances: dict[str, Tolerance], k: float) -> tuple[float, str]:
    """The allowed worsening of one group and what set it: max(tolerance, k x combined std)."""
    name, tol = tolerance_for(str(base["metric"]), str(base["metric_group"]), tolerances)
    by_tol = tol.allowed(float(base["mean"]))
    by_noise = k * combined_std(float(base["std"]), float(base["count"]), float(cur["std"]), float(cur["count"]))
    if by_noise > by_tol:
        return by_noise, f"{k:g}\u03c3"
    return by_tol, f"{name}={tol}" if name else "exact"


# ---- the comparison ----------------------------------------------------------------------------------------------

def settings_text(row: pd.Series) -> str:
    """The settings of a group in a few words: sample count and extractor."""
    n = "" if pd.isna(row["n_samples"]) else f"n={int(row['n_samples'])}"
    return ", ".join(p for p in (n, str(row["extractor"])) if p)


def _tell_apart(rows: list[dict], sources: list[pd.Series]) -> None:
    """Groups of one run, snapshot and metric whose settings read the same (n and extractor) get the settings that
    differ appended, e.g. covariance="unbiased", so no two lines of the table look alike."""
    from ganbench.report import distinguishing_settings

    same: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        same.setdefault((row["run"], str(row["kimg"]), row["metric"], row["settings"]), []).append(i)
    for idx in same.values():
        keys = {tuple(str(sources[i][c]) for c in SETTINGS) for i in idx}
        if len(keys) < 2:
            continue
        for i, extra in zip(idx, distinguishing_settings([sources[i] for i in idx])):
            rows[i]["settings"] += "".join(f", {e}" for e in extra)


def _difference(base: pd.Series, others: pd.DataFrame) -> str:
    """Why a baseline group has no partner: the settings in which the closest current group differs."""
    if others.empty:
        return "no results for this run, metric and snapshot"
    cols = ["kimg", *SETTINGS]
    mine = canonical(base.to_frame().T, cols)[0]
    best: list[str] = []
    for theirs in canonical(others, cols):
        diff = [f"{c} {t or '(none)'} here, {m or '(none)'} in the baseline" for c, m, t in zip(cols, mine, theirs)
                if m != t]
        if not best or len(diff) < len(best):
            best = diff
    return "results differ: " + "; ".join(best)


def _unchecked_note(group: pd.Series) -> str:
    """Why a group has no verdict: the registry knows the key and gives it no better direction, or does not know it
    (a key from another tool or a renamed metric; a direction column in the file is never trusted)."""
    from ganbench.results import registry_direction

    if registry_direction(str(group["metric"]), str(group["metric_group"])) is None:
        return f"{group['metric']} is not in the metric registry"
    return "informational (no better direction)"


def _verdict(direction: str, base: float, cur: float, allowed: float, diverged: bool) -> str:
    if direction not in ("lower", "higher"):
        return "unchecked"
    if diverged:
        return "diverged"
    if not (math.isfinite(cur) and math.isfinite(base)):
        return "not a number"
    worsening = (cur - base) if direction == "lower" else (base - cur)
    noise = FLOAT_NOISE * max(1.0, abs(base))
    if worsening > allowed + noise:
        return "regressed"
    return "improved" if worsening < -(allowed + noise) else "ok"   # within the margin either way: ok


def compare(results: pd.DataFrame, baseline: pd.DataFrame, tolerances: dict[str, Tolerance], k: float = DEFAULT_K,
            allow_missing: bool = False) -> CheckReport:
    """Compare current results with a baseline group by group (see the module docstring for the rule).

    `baseline` is what `read_baseline` returns, or a results table (summarised here).
    """
    cur = repeat_groups(results)
    base = baseline if "mean" in baseline.columns and "value" not in baseline.columns else summarize(baseline)
    base = with_registry_directions(base)
    _validate_signs(pd.concat([cur[["metric", "metric_group", "direction"]],
                               base[["metric", "metric_group", "direction"]]]), tolerances)
    cur_index = {key: i for i, key in enumerate(canonical(cur, COMPARABLE))}
    matched: set[int] = set()
    rows, sources = [], []
    for key, (_, b) in zip(canonical(base, COMPARABLE), base.iterrows()):
        sources.append(b)
        direction = b["direction"]
        row = {"run": b["run"], "kimg": b["kimg"], "metric": b["metric"], "settings": settings_text(b),
               "direction": direction, "baseline": b["mean"], "baseline_std": b["std"], "baseline_count": b["count"],
               "current": math.nan, "current_std": math.nan, "current_count": 0, "delta": math.nan,
               "margin": math.nan, "margin_from": "", "note": ""}
        if key not in cur_index:
            same = cur[(cur["run"] == b["run"]) & (cur["metric"] == b["metric"])]
            checked = direction in ("lower", "higher")
            rows.append({**row, "status": "not comparable" if checked else "unchecked",
                         "note": _difference(b, same) + ("" if checked else f" ({_unchecked_note(b)})")})
            continue
        i = cur_index[key]
        matched.add(i)
        c = cur.iloc[i]
        allowed, why = margin(b, c, tolerances, k)
        status = _verdict(direction, float(b["mean"]), float(c["mean"]), allowed, c["flag"] == DIVERGED)
        note = ""
        if status == "diverged":
            note = "the generator diverged (NaN)"
        elif status == "not a number":
            side, value = ("current", float(c["mean"])) if not math.isfinite(float(c["mean"])) else \
                ("baseline", float(b["mean"]))
            note = f"the {side} value is {value!r}" + (" (rewrite the baseline)" if side == "baseline" else "")
            if side == "baseline" and b["flag"] == DIVERGED:
                note = "the baseline's generator diverged (NaN); rewrite the baseline"
        elif status == "unchecked":
            note = _unchecked_note(b)
        rows.append({**row, "current": c["mean"], "current_std": c["std"], "current_count": c["count"],
                     "delta": c["mean"] - b["mean"], "margin": allowed if status in JUDGED else math.nan,
                     "margin_from": why if status in JUDGED else "", "status": status, "note": note})
    unmatched = cur.assign(_i=range(len(cur)))
    latest = _last_snapshot(unmatched)
    for _, c in latest[~latest["_i"].isin(matched)].iterrows():
        sources.append(c)
        rows.append({"run": c["run"], "kimg": c["kimg"], "metric": c["metric"], "settings": settings_text(c),
                     "direction": c["direction"], "baseline": math.nan, "baseline_std": math.nan, "baseline_count": 0,
                     "current": c["mean"], "current_std": c["std"], "current_count": c["count"], "delta": math.nan,
                     "margin": math.nan, "margin_from": "", "status": "diverged" if c["flag"] == DIVERGED else "new",
                     "note": "not in the baseline"})
    _tell_apart(rows, sources)
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    table = table.sort_values(["run", "metric", "settings", "kimg"], kind="stable", ignore_index=True)
    report = CheckReport(table=table, passed=True, allow_missing=allow_missing)
    report.passed = report.failures().empty and report.judged > 0
    return report


def check_files(results: list[str | os.PathLike], baseline: str | os.PathLike, tolerances: dict[str, Tolerance],
                k: float = DEFAULT_K, allow_missing: bool = False) -> CheckReport:
    """`compare` on files: the baseline is read first, so a missing or empty one is reported before any results."""
    from ganbench.results import read_many

    base = read_baseline(baseline)
    current = read_many(results)
    if current.empty:
        raise ConfigError(f"the results ({', '.join(str(p) for p in results)}) have no rows")
    return compare(current, base, tolerances, k=k, allow_missing=allow_missing)
