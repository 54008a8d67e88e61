"""`ganbench report`."""

from __future__ import annotations

from ganbench.cli import app
from ganbench.cli.common import fail


@app.command("report")
def report() -> None:
    """Not available yet: lands with issue 7 (orchestrator)."""
    fail("`ganbench report` is not available in this build yet (issue 7 (orchestrator))")
