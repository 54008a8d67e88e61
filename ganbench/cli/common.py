"""What every CLI command shares: one `fail()` exit path, the error wrapper, and the rich console."""

from __future__ import annotations

import functools
import os
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Iterator, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ganbench.errors import GanbenchError

console = Console(stderr=True)


def debug_enabled() -> bool:
    """True when the user asked for full tracebacks (`--debug` or GANBENCH_DEBUG=1)."""
    return os.environ.get("GANBENCH_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def one_line(message: str) -> str:
    """Collapse a message onto one line, so every error prints as exactly one line."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip()) or "unknown error"


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    console.print(f"[bold red]error:[/] {escape(one_line(message))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (stdout stays clean for data); yields `advance(k)`."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(description, total=total)
        yield lambda k=1: bar.advance(task, k)


@contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Print Python UserWarnings raised inside the block as one `warning:` line each, not source locations."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            yield
        finally:
            for w in caught:
                console.print(f"[yellow]warning:[/] {escape(one_line(str(w.message)))}", highlight=False, soft_wrap=True)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GanbenchError into a one-line message and exit code 2 (a traceback with --debug).

    Ctrl-C exits with code 130 and one line; any other exception is a bug and keeps its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GanbenchError as exc:
            if debug_enabled():
                raise
            fail(str(exc))
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            fail("interrupted", code=130)

    return wrapper
