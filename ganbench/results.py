"""The long-format results table: one row per (run, checkpoint, metric key), read and appended atomically.

Every row says how its number was made (extractor and its weights hash, resize mode, sample counts,
seed, metric parameters) so numbers from different settings are never mixed up by a report or a check.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from ganbench.checkpoint import atomic_write_bytes
from ganbench.errors import ConfigError

COLUMNS = ["run", "checkpoint", "kimg", "metric", "value", "metric_group", "direction", "n_samples", "n_real",
           "extractor", "extractor_sha256", "resize_mode", "dataset", "seed", "params", "wall_s",
           "ganbench_version", "timestamp", "run_dir"]
REQUIRED = ["run", "kimg", "metric", "value"]
NUMERIC = ["kimg", "value", "n_samples", "n_real", "seed", "wall_s"]
# Rows sharing these come from one computation; `ganbench eval` skips a computation whose rows exist.
IDENTITY = ["run", "checkpoint", "metric_group", "extractor", "n_samples", "seed", "params"]


def empty_table() -> pd.DataFrame:
    """A results table with every column and no rows."""
    return normalise(pd.DataFrame(columns=COLUMNS))


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Give a table every known column, numbers as floats and everything else as strings ('' for missing)."""
    df = df.copy()
    for col in COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    for col in df.columns:
        if col in NUMERIC:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
        else:
            df[col] = df[col].astype("object").where(df[col].notna(), "").astype(str)
    ordered = COLUMNS + [c for c in df.columns if c not in COLUMNS]
    return df[ordered]


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read one results CSV; a missing required column is a ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"results file {path} does not exist")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ConfigError(f"results file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ConfigError(f"results file {path} is not a readable CSV ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(f"results file {path} lacks column(s) {', '.join(missing)}")
    for col in ("kimg", "value"):
        bad = pd.to_numeric(df[col].replace("", "nan"), errors="coerce").isna() & ~df[col].isin(["", "nan", "NaN"])
        if bad.any():
            raise ConfigError(f"results file {path} row {int(bad.idxmax()) + 2}: {col} {df[col][bad].iloc[0]!r} "
                              "is not a number")
    return normalise(df)


def read_many(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate several results files (a row appearing in two files is kept once)."""
    if not paths:
        raise ConfigError("no results files given")
    frames = [read_results(p) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates(subset=[c for c in df.columns if c not in ("wall_s", "timestamp")], ignore_index=True)


def write_results(path: str | os.PathLike, df: pd.DataFrame) -> None:
    """Write the whole table atomically (temp file + rename), so readers never see half a file."""
    buf = io.StringIO()
    normalise(df).to_csv(buf, index=False)
    data = buf.getvalue().encode("utf-8")
    atomic_write_bytes(path, lambda f: f.write(data))


def append_rows(path: str | os.PathLike, rows: Iterable[dict]) -> pd.DataFrame:
    """Append rows to the table at `path` (created if absent) by an atomic rewrite; returns the new table.

    An exclusive lock on a sibling `.NAME.lock` file serialises the read-modify-write, so evaluations
    running in parallel into one table lose no rows.
    """
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame(list(rows))
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = read_results(path) if path.is_file() else empty_table()
        table = pd.concat([old, normalise(new)], ignore_index=True) if len(new) else old
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
