"""The output every benchmark ends with: an aligned text table on stdout and the same rows as a CSV file."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence


def print_table(rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> None:
    """`rows` as left-aligned columns `fields` (missing values blank)."""
    widths = {f: max(len(f), *(len(str(r.get(f, ""))) for r in rows)) for f in fields}
    print("  ".join(f.ljust(widths[f]) for f in fields))
    for r in rows:
        print("  ".join(str(r.get(f, "")).ljust(widths[f]) for f in fields))


def write_csv(rows: Sequence[dict[str, Any]], fields: Sequence[str], csv_path: str | Path) -> Path:
    """Write `rows` (columns `fields`, others ignored) to `csv_path` atomically, say so, return the path."""
    from ganbench.checkpoint import atomic_write_bytes

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda f: f.write(buf.getvalue().encode()))
    print(f"wrote {path}")
    return path


def emit(rows: Sequence[dict[str, Any]], fields: Sequence[str], csv_path: str | Path) -> Path:
    """Print the table and write the CSV."""
    print_table(rows, fields)
    return write_csv(rows, fields, csv_path)
