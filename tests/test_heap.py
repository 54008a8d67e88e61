"""ganbench.heap: freed heap pages go back to the OS between training phases, only when it pays."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

import ganbench.train.loop as loop
import model_zoo
from _toy_family import build_toy
from ganbench import heap
from ganbench.train import run_training
from ganbench.train.output import memory_gb

pytestmark = pytest.mark.skipif(heap._glibc() is None, reason="malloc_trim / mallinfo2 need glibc 2.33+")

BLOCK = 96 * 1024          # under glibc's initial 128 kB mmap threshold: served from the heap


def rss_mb() -> float:
    return memory_gb() * 1024


@pytest.fixture
def holes():
    """~100 MB of touched heap blocks with every other one freed: holes free() alone cannot hand back."""
    libc = heap._glibc()
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(2048)]
    for b in blocks:
        ctypes.memset(b, 1, BLOCK)
    for b in blocks[::2]:
        libc.free(b)
    yield
    for b in blocks[1::2]:
        libc.free(b)


def test_trim_returns_free_heap_pages_to_the_os(holes) -> None:
    assert heap.free_heap_bytes() >= 1024 * BLOCK
    before = rss_mb()
    assert heap.release_free_heap(min_free=32 * 2 ** 20)
    assert before - rss_mb() > 60          # ~96 MB of holes, minus partial pages at the block edges


def test_no_trim_below_the_threshold_or_when_turned_off(holes, monkeypatch: pytest.MonkeyPatch) -> None:
    before = rss_mb()
    assert not heap.release_free_heap(min_free=2 ** 40)
    monkeypatch.setenv("GANBENCH_TRIM_HEAP", "0")
    assert not heap.release_free_heap(min_free=1)
    assert abs(rss_mb() - before) < 20


def test_cpu_training_releases_the_heap_before_every_phase(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    model_zoo.list_models()
    monkeypatch.setitem(model_zoo.MODELS._items, "toy", build_toy)
    calls: list[int] = []
    monkeypatch.setattr(loop, "release_free_heap", lambda: calls.append(1) or False)
    phases: list[str] = []
    real = loop.Trainer._run_phases

    def count(self, work, *a):
        phases.extend(p.name for p, _ in work if self.batch_idx % p.interval == 0)
        return real(self, work, *a)

    monkeypatch.setattr(loop.Trainer, "_run_phases", count)
    run_training("toy", "shapes:16", 8, kimg=0.032, batch=8, seed=0, out=tmp_path, snapshot_kimg=1,
                 device="cpu", quiet=True)
    assert len(phases) >= 4 and len(calls) == len(phases)
