"""Results tables -> leaderboard.csv and a self-contained leaderboard.html.

The leaderboard has one row per run: its best snapshot by the primary metric (FID when present) with every
metric of that same snapshot, ranked by the primary metric. Columns are comparable groups of
`ganbench.results.SETTINGS` (result key, n, extractor, real data, parameters, ...), in a fixed order (FID,
KID, IS, precision, recall, then the rest; informational keys last), each cell the mean ± std over
evaluation seeds. Below it, one expandable section per run: every snapshot, metric-vs-kimg plots, training
losses from stats.jsonl, the checkpoint's config, and real images beside the best snapshot's fakes.

The HTML has no external references: plots and grids are inline base64 PNGs, the sorting script is inline
and allowed by a Content-Security-Policy hash, and every string from a results file, a folder name, a
stats file or a checkpoint is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any, Sequence

import pandas as pd

import ganbench
from ganbench.checkpoint import atomic_write_bytes, snapshot_name
from ganbench.results import DIVERGED, SETTINGS, canonical, normalise, repeat_groups

MAX_GRID_PX = 768


# ---- columns -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    """One leaderboard column: a result key measured with one set of settings (a SETTINGS tuple)."""

    key: str        # the SETTINGS values joined (the `_col` of the groups)
    metric: str
    group: str
    direction: str  # 'lower', 'higher' or '' (informational or not in the registry)
    name: str       # display name, e.g. "FID"
    settings: str   # e.g. "n=10k, inception" (+ what tells it apart from a column of the same name)

    @property
    def label(self) -> str:
        """Header text in the CSV, e.g. "FID (n=10k, inception)"."""
        return f"{self.name} ({self.settings})"


_NAMES = {"fid": "FID", "kid_mean": "KID", "is_mean": "IS", "precision": "Precision", "recall": "Recall"}
# Column order after the headline ones: families by the first prefix they match.
_FAMILIES = ["swd", "ms_ssim", "ppl", "ls_", "eq"]


def display_name(metric: str) -> str:
    """Headline result keys by their usual names (fid50k_full -> FID50k_full, kid_mean -> KID); others as is."""
    if metric in _NAMES:
        return _NAMES[metric]
    if metric.startswith("fid"):
        return "FID" + metric[3:]
    if metric.startswith("kid") and metric.endswith("_mean"):
        return "KID" + metric[3:-5]
    if metric.startswith("is") and metric.endswith("_mean"):
        return "IS" + metric[2:-5]
    return metric


def family_rank(metric: str, direction: str) -> int:
    """Where a result key's column goes: FID, KID, IS, precision, recall, other families, informational last."""
    if metric.endswith("_std") and not direction:   # a metric's own spread: after everything, in family order
        return 100 + family_rank(metric[:-4] + "_mean", "lower")
    headline = [metric == "fid" or metric.startswith("fid"), metric.startswith("kid") and metric.endswith("_mean"),
                metric.startswith("is") and metric.endswith("_mean"), metric.endswith("precision"),
                metric.endswith("recall")]
    if any(headline):
        return headline.index(True)
    for i, prefix in enumerate(_FAMILIES):
        if metric.startswith(prefix):
            return 5 + i
    return 5 + len(_FAMILIES) if direction else 98


