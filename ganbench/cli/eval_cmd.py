"""`ganbench eval`: every checkpoint x every metric -> rows of a results table (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ganbench.cli import app
from ganbench.cli.common import handle_errors


def progress_bar():
    """The rich progress display shared by eval and bench (stderr, transient-free so logs keep it)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ganbench.cli.common import console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def report_not_computed(items: list[tuple[str, str, str, str]]) -> None:
    """Warn about metrics that do not apply to some checkpoints (one line per run and metric)."""
    from ganbench.cli.common import console

    seen = set()
    for run, _, metric, why in items:
        if (run, metric) not in seen:
            seen.add((run, metric))
            console.print(f"[yellow]warning:[/] {metric} not computed for {run}: {why}", highlight=False,
                          soft_wrap=True)


@app.command("eval")
@handle_errors
def eval_(
    targets: list[Path] = typer.Argument(..., help="Run folders (holding network-snapshot-*.pt), folders of runs, "
                                                   "or checkpoint files."),
    metrics: str = typer.Option("fid,kid,is,pr", "--metrics", "-m",
                                help="Comma-separated metric names (see the metrics registry), e.g. "
                                     "fid,kid,is,pr,swd,ms_ssim,ppl_wend,ls."),
    n: Optional[int] = typer.Option(None, "--n", "--num-gen", help="Generated images per checkpoint; sets every metric's n_gen "
                                                      "(default: each metric's own, e.g. 50000 for fid50k_full, else 10000)."),
    real: Optional[str] = typer.Option(None, "--real", help="Real data: shapes, shapes:N, an image folder, .zip or .npz "
                                                            "(default: the data the checkpoint was trained on)."),
    n_real: Optional[int] = typer.Option(None, "--n-real", help="Real images to use (default: all)."),
    extractor: str = typer.Option("shapes-net", "--extractor", "-e", help="Feature extractor: inception, shapes-net, ..."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Results CSV (default: <run folder>/results.csv)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (results are deterministic for a seed)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, ..."),
    batch_size: int = typer.Option(64, "--batch-size", help="Images per generator / extractor batch."),
    param: list[str] = typer.Option([], "--param", "-p",
                                    help="Metric parameter METRIC.NAME=VALUE (repeatable), e.g. ls.num_samples=2000."),
) -> None:
    """Evaluate checkpoints (sorted by kimg) and append one row per result to a results table; reruns skip done rows."""
    from ganbench.config import parse_metric_list, parse_metric_params
    from ganbench.evaluate import EvalOptions, evaluate, init_distributed, leave_distributed

    options = EvalOptions(metrics=parse_metric_list(metrics), real=real, n=n, n_real=n_real, extractor=extractor,
                          seed=seed, device=device, batch_size=batch_size, metric_params=parse_metric_params(param))
    rank, _ = init_distributed(device)
    if rank == 0:
        with progress_bar() as progress:
            summary = evaluate(targets, options, out=out, progress=progress)
        leave_distributed()
        files = ", ".join(str(p) for p in summary.outputs)
        typer.echo(f"added {len(summary.added)} rows ({summary.skipped} metric computations already present) to {files}")
        report_not_computed(summary.not_computed)
    else:
        evaluate(targets, options, out=out)
        leave_distributed()
