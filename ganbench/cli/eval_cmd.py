"""`ganbench eval`: every checkpoint x every metric -> rows of a results table (resumable).

What a person sees: one progress bar for the whole job with an ETA (on a terminal only), one plain
line per checkpoint x metric with its values (what a log file keeps), and at the end a table of the
values computed, sorted by kimg. `--quiet` prints only errors and warnings; `--json` prints one JSON
object on stdout (the lines go to stderr).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import typer

from ganbench.cli import app
from ganbench.cli.common import handle_errors, warnings_as_lines
from ganbench.devices import DEVICE_HELP
from ganbench.errors import ConfigError
from ganbench.evaluate import CheckpointRef, EvalProgress, EvalSummary

NOT_APPLICABLE = "–"


def _fmt(value: Any) -> str:
    value = float(value)
    return "nan" if math.isnan(value) else f"{value:.5g}"


def result_line(ref: CheckpointRef, metric: str, rows: list[dict[str, Any]], wall_s: float) -> str:
    """The log line of one metric on one checkpoint: run, kimg, metric, its values, n and time."""
    kimg = rows[0]["kimg"] if rows else ref.kimg
    values = " ".join(f"{r['metric']}={_fmt(r['value'])}" for r in rows)
    n = rows[0]["n_samples"] if rows else ""
    flag = "  DIVERGED (NaN rows flagged 'diverged')" if any(r.get("flag") == "diverged" for r in rows) else ""
    where = ref.name if getattr(ref, "is_image_set", False) else f"kimg {kimg:g}"
    return f"{ref.run}  {where}  {metric}: {values}  (n={n}, {wall_s:.1f} s){flag}"


class EvalDisplay(EvalProgress):
    """Eval's display: a rich bar with ETA on a terminal (stderr) and one plain line per result.

    A context manager; `quiet` shows nothing, `lines_to_stderr` keeps stdout for machine output.
    """

    def __init__(self, quiet: bool = False, lines_to_stderr: bool = False) -> None:
        from ganbench.cli.common import console, make_console

        self.quiet = quiet
        self.lines = console if lines_to_stderr else make_console()
        self.bar = None
        self.task = None
        if not quiet and console.is_terminal:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn, TimeRemainingColumn

            from ganbench.cli.common import description_column

            self.bar = Progress(description_column(), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                                TimeRemainingColumn(), console=console)

    def __enter__(self) -> "EvalDisplay":
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def begin(self, total: float, jobs: int) -> None:
        if self.bar is not None:
            self.task = self.bar.add_task(f"evaluating {jobs} checkpoint x metric computation(s)",
                                          total=max(total, 1e-9))

    def working(self, description: str, done: float) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, description=description, completed=done)

    def computed(self, ref: CheckpointRef, metric: str, rows: list[dict[str, Any]], wall_s: float) -> None:
        if not self.quiet:
            from ganbench.cli.common import plain

            # On one screen (stdout a terminal too) the line goes through the bar's console, which prints it above
            # the live bar; a console of its own wrote it straight after the bar's text, glued to its line.
            out = self.bar.console if self.bar is not None and self.bar.live.is_started and self.lines.is_terminal \
                else self.lines
            out.print(plain(result_line(ref, metric, rows, wall_s)), soft_wrap=True)


def progress_bar(quiet: bool = False, lines_to_stderr: bool = False) -> EvalDisplay:
    """The display `bench` shares with `eval` (a context manager and an EvalProgress)."""
    return EvalDisplay(quiet=quiet, lines_to_stderr=lines_to_stderr)


RUN_NAME_WIDTH = 80   # run names up to this long are never shortened in the values table


def values_table(summary: EvalSummary) -> Any:
    """The values an evaluation computed: one row per checkpoint (sorted by kimg), one column per result
    key with its n; "–" where the metric does not apply to the model."""
    from rich.table import Table

    from ganbench.cli.common import plain

    added = summary.added
    table = Table(title="values computed", title_justify="left")
    runs = {str(r) for r in added["run"]} if len(added) else set()
    runs |= {str(run) for run, *_ in summary.not_computed}
    # Whole names: `..._seed0` and `..._seed1` cut to one `...` would be two runs nobody can tell apart.
    table.add_column("run", no_wrap=True, min_width=min(max(map(len, runs), default=3), RUN_NAME_WIDTH))
    table.add_column("kimg", justify="right")
    keys: dict[str, str] = {}   # result key -> header
    groups: dict[str, str] = {}  # result key -> metric asked for (columns follow --metrics)
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    order: dict[tuple[str, str], float] = {}
    for r in added.to_dict("records") if len(added) else []:
        keys.setdefault(r["metric"], f"{r['metric']}\nn={r['n_samples']}")
        groups.setdefault(r["metric"], r["metric_group"])
        cell = (r["run"], r["checkpoint"])
        order[cell] = float(r["kimg"]) if not pd.isna(r["kimg"]) else math.inf   # image sets: no kimg, last
        style = "bold red" if r.get("flag") == "diverged" else ""
        cells.setdefault(cell, {})[r["metric"]] = plain(_fmt(r["value"]), style)
    for run, checkpoint, metric, _ in summary.not_computed:
        from ganbench.metrics import get_metric

        try:
            result_keys = get_metric(metric).result_keys()
        except ConfigError:  # not in the registry (only the caller knew it): its group name
            result_keys = [metric]
        for key in result_keys:
            keys.setdefault(key, key)
            groups.setdefault(key, metric)
            cells.setdefault((run, checkpoint), {})[key] = plain(NOT_APPLICABLE, "dim")
        order.setdefault((run, checkpoint), _kimg_of(summary, run, checkpoint))
    rank = {name: i for i, name in enumerate(summary.metrics)}
    first = {key: i for i, key in enumerate(keys)}
    keys = {k: keys[k] for k in sorted(keys, key=lambda k: (rank.get(groups[k], len(rank)), first[k]))}
    for header in keys.values():
        table.add_column(plain(header), justify="right")
    for cell in sorted(cells, key=lambda c: (order.get(c, math.inf), c[0])):
        run, _ = cell
        kimg = order.get(cell, math.nan)
        table.add_row(plain(run), plain(f"{kimg:g}" if math.isfinite(kimg) else ""),
                      *[cells[cell].get(key, plain("")) for key in keys])
    return table


def _kimg_of(summary: Any, run: str, checkpoint: str) -> float:
    """The recorded kimg of a checkpoint the evaluation opened (0.104, where the file name says 000000.100)."""
    kimg = summary.kimgs.get((run, checkpoint))
    return math.nan if kimg is None or pd.isna(kimg) else float(kimg)


def summary_json(summary: EvalSummary) -> str:
    """The evaluation's outcome as one JSON object (NaN values as null)."""
    rows = summary.added.to_dict("records") if len(summary.added) else []
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in rows]
    return json.dumps({
        "rows": clean, "skipped": summary.skipped, "outputs": [str(p) for p in summary.outputs],
        "not_applicable": [{"run": r, "checkpoint": c, "metric": m, "why": w} for r, c, m, w in summary.not_computed],
        "diverged": [{"run": r, "checkpoint": c, "metric": m} for r, c, m in summary.diverged],
        "timings": dict(getattr(summary, "timings", None) or {}),
        "warnings": list(getattr(summary, "warnings", None) or []),
    }, default=str, allow_nan=False)


