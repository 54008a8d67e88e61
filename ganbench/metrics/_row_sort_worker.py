"""The row-sorting kernel, and the worker process that runs it on shared memory (ganbench.metrics.row_sort).

Run as a script, never imported with the rest of ganbench: it needs numpy only, so it starts in ~0.1 s, and
numpy picks its sort kernels when this process imports it (ganbench.metrics.row_sort explains why that
matters). Protocol, one line per request on stdin: `start stop`; the reply on stdout is stop - start
float64 values, sum |sorted(a[r]) - sorted(b[r])| for r in start..stop-1, as raw bytes.

    python -P _row_sort_worker.py FD ROWS COLUMNS    # FD: a shared memory file holding a, then b, float32
"""

from __future__ import annotations

import mmap
import sys

import numpy as np


def sorted_abs_diff(a: np.ndarray, b: np.ndarray, rows: range, sums: np.ndarray) -> None:
    """sums[r] = sum |sorted(a[r]) - sorted(b[r])| in float64; a[r] and b[r] are overwritten (no temporaries)."""
    for r in rows:
        a[r].sort()
        b[r].sort()
        np.subtract(a[r], b[r], out=a[r])
        np.abs(a[r], out=a[r])
        sums[r] = a[r].sum(dtype=np.float64)


def serve(fd: int, rows: int, columns: int) -> None:
    """Answer requests on stdin until it closes."""
    shared = mmap.mmap(fd, 2 * rows * columns * 4)
    both = np.frombuffer(shared, dtype=np.float32).reshape(2, rows, columns)
    sums = np.zeros(rows)
    for line in sys.stdin:
        start, stop = (int(v) for v in line.split())
        sorted_abs_diff(both[0], both[1], range(start, stop), sums)
        sys.stdout.buffer.write(sums[start:stop].tobytes())
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it closes our stdin
    serve(*(int(v) for v in sys.argv[1:4]))
