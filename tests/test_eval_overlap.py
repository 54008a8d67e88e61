"""Issue 12 target 3: generation overlaps feature extraction, and cached real statistics cost nothing later."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from typer.testing import CliRunner

from ganbench.cli import app
from ganbench.evaluate import EvalOptions, evaluate
from ganbench.metrics.context import MetricContext, prefetched

from orchestrator_helpers import make_run, register_toys


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()


def _count_passes(monkeypatch) -> list[str]:
    stages: list[str] = []
    real_pass = MetricContext._pass

    def spy(self, ext, batches, total, stage, **kw):
        stages.append(stage)
        return real_pass(self, ext, batches, total, stage, **kw)

    monkeypatch.setattr(MetricContext, "_pass", spy)
    return stages


def test_second_eval_of_new_checkpoints_computes_no_real_features(tmp_path, monkeypatch):
    options = EvalOptions(metrics=["toy-stat"], n=20, real="shapes:32", extractor="toy-pixels", batch_size=10,
                          device="cpu")
    stages = _count_passes(monkeypatch)
    first = evaluate([make_run(tmp_path / "runA", kimgs=(1,))], options, out=tmp_path / "a.csv")
    assert [s.split()[0] for s in stages] == ["gen", "real"]
    assert first.timings["real_images"] > 0 and first.timings["gen_features"] > 0
    stages.clear()
    second = evaluate([make_run(tmp_path / "runB", kimgs=(1, 2), seed=3)], options, out=tmp_path / "b.csv")
    assert [s.split()[0] for s in stages] == ["gen", "gen"]  # new checkpoints, reals from the cache
    assert second.timings["real_images"] == 0.0
    assert second.timings["generation"] > 0 and set(second.timings) >= {"gen_features", "metrics"}
    assert len(second.added) == 4


def test_eval_prints_the_time_split(tmp_path):
    run = make_run(tmp_path / "runA", kimgs=(1,))
    result = CliRunner().invoke(app, ["eval", str(run), "-m", "toy-stat", "--n", "20", "--real", "shapes:32",
                                      "-e", "toy-pixels", "--out", str(tmp_path / "r.csv"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("time:"))
    for part in ("real images", "generation", "gen features", "metrics"):
        assert part in line, line


def test_generation_runs_ahead_of_the_extractor():
    """While the consumer holds batch k, the producer has already made batch k+1 (one deep, no further)."""
    made: list[int] = []

    def batches():
        for k in range(4):
            made.append(k)
            yield k

    seen = []
    for k in prefetched(batches()):
        deadline = time.time() + 5
        while len(made) < min(k + 2, 4) and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        seen.append((k, len(made)))
    assert [k for k, _ in seen] == [0, 1, 2, 3]
    assert all(n == min(k + 2, 4) for k, n in seen), seen  # exactly one ahead (queue of one + the one held)


def test_prefetch_passes_errors_and_stops_when_the_consumer_stops():
    def failing():
        yield 1
        raise ValueError("generator blew up")

    with pytest.raises(ValueError, match="blew up"):
        list(prefetched(failing()))
    before = threading.active_count()
    it = prefetched(iter(range(1000)))
    next(it)
    it.close()
    time.sleep(0.3)
    assert threading.active_count() <= before


def test_prefetched_pass_gives_the_same_features():
    from orchestrator_helpers import ToyG

    torch.manual_seed(0)
    G = ToyG(16).eval()
    real = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8)
    out = {}
    for flag in (False, True):
        ctx = MetricContext(generator=G, real=real, n_gen=30, extractor="toy-pixels", batch_size=7,
                            cache_dir=False, prefetch=flag)
        out[flag] = ctx.gen_outputs()["features"]
    assert torch.equal(torch.from_numpy(out[False]), torch.from_numpy(out[True]))
