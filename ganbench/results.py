"""The long-format results table: one row per (run, checkpoint, metric key), read and appended safely.

Every row says how its number was made (extractor and its weights hash, resize mode, sample counts,
seed, metric parameters, real data) so numbers from different settings are never mixed up by a report
or a check: `SETTINGS` + (run, kimg) is the one definition of which rows are repeats of each other.

Concurrent writers, also on different machines sharing a file system where OS locks are unreliable,
never touch each other's rows: each process appends to its own shard file in `<table>.shards/`, then
refreshes the table itself as a merged view. Reading merges the table and every shard and keeps each
computation once (the newest), so no row is lost or duplicated whatever the interleaving.
"""

from __future__ import annotations

import io
import math
import os
import re
import socket
import threading
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from ganbench.checkpoint import atomic_write_bytes
from ganbench.errors import ConfigError

COLUMNS = ["run", "checkpoint", "kimg", "metric", "value", "flag", "metric_group", "direction", "n_samples", "n_real",
           "extractor", "extractor_sha256", "resize_mode", "dataset", "seed", "params", "wall_s",
           "ganbench_version", "timestamp", "run_dir"]
REQUIRED = ["run", "kimg", "metric", "value"]
NUMERIC = ["kimg", "value", "n_samples", "n_real", "seed", "wall_s"]
INTEGER = ["n_samples", "n_real", "seed"]          # written without a decimal point (kimg too when whole)
DIVERGED = "diverged"                               # `flag` of a NaN row whose generator diverged

# Everything besides the model and its snapshot that changes a number. Rows of one (run, kimg) that agree on
# all of these are repeats (they differ by `seed` only) and may be averaged; rows that differ are never
# averaged or compared. Resize mode and covariance are part of it where recorded (the latter in `params`).
SETTINGS = ["metric", "metric_group", "n_samples", "n_real", "extractor", "extractor_sha256", "resize_mode",
            "dataset", "params"]
COMPARABLE = ["run", "kimg", *SETTINGS]
# One computation: a comparable group's single repeat. Reading keeps one row per ROW_IDENTITY.
ROW_IDENTITY = [*COMPARABLE, "checkpoint", "seed"]
# Rows sharing these come from one computation; `ganbench eval` skips a computation whose rows exist.
IDENTITY = ["run", "checkpoint", "metric_group", "extractor", "n_samples", "seed", "params"]
SHARDS_SUFFIX = ".shards"


def empty_table() -> pd.DataFrame:
    """A results table with every column and no rows."""
    return normalise(pd.DataFrame(columns=COLUMNS))


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Give a table every known column, numbers as floats and everything else as strings ('' for missing)."""
    df = df.copy()
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = "" if col not in NUMERIC else float("nan")
    for col in df.columns:
        if col in NUMERIC:
            if df[col].dtype != "float64":
                df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        elif df[col].dtype != object or not all(type(v) is str for v in df[col]):
            df[col] = pd.Series([_text(v) for v in df[col]], index=df.index, dtype=object)
    ordered = COLUMNS + [c for c in df.columns if c not in COLUMNS]
    return df[ordered]


def _text(value: object) -> str:
    """A cell of a text column: missing values (None, NaN, pd.NA) become ''."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def shard_dir(path: str | os.PathLike) -> Path:
    """The folder of per-writer shard files that belong to the table at `path`."""
    path = Path(path)
    return path.with_name(path.name + SHARDS_SUFFIX)


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """One CSV file of the table as text columns; every way it can be unreadable is a ConfigError naming it."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"{what} {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{what} {path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path} ({exc.strerror or type(exc).__name__})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(f"{what} {path} lacks column(s) {', '.join(missing)}")
    for col in ("kimg", "value"):
        bad = pd.to_numeric(df[col].replace("", "nan"), errors="coerce").isna() & ~df[col].isin(["", "nan", "NaN"])
        if bad.any():
            raise ConfigError(f"{what} {path} row {int(bad.idxmax()) + 2}: {col} {df[col][bad].iloc[0]!r} "
                              "is not a number")
    return df


def _sources(path: Path) -> list[Path]:
    """The table file (when present) and its shards, in a fixed order."""
    shards = shard_dir(path)
    found = sorted(shards.glob("*.csv")) if shards.is_dir() else []
    return ([path] if path.is_file() else []) + found


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read one results table (the file merged with its shards, each computation once); errors name the file."""
    path = Path(path)
    if path.is_dir() and not path.name.endswith(SHARDS_SUFFIX):
        raise ConfigError(f"results file {path} is a folder; give the CSV inside it (e.g. {path / 'results.csv'})")
    sources = _sources(path)
    if not sources:
        raise ConfigError(f"results file {path} does not exist")
    frames = [_read_csv(p, "results file") for p in sources]
    table = dedupe(normalise(pd.concat(frames, ignore_index=True)) if len(frames) > 1 else normalise(frames[0]))
    check_directions(table, path)
    return table


