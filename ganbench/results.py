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

import csv
import io
import math
import os
import re
import socket
import threading
import uuid
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pandas as pd

from ganbench.checkpoint import atomic_write_bytes
from ganbench.errors import ConfigError

COLUMNS = ["run", "checkpoint", "kimg", "metric", "value", "flag", "metric_group", "direction", "n_samples", "n_real",
           "extractor", "extractor_sha256", "resize_mode", "dataset", "seed", "params", "wall_s",
           "ganbench_version", "timestamp", "run_dir", "fingerprint"]
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
# Rows sharing these come from one computation; `ganbench eval` skips a computation whose rows exist. The real
# data (identity and count) is part of it: the same checkpoint measured against other reals is another number.
IDENTITY = ["run", "checkpoint", "metric_group", "extractor", "n_samples", "seed", "params", "dataset", "n_real"]
# Which model a row measured, beside its name: `fingerprint` is the network file's (checkpoint.file_fingerprint) or
# an image set's content hash, '' in rows written before it was recorded. It is not part of any identity above: a
# baseline is meant to be compared with a retrained model of the same name. It tells `eval` that a snapshot file
# was replaced since its rows were written, and readers which rows are the same model (`_one_model_per_slot`).
SHARDS_SUFFIX = ".shards"
REFRESH_SLACK_S = 300.0  # shards this much older than the table file are still merged into it on an append


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
        s = df[col]
        if col in NUMERIC:
            if s.dtype != "float64":
                df[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        elif not (isinstance(s.dtype, pd.StringDtype) and not s.isna().any()):
            df[col] = s.astype(object).where(s.notna(), "").astype(str)
    ordered = COLUMNS + [c for c in df.columns if c not in COLUMNS]
    return df[ordered]


def shard_dir(path: str | os.PathLike) -> Path:
    """The folder of per-writer shard files that belong to the table at `path`."""
    path = Path(path)
    return path.with_name(path.name + SHARDS_SUFFIX)


NO_NUMBER = ("", "nan", "NaN")  # what a numeric column may hold instead of a number (the number is missing)


def read_csv_text(path: Path, what: str, required: Sequence[str] = REQUIRED,
               empty: str = "") -> tuple[list[str], list[list[str]]]:
    """Header and rows of one CSV file, as text; every way it can be unreadable is a ConfigError naming `what` and
    the file: not UTF-8, not CSV, empty (`empty` is added to that message), lacking a `required` column, naming a
    column twice, or a row with more or fewer fields than its header. A UTF-8 byte order mark (Excel writes one)
    is not part of the text.

    The csv module, not pandas: a table may have a thousand small shards, and pandas' per-file overhead
    (milliseconds) would dominate reading them. Baselines are read with it too (`regress.read_baseline`), as strictly.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a readable CSV (not UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path} ({exc.strerror or type(exc).__name__})") from None
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ConfigError(f"{what} {path} is not a readable CSV ({exc})") from None
    if not records:
        raise ConfigError(f"{what} {path} is empty{empty}")
    header, rows = records[0], [r for r in records[1:] if r]
    missing = [c for c in required if c not in header]
    if missing:
        raise ConfigError(f"{what} {path} lacks column(s) {', '.join(missing)}")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise ConfigError(f"{what} {path} has column(s) {', '.join(repr(c) for c in twice)} twice in its header")
    ragged = next((i for i, r in enumerate(rows) if len(r) != len(header)), None)
    if ragged is not None:
        raise ConfigError(f"{what} {path} row {ragged + 2} has {len(rows[ragged])} fields, its header {len(header)}")
    return header, rows


def parse_numbers(raw: pd.DataFrame, columns: Sequence[str], where: Callable[[int], str]) -> pd.DataFrame:
    """`raw` (text) with those of `columns` it has as float64. Text that is neither a number nor NO_NUMBER is a
    ConfigError for the first such row: "`where(i)`: COLUMN 'TEXT' is not a number" (`where` names file and row of
    position `i`), so a typo is never silently a missing number (a new group, or a seed that passes a check)."""
    parsed: dict[str, pd.Series] = {}
    first: tuple[int, str] | None = None
    for col in dict.fromkeys(c for c in columns if c in raw.columns):
        text = raw[col]
        numbers = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = (numbers.isna() & text.notna() & ~text.isin(NO_NUMBER)).to_numpy()   # NA: a file without col
        if bad.any() and (first is None or int(bad.argmax()) < first[0]):
            first = (int(bad.argmax()), col)
        parsed[col] = numbers
    if first is not None:
        i, col = first
        raise ConfigError(f"{where(i)}: {col} {raw[col].iloc[i]!r} is not a number")
    return raw.assign(**parsed)


def _read_tables(paths: Sequence[Path], what: str) -> pd.DataFrame:
    """Several CSV files of one table as one normalised frame; text in a numeric column (NUMERIC) is an error
    naming its file, row and column."""
    blocks: dict[tuple[str, ...], list[list[str]]] = {}
    where: dict[tuple[str, ...], list[tuple[int, int]]] = {}
    for k, p in enumerate(paths):
        header, rows = read_csv_text(p, what)
        blocks.setdefault(tuple(header), []).extend(rows)
        where.setdefault(tuple(header), []).extend((k, line) for line in range(2, len(rows) + 2))
    frames = [pd.DataFrame(rows, columns=list(header), dtype=str) for header, rows in blocks.items()]
    raw = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    origin = [w for header in blocks for w in where[header]]
    return normalise(parse_numbers(raw, NUMERIC, lambda i: f"{what} {paths[origin[i][0]]} row {origin[i][1]}"))


def _shards(path: Path) -> list[Path]:
    shards = shard_dir(path)
    return sorted(shards.glob("*.csv")) if shards.is_dir() else []


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read one results table (the file merged with its shards, each computation once); errors name the file."""
    path = Path(path)
    if path.is_dir() and not path.name.endswith(SHARDS_SUFFIX):
        raise ConfigError(f"results file {path} is a folder; give the CSV inside it (e.g. {path / 'results.csv'})")
    sources = ([path] if path.is_file() else []) + _shards(path)
    if not sources:
        raise ConfigError(f"results file {path} does not exist")
    table = dedupe(_read_tables(sources, "results file"))
    check_directions(table, path)
    return table


def read_many(paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """Concatenate several results tables, keeping each computation once."""
    if not paths:
        raise ConfigError("no results files given")
    tables = [read_results(p) for p in paths]
    _refuse_two_runs_of_one_name(tables, paths)
    return dedupe(pd.concat(tables, ignore_index=True))


def run_folders(table: pd.DataFrame | None) -> dict[str, set[str]]:
    """The folders each run's rows came from (`run_dir`); image sets are left out, their content tells them apart."""
    if table is None or table.empty:
        return {}
    nets = table[~table["checkpoint"].astype(str).str.startswith("images-") & (table["run_dir"] != "")]
    return {str(run): set(dirs) for run, dirs in nets.groupby("run")["run_dir"]}


def _refuse_two_runs_of_one_name(tables: list[pd.DataFrame], paths: Sequence[str | os.PathLike]) -> None:
    """Rows are keyed by run name: two run folders of one name (expA/sg2, expB/sg2), read together, would have one
    replace the other's rows or be averaged with them as seeds. Both folders must still exist to count (a moved
    run's rows name a folder that is gone)."""
    homes: dict[str, dict[str, str]] = {}
    for table, path in zip(tables, paths):
        for run, folders in run_folders(table).items():
            for folder in folders:
                homes.setdefault(run, {}).setdefault(folder, str(path))
    for run, folders in homes.items():
        alive = sorted(f for f in folders if Path(f).is_dir())
        if len(alive) > 1:
            raise ConfigError(f"run {run!r} has rows from two folders, {alive[0]} ({folders[alive[0]]}) and "
                              f"{alive[1]} ({folders[alive[1]]}): two runs share a name; read them separately or "
                              "rename one folder and evaluate it again")


def canonical(df: pd.DataFrame, columns: Sequence[str]) -> list[tuple[str, ...]]:
    """Each row's `columns` of a normalised table as a tuple of canonical strings (128, 128.0 and '128' alike)."""
    cols = [[_number_text(v) for v in df[c]] if c in NUMERIC else df[c].astype(str).tolist() for c in columns]
    return list(zip(*cols)) if cols else [() for _ in range(len(df))]


def dedupe(df: pd.DataFrame) -> pd.DataFrame:
    """Keep one row per computation (ROW_IDENTITY): the newest by timestamp, later sources winning ties."""
    df = df.reset_index(drop=True)
    if len(df) < 2:
        return df
    ranked = df.iloc[df["timestamp"].astype(str).argsort(kind="stable")]
    keep = ~ranked.duplicated(subset=ROW_IDENTITY, keep="last")   # floats compare as numbers, NaN equal to NaN
    if keep.all():
        return df
    return df.loc[sorted(ranked.index[keep])].reset_index(drop=True)


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
    """Append rows to the table at `path` (created if absent); returns the table file's refreshed content.

    The rows go into this process's own shard (rewritten atomically; no other process writes it). Then the
    table file is refreshed as the merge of itself, this shard and every shard changed since the file was
    last written (with REFRESH_SLACK_S for clock skew), so an append costs O(table) however many shards a
    thousand-job array leaves. Two writers refreshing at once may each leave the other's newest rows out
    of the file, never out of the table: `read_results` merges every shard.
    """
    path = Path(path)
    new = normalise(pd.DataFrame(list(rows)))
    shard = shard_dir(path) / writer_name()
    with _writer_lock:
        old = _read_tables([shard], "results shard") if shard.is_file() else empty_table()
        atomic_write_bytes(shard, lambda f: f.write(csv_bytes(pd.concat([old, new], ignore_index=True))))
    since = path.stat().st_mtime - REFRESH_SLACK_S if path.is_file() else None
    shards = [p for p in _shards(path) if since is None or p == shard or _mtime(p) >= since]
    table = dedupe(_read_tables(([path] if since is not None else []) + shards, "results file"))
    check_directions(table, path)
    write_results(path, table)
    return table


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:          # removed since it was listed
        return float("-inf")


def done_keys(df: pd.DataFrame) -> dict[tuple, str]:
    """Identities of the computations already recorded in `df` (see IDENTITY), each with the fingerprint of the
    model it measured ('' when not recorded; the newest row's when a file was replaced and measured again)."""
    if df.empty:
        return {}
    df = normalise(df)
    df = df.iloc[df["timestamp"].astype(str).argsort(kind="stable")]
    return {identity_key(row): str(row["fingerprint"]) for row in df[[*IDENTITY, "fingerprint"]].to_dict("records")}


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
    stated_rows = df.loc[df["direction"] != "", ["metric", "metric_group", "direction"]].drop_duplicates()
    for metric, group, stated in sorted(stated_rows.itertuples(index=False, name=None)):
        truth = registry_direction(metric, group)
        if truth is not None and truth != stated:
            says = f"{truth} is better" if truth else "neither way is better"
            raise ConfigError(f"{what} {path}: direction {stated!r} for {metric} disagrees with the metric registry "
                              f"(for {metric}, {says}); directions come from the registry, so fix or empty that column")


def _is_image_set(df: pd.DataFrame) -> pd.Series:
    return df["checkpoint"].astype(str).str.startswith("images-") & df["kimg"].isna()


def _slots(df: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(is an image set, slot, content) of each row: a network run's slot is (run, checkpoint) and its content the
    file's fingerprint; an image set's slot is its run name and its content the hash in `images-<hash>`."""
    image = _is_image_set(df)
    content = df["fingerprint"].astype(str).where(~image, df["checkpoint"].astype(str).str.slice(len("images-")))
    slot = df["run"].astype(str).where(image, df["run"].astype(str) + "\x1f" + df["checkpoint"].astype(str))
    return image, slot, content


def model_conflict(df: pd.DataFrame) -> str:
    """Why rows of `df` (run, checkpoint, kimg, fingerprint, run_dir) cannot be one table ('' when they can): a run name
    used by a network run and by an image set, or two contents of one slot from two folders (two runs under one
    name, whether or not the folders still exist). `eval` asks this of a table with the rows it is about to add,
    before any work, so it never writes a table every reader would refuse."""
    image, slot, content = _slots(df)
    both = sorted(set(df.loc[image, "run"]) & set(df.loc[~image, "run"]))
    if both:
        where = sorted({d for d in df.loc[df["run"] == both[0], "run_dir"] if d}) or ["?"]
        return (f"run name {both[0]!r} has rows of a network run and of an image set ({', '.join(where)}): they are "
                "different models; evaluate one of them under another name (rename its folder)")
    known = (content != "") & (df["run_dir"] != "")
    contents = content[known].groupby(slot[known]).nunique()
    folders = df.loc[known, "run_dir"].groupby(slot[known]).nunique()
    clash = contents.index[(contents > 1) & (folders.reindex(contents.index) > 1)]
    if len(clash) == 0:
        return ""
    rows = df[known & (slot == clash[0])]
    first, dirs = rows.iloc[0], sorted(set(rows["run_dir"]))
    what = "image set" if image[rows.index[0]] else f"snapshot {first['checkpoint']}"
    return (f"run {first['run']!r} ({what}) has rows of different models from {dirs[0]} and {dirs[1]}: two runs "
            "share a name; report them separately or rename one folder and evaluate it again")


def _one_model_per_slot(df: pd.DataFrame) -> pd.DataFrame:
    """Seeds are repeats of one model, so rows are only ever grouped with rows of the same model:

    - a run's snapshot (an image set: the run itself) measured again after its file (its images) changed keeps the
      rows of its newest content only, for every metric (before, a retrained snapshot's FID and its old KID shared
      a leaderboard row, and old and new seeds were averaged);
    - `model_conflict`s (two runs under one name, a network run and an image set of one name) are a ConfigError;
    - so is a comparable group with rows of two checkpoint files (two pickles in one folder, a `final.pkl` beside
      the snapshot of its kimg).
    Rows without a fingerprint (written before it was recorded) go with any content of their slot.
    """
    why = model_conflict(df)
    if why:
        raise ConfigError(why)
    image, slot, content = _slots(df)
    known = content != ""
    many = content[known].groupby(slot[known]).transform("nunique") > 1
    replaced = set(slot[known][many])
    if replaced:   # the newest content of each such slot, by timestamp (vectorised: tables have 100k rows)
        rows = pd.DataFrame({"t": df["timestamp"].astype(str), "s": slot, "c": content})[known & slot.isin(replaced)]
        newest = rows.sort_values("t", kind="stable").groupby("s")["c"].last()
        drop = slot.isin(replaced) & (content != slot.map(newest))   # older contents, and rows without a fingerprint
        df = df[~drop]
    keys = pd.Series(["\x1f".join(k) for k in canonical(df, COMPARABLE)], index=df.index)
    counts = df[~_is_image_set(df)].groupby(keys)["checkpoint"].nunique()
    mixed = counts[counts > 1].index
    if len(mixed):
        rows = df[keys == mixed[0]]
        first = rows.iloc[0]
        names = ", ".join(sorted(rows["checkpoint"].unique()))
        kimg = "" if pd.isna(first["kimg"]) else f" at kimg {_number_text(first['kimg'])}"
        raise ConfigError(f"run {first['run']!r}{kimg} has {first['metric']} rows of {rows['checkpoint'].nunique()} "
                          f"different checkpoints ({names}): different models under one run name are never averaged "
                          "as seeds; evaluate each under its own name (a file not named network-snapshot-* is "
                          "its own run) or keep their rows in separate tables")
    return df


def repeat_groups(df: pd.DataFrame) -> pd.DataFrame:
    """One row per comparable group (COMPARABLE): mean, std (ddof 1) and count of its seeds, never across settings.

    `flag` is 'diverged' when any repeat diverged (its mean is then NaN, as it is when any repeat is NaN);
    `direction` comes from the registry; `checkpoint` and `seeds` say where the numbers come from.
    """
    df = with_registry_directions(normalise(df))
    out_cols = [*COMPARABLE, "direction", "mean", "std", "count", "seeds", "flag", "checkpoint"]
    if df.empty:
        return pd.DataFrame(columns=out_cols)
    df = _one_model_per_slot(df)
    df = df.assign(_nan=df["value"].isna(), _div=df["flag"] == DIVERGED,
                   _seed=[_number_text(v) for v in df["seed"]])
    grouped = df.groupby(COMPARABLE, sort=False, dropna=False)
    out = grouped.agg(direction=("direction", "first"), checkpoint=("checkpoint", "first"), mean=("value", "mean"),
                      std=("value", "std"), count=("value", "size"), _nan=("_nan", "any"), _div=("_div", "any"),
                      seeds=("_seed", lambda s: ",".join(sorted(set(s) - {""}, key=float)))).reset_index()
    out.loc[out["_nan"], ["mean", "std"]] = float("nan")
    out["flag"] = [DIVERGED if d else "" for d in out["_div"]]
    out["count"] = out["count"].astype(int)
    return out[out_cols]
