"""`ganbench check`: compare results with a baseline; exit 1 on a regression, 2 on bad input (wire it into CI)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ganbench.cli import app
from ganbench.cli.common import handle_errors, make_console, plain

STATUS_STYLE = {"regressed": "bold red", "diverged": "bold red", "not a number": "bold red",
                "not comparable": "bold red", "improved": "green", "ok": "green", "new": "yellow", "unchecked": "dim"}


def _num(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):.5g}"


def _spread(mean: object, std: object) -> str:
    if mean is None or pd.isna(mean):
        return ""
    return _num(mean) + (f" \u00b1 {_num(std)}" if std is not None and not pd.isna(std) else "")


def _kimg(value: object) -> str:
    return "" if value is None or pd.isna(value) else f"{float(value):g}"


def print_check_table(table: pd.DataFrame, only_failures: bool = False, allow_missing: bool = False,
                      console: Console | None = None) -> None:
    """Print a comparison table (all rows, or only those that fail), with the margin each verdict used."""
    from ganbench.regress import FAILING

    failing = [s for s in FAILING if not (allow_missing and s == "not comparable")]
    rows = table[table["status"].isin(failing)] if only_failures else table
    out = Table(title="regressions" if only_failures else "comparison with baseline")
    numeric = ("kimg", "baseline", "current", "seeds", "delta", "margin")
    for col in ("run", "kimg", "metric", "settings", *numeric[1:], "status", "note"):
        out.add_column(col, justify="right" if col in numeric else "left", no_wrap=col not in ("note",))
    for r in rows.itertuples(index=False):
        style = STATUS_STYLE.get(r.status, "")
        seeds = f"{int(r.baseline_count)} / {int(r.current_count)}"
        margin = f"{_num(r.margin)} ({r.margin_from})" if r.margin_from else ""
        status = f"[{style}]{escape(r.status)}[/]" if style else escape(r.status)
        out.add_row(escape(str(r.run)), _kimg(r.kimg), escape(str(r.metric)), escape(str(r.settings)),
                    _spread(r.baseline, r.baseline_std), _spread(r.current, r.current_std), seeds, _num(r.delta),
                    escape(margin), status, escape(str(r.note)))
    (console or make_console()).print(out)  # wide off a terminal, so logs and CI do not wrap every name


def _keys(rows: pd.DataFrame) -> str:
    return ", ".join(f"{r.run}/{r.metric}@{_kimg(r.kimg)} [{r.settings}]" for r in rows.itertuples())


def print_unchecked(table: pd.DataFrame, allow_missing: bool = False) -> None:
    """One line each for the groups a passing check did not judge: new ones, and missing ones it was allowed."""
    new = table[(table["status"] == "new") & (table["note"] == "not in the baseline")]
    if len(new):
        typer.echo(f"not in the baseline (not checked): {_keys(new)}")
    missing = table[table["status"] == "not comparable"]
    if allow_missing and len(missing):
        typer.echo(f"not comparable, allowed by --allow-missing: {_keys(missing)}")


@app.command("check")
@handle_errors
def check(
    results: list[Path] = typer.Argument(..., help="Results CSV file(s) written by `ganbench eval`."),
    baseline: Path = typer.Option(..., "--baseline", "-b", help="Baseline CSV to compare against."),
    tolerance: str = typer.Option("", "--tolerance", "-t",
                                  help="Allowed worsening per result key or metric, e.g. fid=+0.5,is=-0.2,kid=+5%: a "
                                       "sign must point the worse way (+ when lower is better, - when higher is); "
                                       "`*=1%` (unsigned) sets the default; a key given twice combines an "
                                       "absolute and a relative part. Adds to / overrides the \\[check] table "
                                       "of benchmarks.toml."),
    k: Optional[float] = typer.Option(None, "--k", help="Noise allowance: a group may worsen by k x the combined "
                                                        "seed std of the two means (default: \\[check] k, else 3)."),
    allow_missing: bool = typer.Option(False, "--allow-missing",
                                       help="Do not fail on baseline groups with no results of the same settings."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="benchmarks.toml whose \\[check] table gives k and tolerances "
                                               "(default: ./benchmarks.toml, else the one shipped with ganbench)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Use this suite's tolerances and k from the file."),
    update_baseline: bool = typer.Option(False, "--update-baseline",
                                         help="Write the current results as the new baseline (atomically) and exit 0."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show every compared group, not only failures."),
) -> None:
    """Compare RESULTS with a baseline group by group (same run, snapshot, metric and settings; seeds averaged).

    Exit 0: no group worse than its margin; 1: a regression, a diverged or non-numeric value, a baseline
    group with no comparable results, or no group compared at all; 2: bad input (unreadable or empty files,
    a tolerance that is not NAME=+0.5, NAME=-0.2, NAME=0.5, NAME=+5% or an unsigned *=1%, an unknown tolerance
    key or one whose sign points the better way, the baseline being a results file).
    """
    from ganbench.config import default_benchmarks_path, load_check_settings, load_suite
    from ganbench.regress import (check_files, parse_tolerance_option, refuse_same_file, validate_tolerance_file,
                                  validate_tolerances, write_baseline)
    from ganbench.results import read_many

    # Every option is validated before any file is read. The file's tolerances are checked as written there,
    # so an error names the file, its table and the entry.
    source = config if config is not None else default_benchmarks_path()
    if config is not None or source.is_file():
        validate_tolerance_file(source, suite)
    settings = load_suite(suite, config).check_settings() if suite else load_check_settings(config)
    where = f"{settings.source} [check]" if settings.source else "[check]"
    validate_tolerances(settings.tolerances, where if not suite else f"{settings.source} [suites.{suite}]")
    cli_tolerances = parse_tolerance_option(tolerance)
    settings = settings.overridden(cli_tolerances, k)
    refuse_same_file(baseline, results)
    if update_baseline:
        written = write_baseline(baseline, read_many(results))
        typer.echo(f"wrote baseline {baseline} ({len(written)} group(s) from {len(results)} results file(s))")
        return
    report = check_files(results, baseline, settings.tolerances, k=settings.k, allow_missing=allow_missing)
    t = report.table
    counts = t["status"].value_counts().to_dict()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    if verbose or not report.passed:
        print_check_table(t, only_failures=not verbose and report.judged > 0, allow_missing=allow_missing)
    if not verbose:
        print_unchecked(t, allow_missing)
    typer.echo(f"margin = max(tolerance, {settings.k:g} x combined seed std)"
               + (f"; settings from {settings.source}" if settings.source else ""))
    if report.passed:
        typer.echo(f"check passed: {summary}")
        return
    if report.judged == 0:
        typer.echo(f"check FAILED: no group was compared with the baseline ({summary}): the results and the "
                   "baseline share no run, snapshot, metric and settings with a better direction")
    else:
        typer.echo(f"check FAILED: {summary}")
    raise typer.Exit(1)
