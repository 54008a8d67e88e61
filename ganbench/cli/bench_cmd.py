"""`ganbench bench`."""

from __future__ import annotations

from ganbench.cli import app
from ganbench.cli.common import fail


@app.command("bench")
def bench() -> None:
    """Not available yet: lands with issue 7 (orchestrator)."""
    fail("`ganbench bench` is not available in this build yet (issue 7 (orchestrator))")