def _natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def format_n(n: float) -> str:
    """10000 -> '10k', 1500 -> '1.5k', 500 -> '500'."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "?"
    n = int(n)
    return f"{n / 1000:g}k" if n >= 1000 and n % 100 == 0 else str(n)


def _params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {"params": text}
    return value if isinstance(value, dict) else {"params": text}


def distinguishing_settings(rows: Sequence[Any]) -> list[list[str]]:
    """For groups that share a name, n and extractor: the settings that tell each apart (leaderboard columns,
    rows of the `check` table), e.g. ['covariance="biased"'] and ['covariance="unbiased"']."""
    extras: list[list[str]] = [[] for _ in rows]
    params = [_params(r["params"]) for r in rows]
    for key in sorted({k for p in params for k in p}):
        values = [json.dumps(p.get(key), sort_keys=True) if key in p else None for p in params]
        if len(set(values)) > 1:
            for i, p in enumerate(params):
                v = p.get(key, "\u2013")
                extras[i].append(f"{key}={v if isinstance(v, str) else json.dumps(v)}")
    fields = [("dataset", "data={}"), ("n_real", "n_real={}"), ("extractor_sha256", "weights={:.8}"),
              ("resize_mode", "resize={}"), ("metric_group", "from {}")]
    for col, fmt in fields:
        values = [r[col] for r in rows]
        if len({str(v) for v in values}) > 1:
            for i, v in enumerate(values):
                shown = format_n(v) if col == "n_real" else (v or "\u2013")
                extras[i].append(fmt.format(shown))
    return extras


def _columns(groups: pd.DataFrame) -> list[Column]:
    """Every distinct SETTINGS tuple of the groups as a Column, in the leaderboard's order."""
    firsts = groups.drop_duplicates("_col")
    items = []
    for _, r in firsts.iterrows():
        settings = f"n={format_n(r['n_samples'])}, {r['extractor'] or 'unknown extractor'}"
        items.append({"row": r, "name": display_name(r["metric"]), "settings": settings})
    by_label: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in items:
        by_label.setdefault((item["name"], item["settings"]), []).append(item)
    for same in by_label.values():
        if len(same) > 1:
            for item, extra in zip(same, distinguishing_settings([i["row"] for i in same])):
                item["settings"] += "".join(f", {e}" for e in extra)
    cols = [Column(key=i["row"]["_col"], metric=i["row"]["metric"], group=i["row"]["metric_group"],
                   direction=i["row"]["direction"], name=i["name"], settings=i["settings"]) for i in items]
    n_of = {i["row"]["_col"]: i["row"]["n_samples"] for i in items}
    return sorted(cols, key=lambda c: (family_rank(c.metric, c.direction), _natural(c.metric),
                                       -(n_of[c.key] if not math.isnan(n_of[c.key]) else 0), c.settings))


# ---- the leaderboard -----------------------------------------------------------------------------------------------

@dataclass
class Cell:
    """One run's value in one column at its shown snapshot: mean ± std over `count` seeds."""

    mean: float
    std: float
    count: int
    diverged: bool
    seeds: str = ""


@dataclass
class RunRow:
    """A run's row: its best snapshot by the primary metric and every column's cell at that snapshot."""

    run: str
    rank: int                      # position in the table (also the anchor of its section)
    kimg: float
    checkpoint: str
    cells: dict[str, Cell]
    diverged_kimgs: list[float] = field(default_factory=list)
    ranked: bool = True            # False: no value in the primary column at all (other settings), so no rank;
                                   # its latest snapshot is shown, not a best one

    @property
    def diverged(self) -> bool:
        """The shown snapshot has a diverged value."""
        return any(c.diverged for c in self.cells.values())


@dataclass
class Leaderboard:
    """Columns (primary first), rows in rank order, and the groups they come from."""

    columns: list[Column]
    primary: Column | None
    rows: list[RunRow]
    groups: pd.DataFrame

    def frame(self) -> pd.DataFrame:
        """The leaderboard as a table (leaderboard.csv): rank (empty for a run without a primary value), run,
        snapshot, then each column's mean, std and seed count (so one seed's empty std is told from a NaN)."""
        records = []
        for r in self.rows:
            rec: dict[str, Any] = {"rank": r.rank if r.ranked else None, "run": r.run, "kimg": r.kimg,
                                   "checkpoint": r.checkpoint}
            for c in self.columns:
                cell = r.cells.get(c.key)
                rec[c.label] = cell.mean if cell else math.nan
                rec[c.label + " std"] = cell.std if cell else math.nan
                rec[c.label + " seeds"] = cell.count if cell else 0
            rec["flag"] = DIVERGED if r.diverged else ""
            rec["diverged_kimg"] = " ".join(f"{k:g}" for k in r.diverged_kimgs)
            records.append(rec)
        cols = ["rank", "run", "kimg", "checkpoint"] + [x for c in self.columns
                                                        for x in (c.label, c.label + " std", c.label + " seeds")]
        frame = pd.DataFrame(records, columns=cols + ["flag", "diverged_kimg"])
        frame["rank"] = frame["rank"].astype("Int64")
        return frame

    def snapshots(self, run: str) -> pd.DataFrame:
        """Every group of one run (all snapshots, all columns)."""
        return self.groups[self.groups["run"] == run]


