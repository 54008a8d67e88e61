"""Distributed eval under torchrun: 2 gloo processes on CPU shard the feature passes and match one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ganbench.data.shapes import ShapesDataset
from ganbench.evaluate import EvalOptions, evaluate
from ganbench.metrics.context import shard_block
from ganbench.results import read_results

from orchestrator_helpers import make_run, register_toys

HERE = Path(__file__).resolve().parent

SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, {tests!r})
    import torch
    torch.set_num_threads(1)
    from orchestrator_helpers import ToyG, register_toys
    register_toys()
    calls = []
    forward = ToyG.forward
    def counting(self, z, *a, **k):
        calls.append(int(z.shape[0]))
        return forward(self, z, *a, **k)
    ToyG.forward = counting
    from ganbench.data.shapes import ShapesDataset
    from ganbench.evaluate import EvalOptions, evaluate, init_distributed, leave_distributed
    rank, world = init_distributed("cpu")
    evaluate([{run!r}], EvalOptions(metrics=["toy-stat", "fid"], real=ShapesDataset(n=48, resolution=16, seed=1),
             n=40, extractor="toy-pixels", seed=3, batch_size=16), out={out!r})
    leave_distributed()
    with open(os.path.join({logs!r}, f"rank{{rank}}.json"), "w") as f:
        json.dump({{"rank": rank, "world": world, "images": calls}}, f)
""")


def test_shard_blocks_cover_every_batch_once():
    for n, bs, world in [(40, 16, 2), (10, 16, 2), (1000, 64, 3), (5, 1, 8)]:
        blocks = [shard_block(n, bs, (r, world)) for r in range(world)]
        covered = [k for lo, hi in blocks for k in range(lo, hi)]
        assert covered == list(range(-(-n // bs)))


def test_torchrun_two_processes_match_one(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    register_toys()
    run = make_run(tmp_path / "runA", kimgs=(1, 2))
    logs = tmp_path / "logs"
    logs.mkdir()
    script = tmp_path / "dist_eval.py"
    script.write_text(SCRIPT.format(tests=str(HERE), run=str(run), out=str(tmp_path / "dist.csv"), logs=str(logs)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ranks = [json.loads((logs / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    # 40 images in batches of 16 = 3 batches per checkpoint: rank 0 generates 1, rank 1 the other 2 (the last one
    # whole and cut to 8, so that an image never depends on how many are asked for)
    assert sum(ranks[0]["images"]) == 2 * 16 and sum(ranks[1]["images"]) == 2 * (16 + 16)

    dist = read_results(tmp_path / "dist.csv")
    single = evaluate([run], EvalOptions(metrics=["toy-stat", "fid"], real=ShapesDataset(n=48, resolution=16, seed=1),
                                         n=40, extractor="toy-pixels", seed=3, batch_size=16),
                      out=tmp_path / "single.csv").added
    assert len(dist) == len(single) == 2 * 3
    got = {(r.kimg, r.metric): r.value for r in dist.itertuples()}
    for r in single.itertuples():
        assert got[(r.kimg, r.metric)] == pytest.approx(r.value, rel=1e-9, abs=1e-12)


@pytest.mark.slow
def test_torchrun_cli_eval_matches_one_process(tmp_path):
    """`torchrun -m ganbench eval ... --num-gen N` on 2 gloo ranks writes the rows one process writes."""
    from ganbench.train import run_training

    run = tmp_path / "run"
    run_training("stylegan2", "shapes:64", 16, kimg=0.016, batch=4, seed=0, out=run, preset="tiny",
                 snapshot_kimg=0.008, device="cpu", progress=False)
    args = ["eval", str(run), "--metrics", "fid,kid", "--num-gen", "32", "--real", "shapes:64",
            "--extractor", "shapes-net", "--batch-size", "16"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANBENCH_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "ganbench", *args, "--out", str(tmp_path / "dist.csv")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the one-process run in a subprocess too, with the same thread count: oneDNN's reductions depend on it,
    # and FID of 32 samples (singular covariances) magnifies a 1e-7 feature difference to ~3e-9
    single = subprocess.run([sys.executable, "-m", "ganbench", *args, "--out", str(tmp_path / "single.csv")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    dist, one = read_results(tmp_path / "dist.csv"), read_results(tmp_path / "single.csv")
    assert len(dist) == len(one) == 3 * 3     # snapshots at kimg 0, 0.008, 0.016 x (fid, kid_mean, kid_std)
    got = {(r.checkpoint, r.metric): r.value for r in dist.itertuples()}
    for r in one.itertuples():
        assert got[(r.checkpoint, r.metric)] == pytest.approx(r.value, rel=1e-9, abs=1e-12)


def _gather_worker(rank: int, world: int, port: int, out: str) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist

    from ganbench.metrics.context import Moments, _gather_pass

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    rng = np.random.default_rng(rank)
    n = [0, 5, 3][rank]                          # rank 0's shard is empty, the others differ in size
    feats = rng.normal(size=(n, 4)).astype(np.float32)
    if n:
        part = ({"features": feats, "labels": np.arange(n, dtype=np.int64) + 100 * rank},
                Moments(n=n, total=feats.astype(np.float64).sum(0), outer=feats.T.astype(np.float64) @ feats))
    else:
        part = ({}, Moments(n=0, total=np.zeros(0), outer=np.zeros((0, 0))))
    outputs, moments = _gather_pass(part, "test")
    dist.barrier()
    dist.destroy_process_group()
    torch.save({"outputs": {k: torch.from_numpy(v) for k, v in outputs.items()}, "n": moments.n,
                "total": torch.from_numpy(moments.total), "outer": torch.from_numpy(moments.outer)},
               os.path.join(out, f"rank{rank}.pt"))


def test_gather_pass_concatenates_in_rank_order_with_an_empty_rank(tmp_path):
    import socket

    import numpy as np
    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gather_worker, args=(3, port, str(tmp_path)), nprocs=3, join=True)
    expected = np.concatenate([np.random.default_rng(r).normal(size=(n, 4)).astype(np.float32)
                               for r, n in ((1, 5), (2, 3))])
    for r in range(3):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        assert got["outputs"]["features"].dtype == torch.float32
        assert np.array_equal(got["outputs"]["features"].numpy(), expected)
        assert got["outputs"]["labels"].tolist() == [100, 101, 102, 103, 104, 200, 201, 202]
        assert got["n"] == 8
        np.testing.assert_allclose(got["total"].numpy(), expected.astype(np.float64).sum(0), rtol=1e-12)
        np.testing.assert_allclose(got["outer"].numpy(), expected.T.astype(np.float64) @ expected, rtol=1e-12)
