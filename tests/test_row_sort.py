"""Row sorting for SWD: worker processes (Zen 4) and threads give the sums an independent numpy loop gives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from ganbench.metrics import row_sort
from ganbench.metrics.row_sort import ProcessRowSorter, ThreadRowSorter, row_sorter, slow_numpy_sort

ZEN4 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 avx512f avx512dq avx512bw avx512vl

processor\t: 1
vendor_id\t: GenuineIntel
"""


def test_slow_numpy_sort_means_amd_family_25_with_avx512():
    assert slow_numpy_sort(ZEN4)
    assert not slow_numpy_sort(ZEN4.replace("avx512f ", ""))                  # Zen 3: numpy uses AVX2 anyway
    assert not slow_numpy_sort(ZEN4.replace("cpu family\t: 25", "cpu family\t: 26"))  # Zen 5
    assert not slow_numpy_sort(ZEN4.replace("AuthenticAMD", "GenuineIntel"))   # Intel's AVX-512 sort is fast
    assert not slow_numpy_sort("")


def test_choice_follows_the_cpu_the_size_and_the_override(monkeypatch):
    monkeypatch.delenv("GANBENCH_SORT_PROCESSES", raising=False)
    monkeypatch.setattr(row_sort, "slow_numpy_sort", lambda: True)
    if sys.platform.startswith("linux"):
        assert row_sort.use_processes(row_sort.MIN_PROCESS_ELEMENTS)
    assert not row_sort.use_processes(row_sort.MIN_PROCESS_ELEMENTS - 1)
    monkeypatch.setenv("GANBENCH_SORT_PROCESSES", "0")
    assert not row_sort.use_processes(10 ** 12)
    monkeypatch.setenv("GANBENCH_SORT_PROCESSES", "1")
    assert row_sort.use_processes(10)
    monkeypatch.setattr(row_sort, "slow_numpy_sort", lambda: False)
    monkeypatch.delenv("GANBENCH_SORT_PROCESSES")
    assert not row_sort.use_processes(10 ** 12)


def _rows(rows: int, columns: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((rows, columns)).astype(np.float32)
    b = (rng.standard_normal((rows, columns)) * 1.5 + 0.2).astype(np.float32)
    a[:, ::7] = 0.5  # ties
    return a, b


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="worker processes need memfd (Linux)")
@pytest.mark.parametrize("sorter_cls", [ThreadRowSorter, ProcessRowSorter])
def test_sorters_match_an_independent_sort(sorter_cls):
    a, b = _rows(7, 5001, 0)
    # float32 differences (as SWD defines them), summed in float64: only the order of the additions may differ
    want = np.abs(np.sort(a, axis=1) - np.sort(b, axis=1)).astype(np.float64).sum(axis=1)
    with sorter_cls(8, 5001, 2) as sorter:
        for n in (7, 1):  # a partly filled buffer and fewer rows than workers, in the same sorter
            sorter.a[:n], sorter.b[:n] = a[:n], b[:n]
            np.testing.assert_allclose(sorter.sums(n), want[:n], rtol=1e-12)


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="worker processes need memfd (Linux)")
def test_workers_import_numpy_without_its_avx512_kernels():
    """The workers' environment switches numpy's AVX-512 dispatch off (on a CPU that has it, it would be on)."""
    with ProcessRowSorter(2, 3, 1) as sorter:
        env = sorter.worker_env
    probe = ("import numpy, sys; from numpy._core._multiarray_umath import __cpu_features__ as f; "
             "sys.exit(any(f.get(k) for k in ('X86_V4', 'AVX512_SKX', 'AVX512_ICL', 'AVX512_SPR')))")
    assert subprocess.run([sys.executable, "-c", probe], env=env).returncode == 0


@pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="worker processes need memfd (Linux)")
def test_a_dead_worker_is_one_clear_error():
    sorter = ProcessRowSorter(4, 100, 2)
    try:
        os.kill(sorter._procs[1].pid, signal.SIGKILL)
        sorter._procs[1].wait()
        with pytest.raises(RuntimeError, match=r"row-sorting worker process .* stopped: pid \d+ exit code -9"):
            sorter.sums(4)
    finally:
        sorter.close()


def test_row_sorter_factory_sorts_here_for_small_jobs(monkeypatch):
    monkeypatch.delenv("GANBENCH_SORT_PROCESSES", raising=False)
    monkeypatch.setattr(row_sort, "slow_numpy_sort", lambda: True)
    with row_sorter(4, 100, 2, sorts=512) as sorter:
        assert isinstance(sorter, ThreadRowSorter)
