"""Many long float32 rows sorted in pairs: sum |sorted(a[r]) - sorted(b[r])| per row (SWD's inner loop).

numpy sorts float32 with x86-simd-sort, and picks that library's kernels once, when it is imported. On AMD
family 0x19 CPUs with AVX-512 (Zen 4) it picks the AVX-512 kernels, whose memory-destination compress
stores are microcoded there: on a Zen 4 EPYC (family 25, model 17), numpy 2.4 took 42 ms for 1.28M floats
against 7 ms with its AVX2 kernel on the same CPU. So on such a CPU, worker processes sort the rows. Their
numpy is imported with the AVX-512 kernels switched off (NPY_DISABLE_CPU_FEATURES). The rows live in shared
memory (memfd), so nothing is copied, and the workers start while the caller fills the first rows.
Elsewhere, and for jobs too small to pay the workers' start (~0.13 s each, mostly importing numpy), threads
of this process sort them (numpy's sort releases the GIL). Either way the sorted rows are the same. The
float64 sums agree to ~1e-15, since numpy may add with other vector widths. GANBENCH_SORT_PROCESSES=1 or 0
forces the choice.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ganbench.metrics._row_sort_worker import sorted_abs_diff

WORKER = Path(__file__).with_name("_row_sort_worker.py")
MIN_PROCESS_ELEMENTS = 1 << 24  # values sorted in all (~0.5 s at the slow speed); below this, threads
# numpy 2.x's names for its AVX-512 dispatch targets, then numpy 1.x's; a name numpy lacks is only warned about.
_NO_AVX512 = "X86_V4 AVX512_ICL AVX512_SPR AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL"


def slow_numpy_sort(cpuinfo: str | None = None) -> bool:
    """True for an AMD family 0x19 CPU with AVX-512 (Zen 4), from /proc/cpuinfo text (read when None)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip() and fields:
            break  # the first processor's block is enough
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return (fields.get("vendor_id") == "AuthenticAMD" and fields.get("cpu family") == "25"
            and "avx512f" in fields.get("flags", "").split())


def use_processes(elements: int) -> bool:
    """Whether sorting `elements` values in all should go to worker processes (module docstring)."""
    forced = os.environ.get("GANBENCH_SORT_PROCESSES", "")
    if forced in ("0", "1"):
        return forced == "1"
    return (elements >= MIN_PROCESS_ELEMENTS and sys.platform.startswith("linux") and hasattr(os, "memfd_create")
            and slow_numpy_sort())


class RowSorter(ABC):
    """Buffers `a`, `b` [rows, columns] float32 to fill; `sums(n)` sorts their first n rows in pairs."""

    a: np.ndarray
    b: np.ndarray

    @abstractmethod
    def sums(self, n: int) -> np.ndarray:
        """sum |sorted(a[r]) - sorted(b[r])| for r < n, float64; rows of `a` and `b` are overwritten."""

    @abstractmethod
    def close(self) -> None:
        """Stop the threads or workers and release the buffers."""

    def __enter__(self) -> "RowSorter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spans(n: int, workers: int) -> list[range]:
    """Rows 0..n-1 cut into at most `workers` contiguous, non-empty ranges of near-equal length."""
    return [range(int(s[0]), int(s[-1]) + 1) for s in np.array_split(np.arange(n), min(workers, n)) if len(s)]


class ThreadRowSorter(RowSorter):
    """Rows sorted by threads of this process."""

    def __init__(self, rows: int, columns: int, workers: int) -> None:
        self.a = np.empty((rows, columns), np.float32)
        self.b = np.empty((rows, columns), np.float32)
        self.workers = max(1, workers)
        self._pool = ThreadPoolExecutor(self.workers)

    def sums(self, n: int) -> np.ndarray:  # noqa: D102
        out = np.zeros(n)
        list(self._pool.map(lambda rows: sorted_abs_diff(self.a, self.b, rows, out), _spans(n, self.workers)))
        return out

    def close(self) -> None:  # noqa: D102
        self._pool.shutdown()


class ProcessRowSorter(RowSorter):
    """Buffers in shared memory, rows sorted by worker processes (module docstring)."""

    def __init__(self, rows: int, columns: int, workers: int) -> None:
        self.workers = max(1, workers)
        fd = os.memfd_create("ganbench-rows")
        try:
            os.ftruncate(fd, 2 * rows * columns * 4)
            self._shared = mmap.mmap(fd, 2 * rows * columns * 4)
            self.worker_env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": _NO_AVX512, "OMP_NUM_THREADS": "1",
                               "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
            cmd = [sys.executable, "-P", str(WORKER), str(fd), str(rows), str(columns)]
            self._procs: list[subprocess.Popen] = []
            try:
                for _ in range(self.workers):
                    self._procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                        pass_fds=(fd,), env=self.worker_env))
            except OSError:
                for proc in self._procs:
                    proc.kill()
                    proc.wait()
                raise
        finally:
            os.close(fd)  # the mapping and the workers keep the memory alive
        both = np.frombuffer(self._shared, dtype=np.float32).reshape(2, rows, columns)
        self.a, self.b = both[0], both[1]

    def sums(self, n: int) -> np.ndarray:  # noqa: D102
        spans = _spans(n, self.workers)
        out = np.empty(n)
        try:
            for proc, rows in zip(self._procs, spans):
                proc.stdin.write(f"{rows.start} {rows.stop}\n".encode())
                proc.stdin.flush()
            for proc, rows in zip(self._procs, spans):
                data = proc.stdout.read(8 * len(rows))
                if len(data) != 8 * len(rows):
                    raise BrokenPipeError
                out[rows.start:rows.stop] = np.frombuffer(data, dtype=np.float64)
        except BrokenPipeError:
            dead = [p for p in self._procs if p.poll() is not None]
            codes = ", ".join(f"pid {p.pid} exit code {p.returncode}" for p in dead) or "no reply"
            raise RuntimeError(f"a row-sorting worker process ({WORKER.name}) stopped: {codes}") from None
        return out

    def close(self) -> None:  # noqa: D102
        for proc in self._procs:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        self.a = self.b = None  # type: ignore[assignment]
        try:
            self._shared.close()
        except BufferError:  # a caller still holds a view; the mapping goes when that does
            pass


def row_sorter(rows: int, columns: int, workers: int, sorts: int | None = None) -> RowSorter:
    """A sorter for `rows` x `columns` buffers; `sorts` rows will be sorted per buffer in all (for the choice)."""
    elements = 2 * columns * (rows if sorts is None else sorts)
    if use_processes(elements):
        try:
            return ProcessRowSorter(rows, columns, workers)
        except OSError:  # no memfd or no interpreter to start: sort here
            pass
    return ThreadRowSorter(rows, columns, workers)
