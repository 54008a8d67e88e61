"""`ganbench eval`."""

from __future__ import annotations

from ganbench.cli import app
from ganbench.cli.common import fail


@app.command("eval")
def eval() -> None:
    """Not available yet: lands with issue 7 (orchestrator)."""
    fail("`ganbench eval` is not available in this build yet (issue 7 (orchestrator))")