def _better(direction: str) -> int:
    return -1 if direction == "higher" else 1


def _primary(columns: list[Column], groups: pd.DataFrame) -> Column | None:
    """The first family's column with a direction that covers the most runs (more samples on a tie)."""
    ranked = [c for c in columns if c.direction in ("lower", "higher")]
    if not ranked:
        return None
    top = min(family_rank(c.metric, c.direction) for c in ranked)
    finite = groups[groups["mean"].notna()]
    runs = finite.groupby("_col")["run"].nunique().to_dict()
    candidates = [c for c in ranked if family_rank(c.metric, c.direction) == top]
    return max(candidates, key=lambda c: (runs.get(c.key, 0), -candidates.index(c)))


def build_leaderboard(df: pd.DataFrame) -> Leaderboard:
    """Rank runs by the primary metric at each run's best snapshot (see the module docstring)."""
    groups = repeat_groups(df)
    if groups.empty:
        return Leaderboard(columns=[], primary=None, rows=[], groups=groups.assign(_col=[]))
    groups = groups.assign(_col=["\x1f".join(k) for k in canonical(groups, SETTINGS)])
    columns = _columns(groups)
    primary = _primary(columns, groups)
    if primary is not None:
        columns = [primary] + [c for c in columns if c is not primary]
    rows = []
    for run, sub in groups.groupby("run", sort=False):
        sub = sub.sort_values("kimg", kind="stable")
        finite = sub["mean"].map(lambda v: math.isfinite(float(v)))   # an edited inf is never the best snapshot
        best = sub[(sub["_col"] == primary.key) & finite] if primary is not None else sub.iloc[:0]
        if len(best):
            pick = best.loc[(best["mean"] * _better(primary.direction)).idxmin()]
            kimg, ckpt = pick["kimg"], pick["checkpoint"]
        else:
            last = sub.iloc[-1]
            kimg, ckpt = last["kimg"], last["checkpoint"]
        at = sub[(sub["kimg"] == kimg) | (sub["kimg"].isna() & pd.isna(kimg))]
        cells = {r["_col"]: Cell(r["mean"], r["std"], int(r["count"]), r["flag"] == DIVERGED, r["seeds"])
                 for _, r in at.iterrows()}
        diverged = sorted({float(k) for k in sub.loc[sub["flag"] == DIVERGED, "kimg"] if not pd.isna(k)})
        rows.append(RunRow(run=str(run), rank=0, kimg=kimg, checkpoint=ckpt, cells=cells, diverged_kimgs=diverged))

    def order(r: RunRow) -> tuple[int, float, str]:
        cell = r.cells.get(primary.key) if primary is not None else None
        if cell is None:
            return (2, 0.0, r.run)       # not measured at the primary column's settings: not comparable, no rank
        if not math.isfinite(cell.mean):
            return (1, 0.0, r.run)       # measured and diverged (or an edited inf): ranked last
        return (0, cell.mean * _better(primary.direction), r.run)

    rows.sort(key=order)
    for i, r in enumerate(rows, 1):
        r.rank = i
        r.ranked = primary is None or order(r)[0] < 2
    return Leaderboard(columns=columns, primary=primary, rows=rows, groups=groups)


def leaderboard(df: pd.DataFrame) -> pd.DataFrame:
    """The leaderboard of a results table as a DataFrame (what leaderboard.csv holds)."""
    return build_leaderboard(df).frame()


