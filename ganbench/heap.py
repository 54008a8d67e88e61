"""glibc heap policy: hand freed memory back between training phases; reuse it within a feature pass.

Between training phases (`release_free_heap`): glibc keeps memory freed in the middle of its heap mapped,
and its mmap threshold grows with every large block freed, so after a few steps most tensors of a large
CPU model come from a heap that fragments: a StyleGAN3-R 64 px step at batch 4 peaked at 5.4 GB RSS for
about 4.5 GB of live tensors (benchmarks/train_speed.py). `malloc_trim(0)` returns every free page, but the
next phase then faults those pages in again, which cost 15-20 % on a tiny model's 50 ms steps; so the trim
runs only when the heap holds at least `min_free` bytes of free memory, which only large models reach.
Elsewhere (macOS, musl) nothing happens, and GANBENCH_TRIM_HEAP=0 turns it off (benchmarks/train_speed.py
--heap both measures the two side by side).

Within a feature pass (`reuse_freed_memory`): glibc serves every block above its mmap threshold (at most
32 MiB) with a fresh mmap and unmaps it on free, so each Inception batch of 32 at 299 px faulted in its
100-180 MB activations page by page, ~265k page faults (1 GB) per batch. On a 2-core Zen 4 VM first touch
ran at ~5 GB/s against ~22 GB/s for a copy into memory already mapped; the pass ran at 14.6-15.0 images/s
against 17.0-17.3 with the scope (benchmarks/metric_speed.py, "glibc default heap" row). Within the scope
mmap is off and the heap is never trimmed, so from the third batch on a pass faults in no page at all. On
leaving it glibc gets fixed thresholds (32 MiB mmap, 64 MiB trim: where its own dynamic rule settles once
large tensors have been freed; setting any threshold turns that rule off) and the free pages go back to
the OS. GANBENCH_REUSE_HEAP=0 turns it off.

Training phases may run in the same scope (`training_phase`), but only when asked for with
GANBENCH_TRAIN_REUSE_HEAP=1: on a Zen 4 VM, paper networks at 64 px, batch 4 (benchmarks/train_speed.py
--heap reuse), StyleGAN3-R went from 44.5 to 38.4 s per step and StyleGAN3-T from 42.4 to 39.2, StyleGAN2
stayed at 12.0, but the peaks grew by 8-17 % (StyleGAN3-R 4028 -> 4708 MiB, at the edge of its 5 GB
budget), so it is not the default.

Around FID's float64 algebra (`numpy_small_pages`): numpy advises transparent huge pages
(MADV_HUGEPAGE) for every array of 4 MiB or more, and FID makes a dozen 2048² float64 arrays (32 MiB
each). On the Zen 4 VM each 2 MiB page cost ~60 us of kernel time to fault in (zeroing, compaction after
a pass), so the first FID after a pass took 0.45-0.52 s, 0.3-0.4 s of it system time, against 0.18-0.25 s
with the advice off; later calls took the same either way (0.12-0.13 s), so the advice buys nothing here.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator

MIN_FREE = 256 * 2 ** 20
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4   # mallopt parameters (malloc.h)
AFTER_MMAP_THRESHOLD = 32 * 2 ** 20      # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: its dynamic ceiling
AFTER_TRIM_THRESHOLD = 2 * AFTER_MMAP_THRESHOLD   # the dynamic rule keeps trim at twice the mmap threshold
GLIBC_MMAP_MAX = 65536                   # glibc's default count of mmapped blocks


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
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
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


class _ProcessSetting:
    """A process-wide setting that nested scopes share: the first scope in applies it, the last one out
    restores what `apply` returned (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.depth = 0
        self.saved: Any = None

    @contextmanager
    def scope(self, apply: Any, restore: Any) -> Iterator[bool]:
        with self.lock:
            if self.depth == 0:
                self.saved = apply()
            self.depth += 1
        try:
            yield True
        finally:
            with self.lock:
                self.depth -= 1
                if self.depth == 0:
                    restore(self.saved)


_REUSE = _ProcessSetting()
_SMALL_PAGES = _ProcessSetting()


def reusing_freed_memory() -> bool:
    """Whether a `reuse_freed_memory` scope is open (and in effect) in this process."""
    return _REUSE.depth > 0


@contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """Within: large blocks come from the heap and are reused after free (no mmap, no trim); see the module doc.

    Nested scopes are one scope: only the outermost sets and restores. Yields whether it is in effect
    (False off glibc or with GANBENCH_REUSE_HEAP=0)."""
    libc = _glibc()
    if libc is None or os.environ.get("GANBENCH_REUSE_HEAP", "1") == "0":
        yield False
        return

    def apply() -> None:
        libc.mallopt(M_MMAP_MAX, 0)
        libc.mallopt(M_TRIM_THRESHOLD, 2 ** 31 - 1)

    def restore(_: None) -> None:
        libc.mallopt(M_MMAP_THRESHOLD, AFTER_MMAP_THRESHOLD)
        libc.mallopt(M_TRIM_THRESHOLD, AFTER_TRIM_THRESHOLD)
        libc.mallopt(M_MMAP_MAX, GLIBC_MMAP_MAX)
        libc.malloc_trim(0)

    with _REUSE.scope(apply, restore) as on:
        yield on


def _numpy_hugepage_switch() -> Any:
    """numpy's private `_set_madvise_hugepage(flag) -> previous` (numpy 1.x and 2.x), or None."""
    import numpy as np

    core = getattr(np, "_core", None) or getattr(np, "core", None)
    return getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)


@contextmanager
def numpy_small_pages() -> Iterator[bool]:
    """Within: numpy's large arrays are not advised to use huge pages (see the module doc).

    Nested scopes are one scope; the outermost restores numpy's previous setting. Yields whether it is
    in effect (False when numpy has no such switch)."""
    switch = _numpy_hugepage_switch()
    if switch is None:
        yield False
        return
    with _SMALL_PAGES.scope(lambda: bool(switch(False)), switch) as on:
        yield on


@contextmanager
def training_phase(device: Any) -> Iterator[bool]:
    """The heap policy around one training phase on CPU (elsewhere nothing): the free heap goes back to the
    OS first (`release_free_heap`), and with GANBENCH_TRAIN_REUSE_HEAP=1 the phase runs in
    `reuse_freed_memory`. Yields whether the reuse is in effect."""
    import torch

    if torch.device(device).type != "cpu":
        yield False
        return
    release_free_heap()     # large models: the phase's peak no longer sits on the last one's holes
    if os.environ.get("GANBENCH_TRAIN_REUSE_HEAP", "0") != "1":
        yield False
        return
    with reuse_freed_memory() as on:
        yield on
