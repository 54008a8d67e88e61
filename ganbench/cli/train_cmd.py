"""`ganbench train`."""

from __future__ import annotations

from ganbench.cli import app
from ganbench.cli.common import fail


@app.command("train")
def train() -> None:
    """Not available yet: lands with issue 3 (model zoo I)."""
    fail("`ganbench train` is not available in this build yet (issue 3 (model zoo I))")