def read_many(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate several results tables, keeping each computation once."""
    if not paths:
        raise ConfigError("no results files given")
    return dedupe(pd.concat([read_results(p) for p in paths], ignore_index=True))


def canonical(df: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, ...]]:
    """Each row's `columns` of a normalised table as a tuple of canonical strings (128, 128.0 and '128' alike)."""
    cols = [[_number_text(v) for v in df[c]] if c in NUMERIC else df[c].astype(str).tolist() for c in columns]
    return list(zip(*cols)) if cols else [() for _ in range(len(df))]


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per computation (ROW_IDENTITY): the newest by timestamp, later sources winning ties."""
    df = df.reset_index(drop=True)
    if len(df) < 2:
        return df
    winner: dict[tuple[str, ...], tuple[str, int]] = {}
    for i, (key, stamp) in enumerate(zip(canonical(df, ROW_IDENTITY), df["timestamp"].astype(str))):
        if key not in winner or stamp >= winner[key][0]:
            winner[key] = (stamp, i)
    keep = sorted(i for _, i in winner.values())
    return df if len(keep) == len(df) else df.iloc[keep].reset_index(drop=True)


def _number_text(value: object) -> str:
    """A number as CSV text: integers without a decimal point, other floats exactly (repr), NaN as ''."""
    if value is None or value == "":
        return ""
    x = float(value)
    if math.isnan(x):
        return ""
    if math.isfinite(x) and x == int(x) and abs(x) < 2**53:
        return str(int(x))
    return repr(x)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """A table as CSV text: integer columns (and whole kimg) without a decimal point, other floats exactly."""
    out = df.copy()
    for col in out.columns:
        if col in INTEGER or col in ("kimg", "count"):
            out[col] = [_number_text(v) for v in out[col]]
        elif out[col].dtype == "float64":
            out[col] = ["" if math.isnan(v) else repr(float(v)) for v in out[col]]
    buf = io.StringIO()
    out.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")


def write_results(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write a whole table file atomically (temp file + rename), so readers never see half a file.

    Only the file itself is replaced; rows in its shards (see `append_rows`) still belong to the table.
    """
    data = csv_bytes(normalise(df))
    atomic_write_bytes(path, lambda f: f.write(data))


_writer_lock = threading.Lock()
_writer: tuple[int, str] | None = None  # (pid, shard name): a forked child gets a shard of its own


def writer_name() -> str:
    """This process's shard file name: host, pid and a random token (PIDs repeat across machines and containers)."""
    global _writer
    with _writer_lock:
        if _writer is None or _writer[0] != os.getpid():
            host = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname() or "host")[:64]
            _writer = (os.getpid(), f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}.csv")
        return _writer[1]


def append_rows(path: str | os.PathLike, rows: Iterable[dict]) -> pd.DataFrame:
    """Append rows to the table at `path` (created if absent); returns the whole table after the append.

    The rows go into this process's own shard (rewritten atomically; no other process writes it), then
    the table file is refreshed as the merge of itself and every shard. Two writers refreshing at once
    may each leave out the other's newest rows from the file, but never from the table `read_results`
    returns: the shards hold every row until someone deletes them.
    """
    path = Path(path)
    new = normalise(pd.DataFrame(list(rows)))
    shard = shard_dir(path) / writer_name()
    with _writer_lock:
        old = normalise(_read_csv(shard, "results shard")) if shard.is_file() else empty_table()
        atomic_write_bytes(shard, lambda f: f.write(csv_bytes(pd.concat([old, new], ignore_index=True))))
    table = read_results(path)
    write_results(path, table)
    return table


