"""The `ganbench` command line: thin wrappers over library functions that return data."""

from __future__ import annotations

import os
from typing import Any

import typer
from typer.core import TyperGroup

from ganbench import __version__

# click's UsageError, wherever this typer keeps click (a vendored copy in recent versions, the package before)
USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _OneLineUsageErrors(TyperGroup):
    """A mistyped option or a missing argument is one line and exit code 2, like every other error, not typer's
    four-line boxed usage message (a log file or CI output shows the reason on the line that says 'error:')."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except USAGE_ERROR as exc:
            _usage_error(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)   # each subcommand's arguments are parsed in here
        except USAGE_ERROR as exc:
            _usage_error(exc, ctx)


def _usage_error(exc: Any, ctx: Any = None) -> Any:
    """One line for a usage error; a command group run without arguments still shows its help. An error without
    its command's context ("Option '--out' requires an argument") names the command the group was invoking."""
    if type(exc).__name__ == "NoArgsIsHelpError":
        raise exc
    from ganbench.cli.common import fail

    if exc.ctx is not None:
        where = exc.ctx.command_path
    elif ctx is not None:
        where = " ".join(part for part in (ctx.command_path, getattr(ctx, "invoked_subcommand", None)) if part)
    else:
        where = "ganbench"
    fail(f"{exc.format_message()} (see '{where} --help')", code=exc.exit_code)


app = typer.Typer(cls=_OneLineUsageErrors, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
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