def find_run_dirs(df: pd.DataFrame, results_paths: Sequence[str | os.PathLike] = ()) -> dict[str, Path]:
    """Folder of each run, for grids, losses and config: the recorded run_dir, else beside a results file."""
    df = normalise(df)
    out: dict[str, Path] = {}
    parents = [Path(p).resolve().parent for p in results_paths]
    for run, group in df.groupby("run", sort=False):
        candidates = [Path(d) for d in group["run_dir"].unique() if d]
        for parent in parents:
            candidates += [parent / run, parent] if parent.name == run else [parent / run]
        for cand in candidates:
            if cand.is_dir():
                out[run] = cand
                break
    return out


# ---- figures -------------------------------------------------------------------------------------------------------

def _png_data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _grid_uri(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if max(img.size) > MAX_GRID_PX:
                img.thumbnail((MAX_GRID_PX, MAX_GRID_PX))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
    except (OSError, ValueError):
        return None
    return _png_data_uri(buf.getvalue())


def _arrow(direction: str) -> str:
    return {"lower": " \u2193", "higher": " \u2191"}.get(direction, "")


def _plotted(columns: list[Column]) -> list[Column]:
    return [c for c in columns if family_rank(c.metric, c.direction) < 100]


def plot_curves(groups: pd.DataFrame, columns: list[Column], runs: list[str], label: str,
                best: dict[str, float] | None = None) -> str:
    """Small multiples of value vs kimg, one panel per column, one line per run (seeds' std as error bars)."""
    from ganbench.svgplot import Series, legend, line_chart

    panels = []
    series_of_run = {}
    for col in _plotted(columns):
        sub = groups[(groups["_col"] == col.key) & groups["mean"].notna()]
        if sub.empty:
            continue
        series = []
        for i, run in enumerate(runs):
            g = sub[sub["run"] == run].sort_values("kimg")
            s = Series(label=run, x=list(g["kimg"]), y=list(g["mean"]), err=list(g["std"]), color=_run_color(i))
            series_of_run.setdefault(run, s)
            if len(g):
                series.append(s)
        marks = [best[r] for r in runs if best and r in best and not pd.isna(best[r])]
        panels.append(line_chart(col.name + _arrow(col.direction), series, marks=marks,
                                 label=f"{label}: {col.label} vs kimg"))
    if not panels:
        return ""
    key = legend([series_of_run[r] for r in runs if r in series_of_run]) if len(runs) > 1 else ""
    return (f'<figure class="curves" aria-label="{esc(label)}">{key}<div class="panels">' + "".join(panels)
            + f"</div><figcaption>{esc(label)}</figcaption></figure>")


def _run_color(i: int) -> str:
    from ganbench.svgplot import color

    return color(i)


def read_stats(path: Path) -> pd.DataFrame:
    """Training ticks from a stats.jsonl (lines that are not JSON objects are skipped)."""
    records = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return pd.DataFrame()
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            records.append({k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return pd.DataFrame(records)


def plot_losses(stats: pd.DataFrame, label: str) -> str:
    """Loss terms (keys starting with 'loss') over kimg, and the augmentation probability when it moved."""
    from ganbench.svgplot import Series, legend, line_chart

    if stats.empty or "kimg" not in stats.columns:
        return ""
    stats = stats.sort_values("kimg", kind="stable")
    losses = [c for c in stats.columns if str(c).lower().startswith("loss")]
    series = [Series(label=str(k), x=list(stats["kimg"]), y=list(stats[k]), markers=False) for k in losses]
    panels = [line_chart("training losses", series, width=420, height=200, label=f"{label}: training losses")] \
        if series else []
    if "augment_p" in stats.columns and stats["augment_p"].fillna(0).abs().max() > 0:
        aug = Series(label="augment_p", x=list(stats["kimg"]), y=list(stats["augment_p"]), markers=False)
        panels.append(line_chart("augment p", [aug], width=260, height=200, label=f"{label}: augment p"))
    if not panels:
        return ""
    return (f'<figure class="curves" aria-label="{esc(label)}: training losses (stats.jsonl)">'
            + (legend(series) if series else "") + '<div class="panels">' + "".join(panels)
            + f"</div><figcaption>{esc(label)}: training losses (stats.jsonl)</figcaption></figure>")


# ---- HTML ------------------------------------------------------------------------------------------------------------

def esc(value: object) -> str:
    """Any text from files, folders or options, escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def _fmt(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}"


def _sort_key(value: float) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def _cell_html(cell: Cell | None, is_best: bool = False) -> str:
    if cell is None:   # not computed for this run: a metric that does not apply to its family (EQ on StyleGAN2)
        return ('<td class="na" data-sort="" title="not computed for this run (does not apply, or not evaluated)">'
                '\u2013</td>')
    if cell.diverged:
        return f'<td class="diverged" data-sort="" title="{esc("generator diverged (NaN)")}">diverged</td>'
    text = _fmt(cell.mean) + (f" \u00b1 {_fmt(cell.std, 2)}" if cell.count > 1 and not math.isnan(cell.std) else "")
    seeds = f"{cell.count} seed{'s' if cell.count != 1 else ''}" + (f" ({cell.seeds})" if cell.seeds else "")
    cls = ' class="best"' if is_best else ""
    return f'<td{cls} data-sort="{_sort_key(cell.mean)}" title="{esc(seeds)}">{esc(text)}</td>'


def _header_html(col: Column) -> str:
    title = f"{col.label}; {col.direction} is better" if col.direction else col.label
    return (f'<th title="{esc(title)}">{esc(col.name + _arrow(col.direction))}'
            f'<span class="sub">{esc(col.settings)}</span></th>')


def _best_values(board: Leaderboard) -> dict[str, float]:
    out = {}
    for col in board.columns:
        if col.direction not in ("lower", "higher"):
            continue
        vals = [r.cells[col.key].mean for r in board.rows if col.key in r.cells
                and math.isfinite(r.cells[col.key].mean)]
        if len(vals) > 1:
            out[col.key] = min(vals) if col.direction == "lower" else max(vals)
    return out


def _kimg_text(kimg: float) -> str:
    return "" if kimg is None or pd.isna(kimg) else f"{float(kimg):g}"


def _table_html(board: Leaderboard) -> str:
    """The ranked leaderboard table: one row per run at its best snapshot."""
    if not board.rows:
        return "<p>No results.</p>"
    best = _best_values(board)
    primary = board.primary.name if board.primary else "run name"
    head = [f'<th title="{esc("rank by " + primary)}">#</th>', "<th>run</th>",
            f'<th title="{esc("the snapshot shown: the best by " + primary)}">kimg</th>']
    head += [_header_html(c) for c in board.columns]
    body = []
    for r in board.rows:
        badge = ""
        if r.diverged_kimgs:
            at = ", ".join(_kimg_text(k) for k in r.diverged_kimgs)
            badge = f' <span class="badge diverged">diverged at {esc(at)} kimg</span>'
        if not r.ranked:
            badge += (f' <span class="badge unranked" title="{esc("no " + primary + " value at these settings")}">'
                      f"not ranked: no {esc(primary)}; latest snapshot shown</span>")
        shown = str(r.rank) if r.ranked else "–"
        tds = [f'<td data-sort="{r.rank}">{shown}</td>',
               f'<td class="run" data-sort="{esc(r.run)}" title="{esc(r.run)}"><a href="#run-{r.rank}">{esc(r.run)}</a>'
               f"{badge}</td>",
               f'<td data-sort="{_sort_key(r.kimg)}" title="{esc(r.checkpoint)}">{esc(_kimg_text(r.kimg))}</td>']
        for c in board.columns:
            cell = r.cells.get(c.key)
            tds.append(_cell_html(cell, cell is not None and best.get(c.key) == cell.mean))
        cls = ' class="diverged"' if r.diverged else ""
        body.append(f"<tr{cls}>" + "".join(tds) + "</tr>")
    return ('<div class="wide"><table class="leaderboard sortable"><thead><tr>' + "".join(head)
            + "</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table></div>")


def _snapshots_html(board: Leaderboard, row: RunRow) -> str:
    """Every snapshot of one run: one row per kimg, the shown (best) one highlighted."""
    sub = board.snapshots(row.run)
    cols = [c for c in board.columns if (sub["_col"] == c.key).any()]
    head = "<th>kimg</th>" + "".join(_header_html(c) for c in cols)
    body = []
    for kimg, at in sub.groupby("kimg", sort=True, dropna=False):
        cells = {r["_col"]: Cell(r["mean"], r["std"], int(r["count"]), r["flag"] == DIVERGED, r["seeds"])
                 for _, r in at.iterrows()}
        classes = ["snapshot"]
        if (pd.isna(kimg) and pd.isna(row.kimg)) or kimg == row.kimg:
            classes.append("best")
        elif any(c.diverged for c in cells.values()):
            classes.append("diverged")
        ckpt = at["checkpoint"].iloc[0]
        tds = [f'<td data-sort="{_sort_key(kimg)}" title="{esc(ckpt)}">{esc(_kimg_text(kimg))}</td>']
        tds += [_cell_html(cells.get(c.key)) for c in cols]
        body.append(f'<tr class="{" ".join(classes)}">' + "".join(tds) + "</tr>")
    return ('<div class="wide"><table class="snapshots sortable"><thead><tr>' + head + "</tr></thead><tbody>\n"
            + "\n".join(body) + "\n</tbody></table></div>")


def fakes_name(checkpoint: str, kimg: float) -> str:
    """The grid training writes beside a snapshot: network-snapshot-000020.pt -> fakes000020.png."""
    name = checkpoint if checkpoint.startswith("network-snapshot-") else snapshot_name(kimg if not pd.isna(kimg) else 0)
    stem = name[:-len(Path(name).suffix)] if Path(name).suffix in (".pt", ".safetensors", ".json", ".pkl") else name
    return stem.replace("network-snapshot-", "fakes", 1) + ".png"


def _figure_html(uri: str, alt: str, cls: str) -> str:
    return f'<figure><img class="{cls}" alt="{esc(alt)}" src="{uri}"><figcaption>{esc(alt)}</figcaption></figure>'


def _config_html(run_dir: Path, row: RunRow) -> str:
    """The run's configuration from the shown snapshot's checkpoint metadata (else the newest snapshot's)."""
    from ganbench.checkpoint import load_checkpoint, snapshot_kimg
    from ganbench.errors import GanbenchError

    path = run_dir / row.checkpoint if row.checkpoint else None
    if path is None or not path.is_file():
        snaps = sorted((p for p in run_dir.iterdir() if snapshot_kimg(p.name) is not None),
                       key=lambda p: snapshot_kimg(p.name))
        path = snaps[-1] if snaps else None
    if path is None:
        return '<p class="missing">No checkpoint in the run folder, so no config to show.</p>'
    try:
        meta = load_checkpoint(path).metadata
    except (GanbenchError, OSError) as exc:
        return f'<p class="missing">Config unavailable: {esc(exc)}</p>'
    text = json.dumps(meta, indent=2, sort_keys=True, default=str)
    return f'<p class="meta">from {esc(path.name)}</p><pre class="config">{esc(text)}</pre>'


def _run_section_html(board: Leaderboard, row: RunRow, run_dir: Path | None) -> str:
    """One run's expandable section."""
    primary = board.primary
    cell = row.cells.get(primary.key) if primary else None
    headline = ""
    if primary is not None and cell is not None and not math.isnan(cell.mean):
        headline = f" \u2014 best {primary.name} {_fmt(cell.mean)} at {_kimg_text(row.kimg)} kimg"
    elif row.diverged:
        headline = " \u2014 diverged"
    elif not row.ranked and primary is not None:
        headline = f" \u2014 not ranked: no {primary.name} at these settings; latest snapshot {_kimg_text(row.kimg)}"
    shown = f"#{row.rank}" if row.ranked else "\u2013"
    parts = [f'<details class="run" id="run-{row.rank}"{" open" if row.rank == 1 else ""}>',
             f'<summary><span class="rank">{shown}</span> <b>{esc(row.run)}</b>{esc(headline)}</summary>',
             '<div class="runbody"><h3>Every snapshot</h3>', _snapshots_html(board, row)]
    parts.append(plot_curves(board.snapshots(row.run), board.columns, [row.run], f"{row.run}: metrics vs kimg",
                             {row.run: row.kimg}))
    if run_dir is not None:
        parts.append(plot_losses(read_stats(run_dir / "stats.jsonl"), row.run))
    if run_dir is None:
        parts.append('<p class="missing">No run folder found for this run, so no sample grids, training losses or '
                     "config (pass the results file that sits in the run folder, or keep run_dir valid).</p>")
    else:
        if not (run_dir / "stats.jsonl").is_file():
            parts.append('<p class="missing">No stats.jsonl in the run folder.</p>')
        fakes = fakes_name(row.checkpoint, row.kimg)
        grids = []
        for file, alt in (("reals.png", f"{row.run}: real images (reals.png)"),
                          (fakes, f"{row.run}: generated at {_kimg_text(row.kimg)} kimg ({fakes})")):
            uri = _grid_uri(run_dir / file) if (run_dir / file).is_file() else None
            grids.append(_figure_html(uri, alt, "grid") if uri else
                         f'<p class="missing">No {esc(file)} in the run folder.</p>')
        parts.append(f"<h3>Real vs generated at the best snapshot ({esc(_kimg_text(row.kimg))} kimg)</h3>"
                     '<div class="pair">' + "\n".join(grids) + "</div>")
        parts.append("<h3>Config</h3>" + _config_html(run_dir, row))
    parts.append("</div></details>")
    return "\n".join(parts)


def render_html(df: pd.DataFrame, run_dirs: dict[str, Path] | None = None, title: str = "ganbench leaderboard",
                sources: Sequence[str] = ()) -> str:
    """The whole self-contained page as a string."""
    run_dirs = run_dirs or {}
    board = build_leaderboard(df)
    templates = resources.files("ganbench") / "report_templates"
    page = Template((templates / "leaderboard.html").read_text(encoding="utf-8"))
    script = (templates / "sort.js").read_text(encoding="utf-8")
    script_hash = "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    extractors = ", ".join(sorted(set(normalise(df)["extractor"]) - {""})) or "unknown"
    meta = f"ganbench {ganbench.__version__} \u00b7 {stamp} \u00b7 extractor(s): {extractors}"
    if sources:
        meta += " \u00b7 from " + ", ".join(str(s) for s in sources)
    if board.primary is not None:
        how = (f"Each run at its best snapshot by {board.primary.label}, with every metric of that same snapshot; "
               "ranked by it.")
    else:
        how = "Each run at its last snapshot (no metric with a better direction to rank by)."
    sections = "\n".join(_run_section_html(board, r, run_dirs.get(r.run)) for r in board.rows)
    overview = plot_curves(board.groups, board.columns, [r.run for r in board.rows], "all runs: metrics vs kimg",
                           {r.run: r.kimg for r in board.rows}) if board.rows else ""
    plots = overview or "<p>No plottable values.</p>"
    return page.substitute(title=esc(title), meta=esc(meta), how=esc(how), table=_table_html(board),
                           runs=sections or "<p>No runs.</p>", plots=plots, script=script, script_hash=script_hash)


def write_report(df: pd.DataFrame, out_dir: str | os.PathLike, run_dirs: dict[str, Path] | None = None,
                 title: str = "ganbench leaderboard", sources: Sequence[str] = (),
                 stem: str = "leaderboard") -> "ReportFiles":
    """Write `<stem>.csv` and `<stem>.html` (default leaderboard.csv / leaderboard.html) into `out_dir` (atomically)."""
    out = Path(out_dir)
    frame = leaderboard(df)   # both made before anything is written: a table that cannot be reported changes nothing
    frame["kimg"] = [_kimg_text(k) for k in frame["kimg"]]
    csv_bytes = frame.to_csv(index=False, float_format="%.10g").encode("utf-8")
    page = render_html(df, run_dirs, title=title, sources=sources).encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(csv=out / f"{stem}.csv", html=out / f"{stem}.html")
    atomic_write_bytes(files.csv, lambda f: f.write(csv_bytes))
    atomic_write_bytes(files.html, lambda f: f.write(page))
    return files


@dataclass
class ReportFiles:
    """Paths of what `write_report` produced."""

    csv: Path
    html: Path
