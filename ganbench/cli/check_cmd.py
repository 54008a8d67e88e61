"""`ganbench check`."""

from __future__ import annotations

from ganbench.cli import app
from ganbench.cli.common import fail


@app.command("check")
def check() -> None:
    """Not available yet: lands with issue 7 (orchestrator)."""
    fail("`ganbench check` is not available in this build yet (issue 7 (orchestrator))")
