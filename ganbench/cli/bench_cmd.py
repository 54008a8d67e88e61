"""`ganbench bench SUITE`: train (or reuse), evaluate, report and check a suite from benchmarks.toml."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

import typer

from ganbench.cli import app
from ganbench.cli.common import console, esc, fail, handle_errors


@app.command("bench")
@handle_errors
def bench(
    suite: Optional[str] = typer.Argument(None, help="Suite name in benchmarks.toml (e.g. smoke, paper)."),
    out: Path = typer.Option(Path("reports"), "--out", "-o",
                             help="Output folder: runs/, results-<suite>.csv, leaderboard-<suite>.csv/.html, baseline."),
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="Suite file (default: ./benchmarks.toml, else the one shipped with ganbench)."),
    list_: bool = typer.Option(False, "--list", help="List the suites in the file and exit."),
    skip_unknown: bool = typer.Option(False, "--skip-unknown",
                                      help="Ignore non-image files in the suite's dataset folder or zip "
                                           "(as the suite key skip_unknown = true)."),
) -> None:
    """Run a named suite end to end; exit 1 when a metric regressed beyond the suite's tolerances."""
    from ganbench.bench import run_suite
    from ganbench.cli.check_cmd import print_check_table, print_unchecked
    from ganbench.cli.eval_cmd import progress_bar
    from ganbench.config import default_benchmarks_path, load_suite, load_suites

    if list_:
        for name, s in load_suites(config or default_benchmarks_path()).items():
            typer.echo(f"{name}: {s.description or s.dataset}")
        return
    if suite is None:
        fail("give a suite name, e.g. `ganbench bench smoke` (`ganbench bench --list` shows them)")
    spec = load_suite(suite, config)
    if skip_unknown:
        spec = dataclasses.replace(spec, skip_unknown=True)
    log = lambda msg: console.print(f"[bold]bench {esc(spec.name)}:[/] {esc(msg)}", highlight=False, soft_wrap=True)  # noqa: E731
    result = run_suite(spec, out, progress=progress_bar, train_progress=True, log=log)
    typer.echo(f"results: {result.results}")
    typer.echo(f"leaderboard: {result.leaderboard_html} ({result.leaderboard_csv.name})")
    if result.baseline_created:
        typer.echo(f"baseline: created {result.baseline} (later runs are checked against it)")
        return
    if result.refused:
        typer.echo(f"check FAILED: no baseline written: {result.refused}")
        raise typer.Exit(1)
    assert result.check is not None
    table = result.check.table
    if result.check.passed:
        print_unchecked(table)
        typer.echo(f"check passed against {result.baseline}")
        return
    print_check_table(table, only_failures=result.check.judged > 0)
    if (table["status"] == "not comparable").any():
        typer.echo(f"the baseline was made with other settings (see the notes): to accept this suite's settings, "
                   f"delete {result.baseline} and run the suite again")
    typer.echo(f"check FAILED against {result.baseline}")
    raise typer.Exit(1)
