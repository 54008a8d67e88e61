"""What every CLI command shares: one `fail()` exit path, the error wrapper, and the rich consoles.

Every string a user can influence (paths, run folder names, extractor specs, error messages) reaches
rich only through `esc()` (inside markup) or `plain()` (a table cell), and every console comes from
`make_console()`, which turns emoji codes off: `run[red]` prints as `run[red]`, `[/]` cannot crash
rich's markup parser, and `:smile:` stays text.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from ganbench.errors import GanbenchError

# OSErrors that describe the user's file system, not a bug: a one-line error naming the file, like a GanbenchError.
FILE_SYSTEM_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
                      errno.EISDIR, errno.EEXIST, errno.ENOENT, errno.ENAMETOOLONG, errno.EFBIG}
LOG_WIDTH = 200  # logs and CI are not terminals: rich would assume 80 columns and wrap every name


def make_console(stderr: bool = False, **kwargs: Any) -> Console:
    """A rich console that renders our markup but never emoji codes; as wide as a log line off a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    if "width" not in kwargs and "file" not in kwargs and not stream.isatty():
        kwargs["width"] = LOG_WIDTH
    return Console(stderr=stderr, emoji=False, **kwargs)


def esc(value: Any) -> str:
    """A user-supplied value as markup-safe text, for f-strings that rich renders as markup."""
    return escape(str(value))


def plain(value: Any, style: str = "") -> Text:
    """A user-supplied value as a rich Text: rendered literally (no markup, no emoji) in tables and columns."""
    return Text(str(value), style=style)


def description_column() -> TextColumn:
    """The progress column showing a task's description literally (descriptions carry run names and paths)."""
    return TextColumn("{task.description}", markup=False)


console = Console(stderr=True, emoji=False)


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


def shows_progress_bar() -> bool:
    """Whether a progress bar is drawn: only when stderr (where `console` writes) is a terminal, as `eval` decides.

    A log file or a pipe gets no bar (rich would leave a line of bar characters in it), only the plain lines.
    """
    return console.is_terminal


@contextmanager
def progress_bar(description: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr (stdout stays clean for data) on a terminal only; yields `advance(k)`.

    Off a terminal nothing is drawn and `advance` does nothing.
    """
    if not shows_progress_bar():
        yield lambda k=1: None
        return
    columns = (description_column(), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
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


def os_error_line(exc: OSError) -> str:
    """`<file>: <what the file system said>`, naming the path the user gave rather than our temp file."""
    path = Path(str(exc.filename))
    temp = re.match(r"^\.(.+)\.[A-Za-z0-9_]{6,}\.tmp$", path.name)   # atomic writes go through .NAME.XXXXXX.tmp
    if temp:
        path = path.with_name(temp.group(1))
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            return f"cannot write {path}: {'it' if blocker == path else blocker} is a file, not a folder"
    second = f" -> {exc.filename2}" if exc.filename2 else ""
    return f"{path}{second}: {exc.strerror or os.strerror(exc.errno or 0)}"


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn GanbenchError into a one-line message and exit code 2 (a traceback with --debug).

    So is an OSError about a named file that the file system refused (read-only, full, no permission, a file
    where a folder should be): every command that writes gets it, also where no check anticipated it.
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
        except OSError as exc:
            if debug_enabled() or exc.errno not in FILE_SYSTEM_ERRNOS or not exc.filename:
                raise
            fail(os_error_line(exc))
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            fail("interrupted", code=130)

    return wrapper
