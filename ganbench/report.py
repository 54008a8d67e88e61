"""Results tables -> leaderboard.csv and a self-contained leaderboard.html (sortable table, plots, samples).

The HTML has no external references: plots and sample grids are inline base64 PNGs, the sorting script
is inline and allowed by a Content-Security-Policy hash, and every string from a results file or a
folder name is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from string import Template
from typing import Sequence

import pandas as pd

import ganbench
from ganbench.checkpoint import atomic_write_bytes
from ganbench.results import normalise

LEADERBOARD_COLUMNS = ["run", "metric", "extractor", "direction", "best", "kimg_best", "last", "kimg_last",
                       "checkpoints", "metric_group"]
MAX_GRID_PX = 768


@dataclass
class ReportFiles:
    """Paths of what `write_report` produced."""

    csv: Path
    html: Path


def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Value per (run, metric, extractor, kimg), averaged over evaluation seeds."""
    df = normalise(df)
    return (df.groupby(["run", "metric", "extractor", "kimg"], sort=True, dropna=False)
              .agg(value=("value", "mean"), direction=("direction", "first"), metric_group=("metric_group", "first"))
              .reset_index())


def _best(group: pd.DataFrame, direction: str) -> pd.Series:
    finite = group[group["value"].notna()]
    if finite.empty or direction not in ("lower", "higher"):
        pick = group.iloc[-1]
    else:
        pick = finite.loc[finite["value"].idxmin() if direction == "lower" else finite["value"].idxmax()]
    last = group.iloc[-1]
    return pd.Series({"best": pick["value"], "kimg_best": pick["kimg"], "last": last["value"],
                      "kimg_last": last["kimg"], "checkpoints": len(group)})


def leaderboard(df: pd.DataFrame) -> pd.DataFrame:
    """Best value per (run, metric, extractor) in the metric's better direction, and the kimg where it was reached."""
    cur = curves(df)
    rows = []
    for (run, metric, extractor), group in cur.groupby(["run", "metric", "extractor"], sort=False):
        group = group.sort_values("kimg", kind="stable")
        direction = group["direction"].iloc[0]
        rows.append({"run": run, "metric": metric, "extractor": extractor, "direction": direction,
                     "metric_group": group["metric_group"].iloc[0], **_best(group, direction).to_dict()})
    board = pd.DataFrame(rows, columns=LEADERBOARD_COLUMNS)
    if board.empty:
        return board
    # Within each metric, better first: negate higher-is-better values for sorting.
    sign = board["direction"].map({"higher": -1.0}).fillna(1.0)
    board = board.assign(_k=board["best"] * sign).sort_values(["metric", "extractor", "_k", "run"], kind="stable")
    return board.drop(columns="_k").reset_index(drop=True)


def find_run_dirs(df: pd.DataFrame, results_paths: Sequence[str | os.PathLike] = ()) -> dict[str, Path]:
    """Folder of each run, for sample grids: the recorded run_dir, else beside a results file."""
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
    except OSError:
        return None
    return _png_data_uri(buf.getvalue())


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.4g}"


def _arrow(direction: str) -> str:
    return {"lower": " \u2193", "higher": " \u2191"}.get(direction, "")


def _table_html(board: pd.DataFrame) -> str:
    """A wide table: one row per run, one column per (metric, extractor)."""
    esc = html.escape
    if board.empty:
        return "<p>No results.</p>"
    columns = list(dict.fromkeys(zip(board["metric"], board["extractor"])))
    multi_extractor = board["extractor"].nunique() > 1
    runs = list(dict.fromkeys(sorted(board["run"])))
    cell = {(r.run, r.metric, r.extractor): r for r in board.itertuples(index=False)}
    best_of: dict[tuple[str, str], float] = {}
    for (metric, extractor), group in board.groupby(["metric", "extractor"]):
        direction = group["direction"].iloc[0]
        vals = group["best"].dropna()
        if direction in ("lower", "higher") and len(vals) > 1:
            best_of[(metric, extractor)] = vals.min() if direction == "lower" else vals.max()
    head = ["<th>run</th>"]
    for metric, extractor in columns:
        direction = cell[next(k for k in cell if k[1] == metric and k[2] == extractor)].direction
        label = metric + (f" [{extractor}]" if multi_extractor else "") + _arrow(direction)
        head.append(f'<th title="{esc(f"{metric} ({extractor})")}">{esc(label)}</th>')
    body = []
    for run in runs:
        tds = [f'<td data-sort="{esc(run)}">{esc(run)}</td>']
        for metric, extractor in columns:
            r = cell.get((run, metric, extractor))
            if r is None:
                tds.append('<td data-sort=""></td>')
                continue
            best = r.best if not (isinstance(r.best, float) and math.isnan(r.best)) else None
            is_best = best is not None and best_of.get((metric, extractor)) == best
            at = f'<span class="at">@{_fmt(r.kimg_best)} kimg</span>' if not math.isnan(r.kimg_best) else ""
            cls = ' class="best"' if is_best else ""
            key = "" if best is None else repr(float(best))
            tds.append(f'<td{cls} data-sort="{key}">{esc(_fmt(r.best))} {at}</td>')
        body.append("<tr>" + "".join(tds) + "</tr>")
    return ('<div class="wide"><table class="leaderboard"><thead><tr>' + "".join(head) + "</tr></thead><tbody>\n"
            + "\n".join(body) + "\n</tbody></table></div>")


