"""`ganbench report`: results tables -> leaderboard.csv + self-contained leaderboard.html."""

from __future__ import annotations

from pathlib import Path

import typer

from ganbench.cli import app
from ganbench.cli.common import handle_errors
from ganbench.errors import ConfigError


@app.command("report")
@handle_errors
def report(
    results: list[Path] = typer.Argument(..., help="Results CSV file(s) written by `ganbench eval`."),
    out: Path = typer.Option(Path("reports"), "--out", "-o", help="Folder for leaderboard.csv and leaderboard.html."),
    title: str = typer.Option("ganbench leaderboard", "--title", help="Page title."),
) -> None:
    """Write the leaderboard: runs ranked by FID at their best snapshot (all metrics of that snapshot, mean ± std over
    seeds), a section per run (every snapshot, plots, losses, config, real vs generated grid)."""
    from ganbench.report import find_run_dirs, write_report
    from ganbench.results import read_many

    df = read_many(results)
    if df.empty:   # a header-only table would replace a leaderboard with an empty one
        raise ConfigError(f"the results ({', '.join(str(p) for p in results)}) have no rows; nothing was written "
                          f"to {out}")
    files = write_report(df, out, run_dirs=find_run_dirs(df, results), title=title,
                         sources=[str(p) for p in results])
    typer.echo(f"wrote {files.csv} and {files.html} ({df['run'].nunique()} runs, {df['metric'].nunique()} metric keys)")
