"""`ganbench check`: compare results with a baseline; exit 1 on a regression (wire it into CI)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from ganbench.cli import app
from ganbench.cli.common import handle_errors, make_console, plain

STATUS_STYLE = {"regressed": "bold red", "missing": "bold red", "not a number": "bold red", "improved": "green",
                "ok": "green", "new": "yellow", "unchecked": "dim"}


def _num(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.5g}"


def print_check_table(table: pd.DataFrame, only_failures: bool = False, console: Console | None = None) -> None:
    """Print a comparison table (all rows, or only those that fail)."""
    from ganbench.regress import FAILING

    rows = table[table["status"].isin(FAILING)] if only_failures else table
    out = Table(title="regressions" if only_failures else "comparison with baseline")
    for col in ("run", "metric", "extractor", "baseline", "current", "delta", "tolerance", "status"):
        out.add_column(col, justify="right" if col in ("baseline", "current", "delta") else "left", no_wrap=True)
    for r in rows.itertuples(index=False):
        style = STATUS_STYLE.get(r.status, "")
        out.add_row(plain(r.run), plain(r.metric), plain(r.extractor), _num(r.baseline), _num(r.current),
                    _num(r.delta), plain(r.tolerance if r.status != "unchecked" else ""), plain(r.status, style))
    (console or make_console()).print(out)  # wide off a terminal, so logs and CI do not wrap every name


@app.command("check")
@handle_errors
def check(
    results: list[Path] = typer.Argument(..., help="Results CSV file(s) written by `ganbench eval`."),
    baseline: Path = typer.Option(..., "--baseline", "-b", help="Baseline CSV to compare against."),
    tolerance: str = typer.Option("", "--tolerance", "-t",
                                  help="Allowed worsening per result key or metric, e.g. fid=+0.5,is=-0.2,kid=+5%; "
                                       "`*=...` sets the default (otherwise any worsening fails)."),
    update_baseline: bool = typer.Option(False, "--update-baseline",
                                         help="Write the current results as the new baseline (atomically) and exit 0."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every compared key, not only failures."),
) -> None:
    """Compare RESULTS with a baseline, direction-aware: exit 0 within tolerance, 1 with a table of regressions."""
    from ganbench.config import parse_tolerances
    from ganbench.regress import check_files, write_baseline
    from ganbench.results import read_many

    tolerances = parse_tolerances(tolerance)
    if update_baseline:
        written = write_baseline(baseline, read_many(results))
        typer.echo(f"wrote baseline {baseline} ({len(written)} values from {len(results)} results file(s))")
        return
    report = check_files(results, baseline, tolerances)
    t = report.table
    counts = t["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if verbose or not report.passed:
        print_check_table(t, only_failures=not verbose)
    new = t[t["status"] == "new"]
    if len(new) and not verbose:
        keys = ", ".join(f"{r.run}/{r.metric} [{r.extractor}]" for r in new.itertuples())
        typer.echo(f"not in the baseline (not checked): {keys}")
    if report.passed:
        typer.echo(f"check passed: {summary}")
        return
    typer.echo(f"check FAILED: {summary}")
    raise typer.Exit(1)