def _plain(text: str) -> str:
    """Matplotlib text shown literally: `$` would otherwise start mathtext (and can fail to parse)."""
    return text.replace("$", r"\$")


def plot_metric(curve: pd.DataFrame, metric: str, extractor: str) -> bytes:
    """PNG of value vs kimg, one line per run, for one metric key."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.4), dpi=90)
    ax = fig.add_subplot()
    for run, group in curve.groupby("run", sort=True):
        group = group.sort_values("kimg")
        ax.plot(group["kimg"], group["value"], marker="o", markersize=3, label=_plain(str(run)))
    direction = curve["direction"].iloc[0] if len(curve) else ""
    ax.set_title(_plain(f"{metric} ({extractor}){_arrow(direction)}"), fontsize=10)
    ax.set_xlabel("kimg")
    ax.set_ylabel(_plain(metric))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _plots_html(df: pd.DataFrame) -> str:
    cur = curves(df)
    figs = []
    for (metric, extractor), group in cur.groupby(["metric", "extractor"], sort=True):
        if group["value"].notna().sum() == 0 or metric.endswith("_std"):  # spreads stay in the table only
            continue
        uri = _png_data_uri(plot_metric(group, metric, extractor))
        alt = html.escape(f"{metric} vs kimg ({extractor})")
        figs.append(f'<figure><img class="plot" alt="{alt}" src="{uri}"><figcaption>{alt}</figcaption></figure>')
    return "\n".join(figs) or "<p>No plottable values.</p>"


def _grid_order(path: Path) -> tuple[int, int, str]:
    """Numbered grids (fakes000040.png) by kimg, after unnumbered ones (fakes_init.png)."""
    digits = "".join(ch for ch in path.stem if ch.isdigit())
    return (1, int(digits), path.name) if digits else (0, 0, path.name)


def _samples_html(run_dirs: dict[str, Path]) -> str:
    figs = []
    for run in sorted(run_dirs):
        grids = sorted(run_dirs[run].glob("fakes*.png"), key=_grid_order)
        if not grids:
            continue
        uri = _grid_uri(grids[-1])
        if uri is None:
            continue
        caption = html.escape(f"{run}: {grids[-1].name}")
        figs.append(f'<figure><img class="grid" alt="{caption}" src="{uri}"><figcaption>{caption}</figcaption></figure>')
    return "\n".join(figs) or "<p>No sample grids (fakes*.png) found in the run folders.</p>"


def render_html(df: pd.DataFrame, run_dirs: dict[str, Path] | None = None, title: str = "ganbench leaderboard",
                sources: Sequence[str] = ()) -> str:
    """The whole self-contained page as a string."""
    templates = resources.files("ganbench") / "report_templates"
    page = Template((templates / "leaderboard.html").read_text(encoding="utf-8"))
    script = (templates / "sort.js").read_text(encoding="utf-8")
    script_hash = "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    extractors = ", ".join(sorted(set(normalise(df)["extractor"]) - {""})) or "unknown"
    meta = f"ganbench {ganbench.__version__} \u00b7 {stamp} \u00b7 extractor(s): {extractors}"
    if sources:
        meta += " \u00b7 from " + ", ".join(str(s) for s in sources)
    return page.substitute(
        title=html.escape(title), meta=html.escape(meta), table=_table_html(leaderboard(df)),
        plots=_plots_html(df), samples=_samples_html(run_dirs or {}), script=script, script_hash=script_hash)


def write_report(df: pd.DataFrame, out_dir: str | os.PathLike, run_dirs: dict[str, Path] | None = None,
                 title: str = "ganbench leaderboard", sources: Sequence[str] = ()) -> ReportFiles:
    """Write leaderboard.csv and leaderboard.html into `out_dir` (atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    board = leaderboard(df)
    csv_bytes = board.to_csv(index=False, float_format="%.10g").encode("utf-8")
    atomic_write_bytes(out / "leaderboard.csv", lambda f: f.write(csv_bytes))
    page = render_html(df, run_dirs, title=title, sources=sources).encode("utf-8")
    atomic_write_bytes(out / "leaderboard.html", lambda f: f.write(page))
    return ReportFiles(csv=out / "leaderboard.csv", html=out / "leaderboard.html")
