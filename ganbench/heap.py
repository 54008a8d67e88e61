"""Hand freed heap memory back to the operating system between training phases (glibc only).

glibc keeps memory freed in the middle of its heap mapped, and its mmap threshold grows with every large
block freed, so after a few steps most tensors of a large CPU model come from a heap that fragments: a
StyleGAN3-R 64 px step at batch 4 peaked at 5.4 GB RSS for about 4.5 GB of live tensors (benchmarks/
train_speed.py). `malloc_trim(0)` returns every free page, but the next phase then faults those pages in
again, which cost 15-20 % on a tiny model's 50 ms steps; so the trim runs only when the heap holds at least
`min_free` bytes of free memory, which only large models reach. Elsewhere (macOS, musl) nothing happens,
and GANBENCH_TRIM_HEAP=0 turns it off (benchmarks/train_speed.py --heap both measures the two side by side).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from functools import lru_cache
from typing import Any

MIN_FREE = 256 * 2 ** 20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]


@lru_cache(maxsize=1)
def _glibc() -> Any:
    """The C library when it is glibc with mallinfo2 (2.33+) and malloc_trim, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def free_heap_bytes() -> int | None:
    """Bytes glibc holds free in its heaps (mallinfo2's fordblks), or None off glibc."""
    libc = _glibc()
    return None if libc is None else int(libc.mallinfo2().fordblks)


def release_free_heap(min_free: int = MIN_FREE) -> bool:
    """malloc_trim(0) when at least `min_free` bytes sit free in the heap; True when it trimmed."""
    if os.environ.get("GANBENCH_TRIM_HEAP", "1") == "0":
        return False
    free = free_heap_bytes()
    if free is None or free < min_free:
        return False
    _glibc().malloc_trim(0)
    return True
