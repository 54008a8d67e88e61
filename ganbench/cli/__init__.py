"""The `ganbench` command line: thin wrappers over library functions that return data."""

from __future__ import annotations

import os

import typer

from ganbench import __version__

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
                  help="Train the ProGAN -> StyleGAN3 family and measure them with the standard GAN metrics.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ganbench {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """ganbench: one CLI for training and evaluating GANs."""
    if debug and not os.environ.get("GANBENCH_DEBUG"):
        # For this invocation only: an in-process caller (tests, notebooks) keeps its environment.
        os.environ["GANBENCH_DEBUG"] = "1"
        ctx.call_on_close(lambda: os.environ.pop("GANBENCH_DEBUG", None))


# Each module below adds its commands to `app`; one module per command group.
from ganbench.cli import (  # noqa: E402,F401
    assets_cmd, bench_cmd, check_cmd, datasets_cmd, eval_cmd, generate_cmd, metrics_cmd, report_cmd, stats_cmd, train_cmd,
    zoo_cmd,
)
