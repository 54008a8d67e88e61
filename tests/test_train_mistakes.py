"""`ganbench train` mistakes a tester found: a diverged run that finished silently, a run folder inside the dataset,
a recorded training length that was not the run's, and `--set` keys that are command options."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import model_zoo
from _toy_family import build_toy
from ganbench.checkpoint import load_checkpoint, save_checkpoint
from ganbench.cli import app
from ganbench.errors import ConfigError, NonFiniteError
from ganbench.train import TrainOptions, Trainer, run_training

runner = CliRunner()
DIVERGE = ["--set", "lr_g=1e37", "--set", "lr_d=1e37"]


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    model_zoo.list_models()
    monkeypatch.setitem(model_zoo.MODELS._items, "toy", build_toy)
    return "toy"


def _train(out: Path, *more: str, model: str = "toy", data: str = "shapes:16", res: str = "8"):
    return runner.invoke(app, ["train", "--model", model, "--data", data, "-r", res, "--batch", "4",
                               "--device", "cpu", "--no-progress", "--out", str(out), *more])


def _stats(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "stats.jsonl").read_text().splitlines()]


# -- 1. a run that diverges --------------------------------------------------------------------------

def test_a_diverging_run_warns_once_and_says_so_in_the_done_line(toy: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _train(out, "--kimg", "0.02", "--snapshot-kimg", "0.02", "--set", "tick_kimg=0.004", *DIVERGE)
    assert result.exit_code == 0, result.output      # NVlabs' loop keeps going too: the default
    lines = result.stdout.splitlines()
    ticks = [line for line in lines if line.startswith("tick ")]
    assert len(ticks) == 5 and all("nan" in t for t in ticks[1:])
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1, result.output                                  # once, not per tick
    first_nan = min(r["kimg"] for r in _stats(out) if any(r[k] is None for k in r if k.startswith("loss/")))
    assert "NaN" in warnings[0] and "diverged" in warnings[0] and "loss/" in warnings[0]
    kimg = float(warnings[0].split(" at kimg ")[1].split(":")[0])
    assert 0 < kimg <= first_nan, warnings[0]
    done = lines[-1]
    assert done.startswith("done: 0.02 kimg") and "diverged" in done and f"kimg {kimg:g}" in done, done


def test_stop_on_nan_stops_at_the_first_nan_loss_and_keeps_the_last_finite_snapshot(toy: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _train(out, "--kimg", "0.02", "--snapshot-kimg", "0.004", "--stop-on-nan", *DIVERGE)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and lines[-1].startswith("error:"), result.output
    assert "loss/" in lines[-1] and "NaN" in lines[-1] and "--stop-on-nan" in lines[-1] and "Traceback" not in result.output
    assert not [line for line in lines if line.startswith("done:")]
    records = _stats(out)
    assert any(r["loss/G"] is None or r["loss/D"] is None for r in records)     # the diverged tick is logged
    snaps = sorted(p.name for p in out.glob("network-snapshot-*.pt"))
    kimg = records[-1]["kimg"]
    for name in snaps:          # no snapshot of the diverged networks: the newest one still generates
        assert float(name[len("network-snapshot-"):-3]) < kimg, (snaps, kimg)
    with pytest.raises(NonFiniteError, match="--stop-on-nan"):
        run_training(toy, "shapes:16", 8, 0.02, 4, 0, tmp_path / "api", device="cpu", quiet=True, stop_on_nan=True,
                     snapshot_kimg=0.02, lr_g=1e37, lr_d=1e37)


# -- 2. the run folder inside the dataset ------------------------------------------------------------

def test_out_in_the_dataset_folder_is_refused_before_any_work(toy: str, tmp_path: Path) -> None:
    data = tmp_path / "d8"
    data.mkdir()
    for i in range(8):
        Image.fromarray((np.random.RandomState(i).rand(8, 8, 3) * 255).astype(np.uint8)).save(data / f"{i}.png")
    before = sorted(p.name for p in data.rglob("*"))
    (tmp_path / "link").symlink_to(data)
    for out in (data, data / "run", tmp_path / "link", tmp_path / "link" / "runs" / "a", Path(str(data) + "/.")):
        result = _train(out, "--data", str(data), "--kimg", "0.008", "--snapshot-kimg", "0.008")
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
        assert "--out" in lines[0] and "inside the dataset" in lines[0] and str(data) in lines[0], lines[0]
    assert sorted(p.name for p in data.rglob("*")) == before
    cwd = os.getcwd()
    os.chdir(data)
    try:     # relative paths too
        result = _train(Path("."), "--data", ".", "--kimg", "0.008", "--snapshot-kimg", "0.008")
        assert result.exit_code == 2 and "inside the dataset" in result.output, result.output
    finally:
        os.chdir(cwd)
    ok = _train(tmp_path / "d8-run", "--data", str(data), "--kimg", "0.008", "--snapshot-kimg", "0.008")
    assert ok.exit_code == 0, ok.output                       # a sibling folder is fine
    assert sorted(p.name for p in data.rglob("*")) == before


# -- 3. the recorded training length ---------------------------------------------------------------

def test_checkpoints_record_the_length_that_ran_not_the_presets(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--preset", "tiny", "--kimg", "0.008", "--snapshot-kimg", "0.008", "--no-initial-snapshot", "--quiet"]
    result = _train(out, *args, model="stylegan2", data="shapes:16", res="16")
    assert result.exit_code == 0, result.output
    snap = out / "network-snapshot-000000.008.pt"
    train = load_checkpoint(snap).metadata["train"]
    assert train["kimg"] == train["total_kimg"] == 0.008, train          # the tiny preset's own length is 50
    # a longer --kimg still resumes the run, also from a snapshot that recorded the preset's length
    ckpt = load_checkpoint(snap)
    save_checkpoint(snap, ckpt.state, {**ckpt.metadata, "train": {**train, "kimg": 50}})
    longer = _train(out, *args[:3], "0.016", *args[4:], model="stylegan2", data="shapes:16", res="16")
    assert longer.exit_code == 0, longer.output
    train = load_checkpoint(out / "network-snapshot-000000.016.pt").metadata["train"]
    assert train["kimg"] == train["total_kimg"] == 0.016


def test_set_keys_that_are_command_options_are_one_line(toy: str, tmp_path: Path) -> None:
    for key, flag in (("kimg=5", "--kimg"), ("batch=8", "--batch"), ("cond=True", "--cond"),
                      ("snapshot_kimg=1", "--snapshot-kimg"), ("augment=False", "--augment")):
        result = _train(tmp_path / "run", "--kimg", "0.008", "--set", key)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
        assert f"--set {key.split('=')[0]}" in lines[0] and flag in lines[0], lines[0]
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="--kimg"):      # the API: a training setting `kimg` is not the length
        Trainer(TrainOptions(model="toy", data="shapes:16", resolution=8, kimg=0.008, batch=4, seed=0,
                             out=tmp_path / "api", device="cpu", train={"kimg": 5}))


def test_a_key_moved_by_the_batch_rule_is_not_blamed_on_a_set():
    """Resuming a batch-8 run with --batch 4 said '(and 1 more: --set ema_kimg: recorded 2.5, now 1.25)', though no
    --set was given: NVIDIA's rule ema_kimg = batch * 10 / 32 moved it."""
    from ganbench.train.options import settings_mismatch

    said = settings_mismatch({"train": {"batch": 8, "ema_kimg": 2.5}}, {"train": {"batch": 4, "ema_kimg": 1.25}})
    assert said == ["--batch: recorded 8, now 4", "ema_kimg (follows --batch, or --set ema_kimg): recorded 2.5, now 1.25"]
    assert settings_mismatch({"train": {"ema_kimg": 2.5}}, {"train": {"ema_kimg": 1.0}}) == [
        "--set ema_kimg: recorded 2.5, now 1.0"]
