"""The output every benchmark ends with: an aligned text table on stdout and the same rows as CSV."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Sequence


def emit(rows: Sequence[dict[str, Any]], fields: Sequence[str], csv_path: str | Path) -> Path:
    """Print `rows` as a table with the `fields` columns, write them to `csv_path`, return that path."""
    widths = {f: max(len(f), *(len(str(r.get(f, ""))) for r in rows)) for f in fields}
    print("  ".join(f.ljust(widths[f]) for f in fields))
    for r in rows:
        print("  ".join(str(r.get(f, "")).ljust(widths[f]) for f in fields))
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
    return path
