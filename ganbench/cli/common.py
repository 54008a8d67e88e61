"""What every CLI command shares: one `fail()` exit path, the error wrapper, and the rich console."""

from __future__ import annotations

import functools
import os
from typing import Any, Callable, NoReturn

import typer
from rich.console import Console

from ganbench.errors import GanbenchError

console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print a one-line error and exit non-zero."""
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GanbenchError into a one-line message and exit code 2 (a traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GanbenchError as exc:
            if os.environ.get("GANBENCH_DEBUG"):
                raise
            fail(str(exc))

    return wrapper