def timings_line(summary: EvalSummary) -> str:
    """'time: real images 1.2 s, generation 3.4 s, ...' from the summary's timings, '' when it has none."""
    timings = getattr(summary, "timings", None) or {}
    return "time: " + ", ".join(f"{k.replace('_', ' ')} {float(v):.1f} s" for k, v in timings.items()) if timings else ""


def print_warnings(summary: EvalSummary) -> None:
    """The evaluation's warning lines (stderr): also under --quiet, which prints only errors and warnings."""
    from ganbench.cli.common import console, esc

    for warning in getattr(summary, "warnings", None) or []:
        console.print(f"[yellow]warning:[/] {esc(warning)}", highlight=False, soft_wrap=True)
    if summary.diverged:
        console.print(f"[yellow]warning:[/] {len(summary.diverged)} computation(s) met NaN or inf (a diverged "
                      f"network); their rows hold NaN and are flagged 'diverged'", highlight=False, soft_wrap=True)


def print_summary(summary: EvalSummary) -> None:
    """The end of a human-facing eval: the values table, the quiet not-applicable line, timings, files."""
    from ganbench.cli.common import console, esc, make_console, plain
    from ganbench.evaluate import not_applicable_line

    out = make_console()
    if len(summary.added) or summary.not_computed:
        out.print(values_table(summary))
    line = not_applicable_line(summary.not_computed)
    if line:
        out.print(plain(line, "dim"), soft_wrap=True)
    if timings_line(summary):
        out.print(plain(timings_line(summary)), soft_wrap=True)
    print_warnings(summary)
    files = ", ".join(esc(p) for p in summary.outputs)
    out.print(f"added {len(summary.added)} rows ({summary.skipped} metric computations already present) to {files}",
              highlight=False, soft_wrap=True)