def done_keys(df: pd.DataFrame) -> set[tuple]:
    """Identities of the computations already recorded in `df` (see IDENTITY)."""
    if df.empty:
        return set()
    sub = normalise(df)[IDENTITY]
    return {identity_key(row) for row in sub.to_dict("records")}


def identity_key(row: dict) -> tuple:
    """The identity of one computation as a hashable tuple, with numbers in one canonical form."""
    out = []
    for col in IDENTITY:
        value = row.get(col, "")
        if col in NUMERIC:
            value = float(value) if value not in ("", None) else float("nan")
            value = repr(value)
        out.append(str(value))
    return tuple(out)


# ---- directions and comparable groups --------------------------------------------------------------------------

def registry_direction(metric: str, group: str = "") -> str | None:
    """'lower', 'higher' or '' (informational) for a result key, from the metric registry; None when unknown.

    Looked up under the row's registered metric name first, else under any metric that has this result key.
    """
    from ganbench.metrics import METRICS, list_metrics

    names = list_metrics()
    if group in METRICS:
        outputs = METRICS.get(group).outputs
        if metric in outputs:
            return outputs[metric] or ""
    found = {METRICS.get(name).outputs[metric] or "" for name in names if metric in METRICS.get(name).outputs}
    return found.pop() if len(found) == 1 else None


def with_registry_directions(df: pd.DataFrame) -> pd.DataFrame:
    """The table with `direction` replaced by the registry's ('' where the registry does not know the key)."""
    df = df.copy()
    pairs = {(m, g) for m, g in zip(df["metric"], df["metric_group"])}
    known = {pair: registry_direction(*pair) for pair in pairs}
    df["direction"] = [known[(m, g)] or "" for m, g in zip(df["metric"], df["metric_group"])]
    return df


def check_directions(df: pd.DataFrame, path: str | os.PathLike, what: str = "results file") -> None:
    """A file whose `direction` disagrees with the metric registry is a ConfigError: the registry decides."""
    if "direction" not in df.columns or "metric_group" not in df.columns or not (df["direction"] != "").any():
        return
    for metric, group, stated in sorted(set(zip(df["metric"], df["metric_group"], df["direction"]))):
        if not stated:
            continue
        truth = registry_direction(metric, group)
        if truth is not None and truth != stated:
            says = f"{truth} is better" if truth else "informational (neither way is better)"
            raise ConfigError(f"{what} {path}: direction {stated!r} for {metric} disagrees with the metric registry "
                              f"({metric} is {says}); directions come from the registry, so fix or empty that column")


def repeat_groups(df: pd.DataFrame) -> pd.DataFrame:
    """One row per comparable group (COMPARABLE): mean, std (ddof 1) and count of its seeds, never across settings.

    `flag` is 'diverged' when any repeat diverged (its mean is then NaN); `direction` comes from the registry;
    `checkpoint` and `seeds` say where the numbers come from.
    """
    df = with_registry_directions(normalise(df))
    out_cols = [*COMPARABLE, "direction", "mean", "std", "count", "seeds", "flag", "checkpoint"]
    if df.empty:
        return pd.DataFrame(columns=out_cols)
    df = df.assign(_key=canonical(df, COMPARABLE))
    rows = []
    for _, g in df.groupby("_key", sort=False):
        values = g["value"].astype("float64")
        first = g.iloc[0]
        diverged = (g["flag"] == DIVERGED).any()
        rows.append({**{c: first[c] for c in COMPARABLE}, "direction": first["direction"],
                     "mean": float(values.mean(skipna=False)),
                     "std": float(values.std(ddof=1, skipna=False)) if len(values) > 1 else float("nan"),
                     "count": int(len(values)),
                     "seeds": ",".join(sorted({k[0] for k in canonical(g, ["seed"])} - {""}, key=float)),
                     "flag": DIVERGED if diverged else "", "checkpoint": first["checkpoint"]})
    return pd.DataFrame(rows, columns=out_cols)
