"""The TF training loops of ProGAN and StyleGAN around the lod: per-level minibatch and learning rate, settings
re-evaluated every `minibatch_repeats` minibatches, Adam reset at each new level, D before G with G_ema updated
in the D step (issue 14 §1). Expected values are worked out by hand from the TF code's formulas
(progressive_growing_of_gans train.py TrainingSchedule, stylegan training/training_loop.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganbench.checkpoint import load_checkpoint
from ganbench.errors import ConfigError
from ganbench.train import Trainer, TrainOptions, run_training
from ganbench.train.loop import latest_snapshot
from ganbench.train.progressive import (LodSchedule, level_changed, level_resolution, level_settings,
                                        per_level_table)

PG_BATCH = {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}   # preset-v2-1gpu
SG_LR = {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}                      # stylegan train.py


def test_level_resolution_counts_the_level_being_faded_in() -> None:
    # TF: resolution = 2 ** (resolution_log2 - floor(lod)); at 32px lod 3 is 4x4, lod 2.5 fades 4 -> 8.
    assert [level_resolution(32, lod) for lod in (3.0, 2.99, 2.5, 2.0, 1.2, 0.0)] == [4, 8, 8, 8, 16, 32]
    assert level_resolution(1024, 0.0) == 1024 and level_resolution(1024, 8.0) == 4


def test_level_settings_follow_the_published_tables_by_hand() -> None:
    sched = LodSchedule(levels=8, train_kimg=600, fade_kimg=600)       # 1024px from 4x4, ProGAN
    # kimg 0: lod 8 -> 4px -> minibatch_dict[4] = 128, lr base 0.001
    lv = level_settings(sched, 1024, 0.0, 4, 0.001, 0.001, PG_BATCH, {1024: 0.0015})
    assert (lv.lod, lv.resolution, lv.batch, lv.lr_g, lv.lr_d) == (8.0, 4, 128, 0.001, 0.001)
    # kimg 6600 = phase 5 + 600: lod 3 exactly -> 128px -> 16 images
    lv = level_settings(sched, 1024, 6600.0, 4, 0.001, 0.001, PG_BATCH, {1024: 0.0015})
    assert (lv.lod, lv.resolution, lv.batch) == (3.0, 128, 16)
    # kimg 9000 = phase 7 + 600 + 0: lod 1 -> fading into 1024 starts at 9000: lod 1 - 0/600 = 1 -> 512px
    lv = level_settings(sched, 1024, 9000.0, 4, 0.001, 0.001, PG_BATCH, {1024: 0.0015})
    assert (lv.lod, lv.resolution, lv.batch, lv.lr_g) == (1.0, 512, 4, 0.001)
    # kimg 9300: lod 0.5 -> 1024px: no minibatch entry -> the base (4), lr from the table (0.0015)
    lv = level_settings(sched, 1024, 9300.0, 4, 0.001, 0.001, PG_BATCH, {1024: 0.0015})
    assert (lv.lod, lv.resolution, lv.batch, lv.lr_g, lv.lr_d) == (0.5, 1024, 4, 0.0015, 0.0015)
    # StyleGAN 8 GPUs at 256px from 8x8: kimg 3000 = phase 2 + 600 -> lod 3 - 0 = 3 -> 32px; batch 64
    sg = LodSchedule(levels=5, train_kimg=600, fade_kimg=600)
    lv = level_settings(sg, 256, 3000.0, 32, 0.001, 0.001, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}, SG_LR, 8)
    assert (lv.resolution, lv.batch, lv.lr_g) == (32, 64, 0.001)
    lv = level_settings(sg, 256, 5900.0, 32, 0.001, 0.001, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32}, SG_LR, 8)
    assert (lv.resolution, lv.batch, lv.lr_g) == (256, 32, 0.002)
    # minibatch -= minibatch % num_gpus: 30 images on 8 processes -> 24
    lv = level_settings(sg, 256, 0.0, 30, 0.001, 0.001, {}, {}, 8)
    assert lv.batch == 24


def test_adam_reset_rule_is_tfs_floor_or_ceil_change() -> None:
    assert level_changed(3.0, None) and level_changed(3.0, -1.0)
    assert not level_changed(3.0, 3.0)
    assert level_changed(2.9, 3.0)          # a fade starts: ceil stays 3, floor drops to 2
    assert not level_changed(2.5, 2.9)      # within the fade
    assert level_changed(2.0, 2.1)          # the fade ends: ceil drops to 2


@pytest.mark.parametrize("table,match", [
    ({3: 8}, "not a resolution"), ({"x": 8}, "not a resolution"), ({8: 0}, "positive"),
    ({8: 2.5}, "positive integer"), ([8], "must be a dict"), ({8: True}, "positive")])
def test_per_level_tables_are_checked(table, match) -> None:
    with pytest.raises(ConfigError, match=match):
        per_level_table(table, "batch_schedule", int)
    assert per_level_table({"8": 4, 16: 2}, "batch_schedule", int) == {8: 4, 16: 2}   # keys read back from JSON


def _trainer(tmp_path: Path, **train) -> Trainer:
    train = {"lr_g": 0.001, "lr_d": 0.001, "progressive": {"start_res": 4, "kimg_per_phase": 600}, **train}
    return Trainer(TrainOptions(model="progan", data="shapes:64", resolution=16, kimg=0.4, batch=4, seed=0,
                                out=tmp_path, preset="tiny", device="cpu", quiet=True, train=train))


def test_loop_applies_minibatch_lr_repeats_and_adam_resets(tmp_path: Path) -> None:
    # 16px from 4x4: 2 levels, compressed to 0.4 kimg -> phases of 0.08 kimg (lod 2 until 80 images, fade to 160)
    tr = _trainer(tmp_path, batch_schedule={4: 8, 8: 12}, lr_schedule={8: 0.004, 16: 0.003})
    seen = []
    for _ in range(12):
        before = tr.cur_nimg
        tr.step()
        steps = {int(s["step"]) for o in tr.optimizers.values() for s in o.state.values()}
        seen.append((before, tr.lod, tr.batch_now, tr.optimizers["G"].param_groups[0]["lr"],
                     tr.optimizers["D"].param_groups[0]["lr"], steps))
    # Minibatches 0-3 use the schedule at 0 images: lod 2, 4px, 8 images, base lr 0.001.
    assert [s[:5] for s in seen[:4]] == [(0, 2.0, 8, 0.001, 0.001), (8, 2.0, 8, 0.001, 0.001),
                                         (16, 2.0, 8, 0.001, 0.001), (24, 2.0, 8, 0.001, 0.001)]
    assert [s[5] for s in seen[:4]] == [{1}, {2}, {3}, {4}]
    # 32 images: still lod 2 (no reset: Adam's step count goes on). 64: lod 2 too; 96: fade 4->8 at lod 1.8.
    assert [s[0] for s in seen[4:12]] == [32, 40, 48, 56, 64, 72, 80, 88]
    assert seen[8][1] == 2.0 and seen[8][5] == {9}
    sched = tr.schedule
    assert sched is not None and sched.lod(0.096) == pytest.approx(1.8)
    # The next group starts at 96 images: a new level -> 8px, 12 images, lr 0.004, Adam state started over.
    tr.step()
    assert tr.lod == pytest.approx(1.8) and tr.batch_now == 12 and tr.stream.batch == 12
    assert tr.optimizers["G"].param_groups[0]["lr"] == 0.004 == tr.optimizers["D"].param_groups[0]["lr"]
    assert {int(s["step"]) for o in tr.optimizers.values() for s in o.state.values()} == {1}
    assert tr.cur_nimg == 96 + 12
    for _ in range(3):       # the rest of the group keeps lod, batch and lr although the lod moved on
        tr.step()
        assert tr.lod == pytest.approx(1.8) and tr.batch_now == 12
    assert tr.cur_nimg == 96 + 48


def test_d_first_order_averages_G_before_its_step(tmp_path: Path) -> None:
    """TF: run([D_train_op, Gs_update_op]) then run([G_train_op]): G_ema copies G as it was before G's update."""
    for order in ("d_first", "g_first"):
        tr = _trainer(tmp_path / order, step_order=order, ema_step_beta=0.0)   # beta 0: G_ema := G
        before = {k: v.detach().clone() for k, v in tr.G.named_parameters()}   # (the lod buffer moves anyway)
        tr.step()
        ema, after = dict(tr.G_ema.named_parameters()), dict(tr.G.named_parameters())
        changed = [k for k in after if not torch.equal(after[k], before[k])]
        assert changed, "G did not train"
        source = before if order == "d_first" else after
        assert all(torch.equal(ema[k], source[k]) for k in changed), order