@app.command("eval")
@handle_errors
def eval_(
    targets: list[Path] = typer.Argument(..., help="Run folders (holding network-snapshot-*.pt), folders of runs, "
                                                   "checkpoint files, or sets of generated images (a folder, .zip "
                                                   "or .npz of images: rows keyed by name + content hash)."),
    metrics: str = typer.Option("fid,kid,is,pr", "--metrics", "-m",
                                help="Comma-separated metric names (`ganbench metrics list`), e.g. "
                                     "fid,kid,is,pr,swd,ms_ssim,ppl_wend,ls."),
    n: Optional[int] = typer.Option(None, "--n", "--num-gen", help="Generated images per checkpoint; sets every metric's n_gen "
                                                      "(default: each metric's own, e.g. 50000 for fid50k_full, else 10000; "
                                                      "every image of an image set)."),
    real: Optional[str] = typer.Option(None, "--real", help="Real data: shapes, shapes:N, an image folder, .zip or .npz "
                                                            "(default: the data the checkpoint was trained on)."),
    real_stats: Optional[Path] = typer.Option(None, "--real-stats",
                                              help="Real statistics .npz (mu, sigma) for FID instead of real images: "
                                                   "`ganbench stats export`, pytorch-fid or clean-fid files."),
    real_features: Optional[Path] = typer.Option(None, "--real-features",
                                                 help="Real features .npz for FID, KID and PR instead of real images "
                                                      "(`ganbench stats export --features`)."),
    n_real: Optional[int] = typer.Option(None, "--n-real", help="Real images to use (default: all)."),
    extractor: str = typer.Option("shapes-net", "--extractor", "-e",
                                  help="Feature extractor (`ganbench extractors list`): shapes-net, inception, vgg16."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results CSV (default: <run folder>/results.csv)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (results are deterministic for a seed)."),
    device: str = typer.Option("auto", "--device", help=f"Device: {DEVICE_HELP}."),
    batch_size: int = typer.Option(64, "--batch-size",
                                   help="Images per generator / extractor batch. Latents and noise are drawn per "
                                        "batch, so another size gives other images: it is recorded in each row's "
                                        "params when it is not 64."),
    param: list[str] = typer.Option([], "--param", "-p",
                                    help="Metric parameter METRIC.NAME=VALUE (repeatable), e.g. ls.num_samples=2000."),
    keep_going: bool = typer.Option(False, "--keep-going",
                                    help="When a network outputs NaN/inf (diverged), write NaN rows flagged 'diverged' "
                                         "and go on instead of stopping with an error."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown", help="Ignore non-image files in a --real folder or zip."),
    mirror: bool = typer.Option(False, "--mirror", help="Add x-flipped copies of the real images (2N reals), as "
                                "NVlabs scores runs trained with --mirror (xflip) and as their published FIDs were "
                                "measured; eval warns when a run was trained so and this is not given."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only errors and warnings (for CI)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with the rows computed (for machines)."),
) -> None:
    """Evaluate checkpoints (sorted by kimg) and append one row per result to a results table; reruns skip done rows."""
    from ganbench.config import parse_metric_list, parse_metric_params
    from ganbench.devices import resolve_device
    from ganbench.evaluate import EvalOptions, evaluate, init_distributed, leave_distributed

    options = EvalOptions(metrics=parse_metric_list(metrics), real=real, n=n, n_real=n_real, extractor=extractor,
                          seed=seed, device=str(resolve_device(device)), batch_size=batch_size,
                          metric_params=parse_metric_params(param), keep_going=keep_going, skip_unknown=skip_unknown,
                          mirror=mirror, real_stats=real_stats, real_features=real_features)
    rank, _ = init_distributed(options.device)
    if rank != 0:  # under torchrun only rank 0 prints
        evaluate(targets, options, out=out)
        leave_distributed()
        return
    with warnings_as_lines(), EvalDisplay(quiet=quiet, lines_to_stderr=as_json) as display:
        summary = evaluate(targets, options, out=out, progress=display)
    leave_distributed()
    if as_json:
        typer.echo(summary_json(summary))
    elif not quiet:
        print_summary(summary)
    else:
        print_warnings(summary)
