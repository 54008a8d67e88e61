"""Multi-process training on gloo/CPU: ranks stay in sync, see different data, and only rank 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from ganbench.checkpoint import load_checkpoint
from ganbench.train.loop import latest_snapshot


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, report: str, stop_kimg: float | None = None,
            kimg: float = 0.032) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    import model_zoo
    from _toy_family import build_toy
    from ganbench.train import Trainer, TrainOptions

    model_zoo.list_models()
    model_zoo.MODELS._items["toy"] = build_toy
    trainer = Trainer(TrainOptions(model="toy", data="shapes:32", resolution=8, kimg=kimg, batch=8, seed=0,
                                   out=Path(out), snapshot_kimg=0.016, augment="bgc", device="cpu",
                                   stop_kimg=stop_kimg))
    state = trainer.stream.state_dict()
    first = trainer.stream.next_indices()
    trainer.stream.load_state_dict(state)
    trainer.run()
    torch.save({"G": trainer.G.state_dict(), "D": trainer.D.state_dict(), "first": first,
                "cur_nimg": trainer.cur_nimg}, Path(report) / f"rank{rank}.pt")


def test_two_gloo_ranks_stay_in_sync(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    out, report = tmp_path / "run", tmp_path / "report"
    report.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(out), str(report)), nprocs=2, join=True)
    printed = capfd.readouterr().out.splitlines()          # both ranks write to this stdout; rank 0 alone prints
    assert sum(line.startswith("new run: toy 8px") and "x 2 processes" in line for line in printed) == 1
    assert sum(line.startswith("tick ") for line in printed) == 2
    assert sum(line.startswith("done: ") for line in printed) == 1
    r0, r1 = (torch.load(report / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert r0["cur_nimg"] == r1["cur_nimg"] == 32
    for net in ("G", "D"):      # all-reduced gradients keep the replicas identical
        assert all(torch.equal(r0[net][k], r1[net][k]) for k in r0[net]), net
    assert set(r0["first"]).isdisjoint(r1["first"]) and len(r0["first"]) == 4   # own shard, batch 8 / 2
    ckpt = load_checkpoint(latest_snapshot(out))
    assert ckpt.state["world_size"] == 2 and len(ckpt.state["rng"]) == 2
    assert not torch.equal(ckpt.state["rng"][0]["torch"], ckpt.state["rng"][1]["torch"])   # per-rank seeds
    assert all(torch.equal(ckpt.state["G"][k], r0["G"][k]) for k in r0["G"])
    lines = (out / "stats.jsonl").read_text().splitlines()
    assert [json.loads(x)["cur_nimg"] for x in lines] == [16, 32]                     # written once (rank 0)


@pytest.mark.slow
def test_torchrun_cli_two_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
           str(_free_port()), "-m", "ganbench.train", "--model", "progan", "--preset", "tiny", "--data", "shapes:32",
           "--resolution", "16", "--kimg", "0.032", "--batch", "8", "--snapshot-kimg", "0.016", "--out", str(out),
           "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()                      # rank 0 alone prints: one announce, 2 ticks, one done
    assert [line.split(":")[0] for line in lines if not line.startswith("tick ")] == ["new run", "done"], proc.stdout
    assert sum(line.startswith("tick ") for line in lines) == 2
    ckpt = load_checkpoint(latest_snapshot(out))
    assert ckpt.state["cur_nimg"] == 32 and ckpt.state["world_size"] == 2
    assert ckpt.metadata["train"]["world_size"] == 2


@pytest.mark.slow
def test_two_rank_run_resumes_exactly(tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "full"), str(report), None, 0.048), nprocs=2)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "part"), str(report), 0.016, 0.048), nprocs=2)
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path / "part"), str(report), None, 0.048), nprocs=2)
    a = load_checkpoint(latest_snapshot(tmp_path / "full")).state
    b = load_checkpoint(latest_snapshot(tmp_path / "part")).state
    assert a["cur_nimg"] == b["cur_nimg"] == 48
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