def test_progan_default_ema_is_a_fixed_decay_per_minibatch(tmp_path: Path) -> None:
    tr = _trainer(tmp_path, ema_step_beta=0.5, ema_kimg=None, ema_rampup=None)
    g0 = {k: v.clone() for k, v in tr.G.state_dict().items()}
    ema0 = {k: v.clone() for k, v in tr.G_ema.state_dict().items()}
    tr.step()       # d_first: G_ema <- lerp(G_before, G_ema, 0.5), and G_before is G at the start
    for name, p in tr.G_ema.named_parameters():
        assert torch.allclose(p, 0.5 * g0[name] + 0.5 * ema0[name], atol=1e-7), name
    with pytest.raises(ConfigError, match="ema_step_beta"):
        _trainer(tmp_path / "x", ema_kimg=None, ema_step_beta=None)


def test_tables_need_a_progressive_family(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not grow"):
        Trainer(TrainOptions(model="stylegan2", data="shapes:64", resolution=16, kimg=0.1, batch=4, seed=0,
                             out=tmp_path, preset="tiny", device="cpu", quiet=True,
                             train={"batch_schedule": {8: 4}}))


def test_resume_inside_a_group_of_minibatches_is_exact(tmp_path: Path) -> None:
    """Snapshots every 40 images with 12-image minibatches land inside 4-minibatch groups; resuming there keeps the
    group's settings (no Adam reset) and ends bit-identical to the uninterrupted run."""
    kw = dict(kimg=0.24, batch=4, seed=1, snapshot_kimg=0.04, tick_kimg=0.04, preset="tiny", device="cpu",
              quiet=True, batch_schedule={4: 12, 8: 8, 16: 4}, lr_schedule={16: 0.002})
    full = run_training("progan", "shapes:64", 16, out=tmp_path / "full", **kw)
    part = tmp_path / "part"
    run_training("progan", "shapes:64", 16, out=part, stop_kimg=0.1, **kw)
    stopped = load_checkpoint(latest_snapshot(part)).state
    assert stopped["batch_idx"] % 4 != 0, "the test needs a snapshot inside a group"
    run_training("progan", "shapes:64", 16, out=part, **kw)
    a = load_checkpoint(latest_snapshot(full)).state
    b = load_checkpoint(latest_snapshot(part)).state
    assert a["cur_nimg"] == b["cur_nimg"]
    for net in ("G", "D", "G_ema"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    batches = [json.loads(x)["batch"] for x in (full / "stats.jsonl").read_text().splitlines()]
    assert batches[0] == 12 and batches[-1] == 4
