"""Progressive growing (ProGAN, StyleGAN): the level-of-detail schedule and matching real images.

`lod` counts halvings of the output resolution still missing: at `lod = k + a` the networks show level
k faded towards level k+1 by `a`. Each level is first trained for `train_kimg` (stable) and then faded
in over `fade_kimg`, starting from `start_res`; after the last fade the networks stay at lod 0.

A run shorter than the full schedule compresses it: all phase lengths are scaled by
`total_kimg / schedule_kimg` so every level is still visited and the last `train_kimg` share of the run
is spent fully grown. That keeps tiny CPU runs meaningful (they end at full resolution).

Around the lod, the TF training loops of both papers (ProGAN train.py `TrainingSchedule`, StyleGAN
training_loop.py `training_schedule`) pick per-level settings, re-evaluated every `minibatch_repeats`
minibatches: the level's resolution is 2 ** (log2(resolution) - floor(lod)) (the level being faded in
counts), its minibatch and learning rates come from resolution-keyed tables with the run's values as
fallback, and both Adam optimizers are reset whenever floor(lod) or ceil(lod) changes (a fade starts or
ends). `level_settings` computes them; the loop applies them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import ConfigError


@dataclass(frozen=True)
class LodSchedule:
    """Piecewise-linear lod(kimg): stable phases of `train_kimg`, linear fades of `fade_kimg` per level."""

    levels: int          # log2(resolution / start_res)
    train_kimg: float
    fade_kimg: float

    @property
    def schedule_kimg(self) -> float:
        """kimg until the networks are fully grown and have trained one stable phase at full size."""
        return self.levels * (self.train_kimg + self.fade_kimg) + self.train_kimg

    def lod(self, kimg: float) -> float:
        """The level of detail after `kimg` thousand images."""
        phase = self.train_kimg + self.fade_kimg
        if phase <= 0:
            return 0.0
        idx = math.floor(kimg / phase)
        within = kimg - idx * phase
        lod = self.levels - idx
        if self.fade_kimg > 0:
            lod -= max(within - self.train_kimg, 0.0) / self.fade_kimg
        return float(min(max(lod, 0.0), self.levels))


def make_schedule(progressive: dict[str, Any] | None, resolution: int, total_kimg: float) -> LodSchedule | None:
    """Build the family's schedule (`start_res`, `kimg_per_phase`, optional `fade_kimg`), compressed to fit."""
    if not progressive:
        return None
    start = int(progressive.get("start_res", 4))
    if start < 4 or start & (start - 1) or start > resolution:
        raise ConfigError(f"progressive start_res must be a power of two from 4 to {resolution}, got {start}")
    levels = int(round(math.log2(resolution / start)))
    train = float(progressive.get("kimg_per_phase", progressive.get("train_kimg", 600)))
    fade = float(progressive.get("fade_kimg", train))
    sched = LodSchedule(levels, train, fade)
    if levels == 0 or total_kimg <= 0 or sched.schedule_kimg <= total_kimg:
        return sched
    scale = total_kimg / sched.schedule_kimg
    return LodSchedule(levels, train * scale, fade * scale)


def level_resolution(resolution: int, lod: float) -> int:
    """The resolution TF's schedule assigns to `lod`: the finest level shown, including one being faded in."""
    return int(2 ** (int(round(math.log2(resolution))) - int(math.floor(lod))))


def level_changed(lod: float, prev_lod: float | None) -> bool:
    """TF's reset test: a new level starts fading in (ceil changes) or finishes (floor changes)."""
    return prev_lod is None or (math.floor(lod) != math.floor(prev_lod) or math.ceil(lod) != math.ceil(prev_lod))


@dataclass(frozen=True)
class LevelSettings:
    """What one schedule evaluation fixes for the next `minibatch_repeats` minibatches."""

    lod: float
    resolution: int
    batch: int
    lr_g: float
    lr_d: float


def table_problem(table: Any, kind: type) -> str | None:
    """What is wrong with a resolution-keyed table ({4: 128, 8: 128, ...}) of `kind` values; None when fine."""
    if table is None:
        return None
    if not isinstance(table, dict):
        return f"must be a dict of resolution -> value such as {{4: 128, 8: 64}}, got {table!r}"
    for key, value in table.items():
        try:
            res = int(key)
        except (TypeError, ValueError):
            res = -1
        if res < 4 or res & (res - 1) or (isinstance(key, float) and key != res):
            return f"key {key!r} is not a resolution (a power of two from 4)"
        bad = isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or (
            kind is int and value != int(value))
        if bad or not math.isfinite(float(value)):
            return f"value {value!r} at {res}px must be a positive {'integer' if kind is int else 'number'}"
    return None


def per_level_table(table: dict[Any, Any] | None, what: str, kind: type) -> dict[int, Any]:
    """The table with int keys and `kind` values ({} for None); ConfigError naming `what` when it is bad."""
    problem = table_problem(table, kind)
    if problem:
        raise ConfigError(f"{what}: {problem}")
    return {int(k): kind(v) for k, v in (table or {}).items()}


def level_settings(schedule: LodSchedule, resolution: int, kimg: float, batch: int, lr_g: float, lr_d: float,
                   batch_table: dict[int, int], lr_table: dict[int, float], world: int = 1) -> LevelSettings:
    """TF's schedule at `kimg`: the lod, its level's resolution, minibatch (a multiple of `world`) and lrs.

    `batch`, `lr_g` and `lr_d` are the fallbacks (TF's minibatch_base, G_lrate_base, D_lrate_base); the
    published configs use one lr table for G and D (D_lrate_dict = G_lrate_dict)."""
    lod = schedule.lod(kimg)
    res = level_resolution(resolution, lod)
    mb = int(batch_table.get(res, batch))
    mb -= mb % world          # the loop checks at start that every entry is at least `world`
    return LevelSettings(lod, res, mb, float(lr_table.get(res, lr_g)), float(lr_table.get(res, lr_d)))


def set_lod(modules: Iterable[nn.Module], lod: float) -> None:
    """Write `lod` into every buffer named `lod` of the given networks."""
    for module in modules:
        for name, buf in module.named_buffers():
            if name == "lod" or name.endswith(".lod"):
                buf.fill_(lod)


def has_lod(module: nn.Module) -> bool:
    """Whether the network is progressive (carries a `lod` buffer)."""
    return any(name == "lod" or name.endswith(".lod") for name, _ in module.named_buffers())


def process_reals(images: torch.Tensor, lod: float) -> torch.Tensor:
    """Reals as a network at `lod` sees them: box-downscaled to the level, cross-faded, nearest-upscaled."""
    if lod <= 0:
        return images
    level = int(math.floor(lod))
    alpha = lod - level
    x = F.avg_pool2d(images, 2 ** level) if level > 0 else images
    if alpha > 0 and x.shape[-1] >= 2:
        coarser = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = torch.lerp(x, coarser, alpha)
    if level > 0:
        x = F.interpolate(x, scale_factor=2 ** level, mode="nearest")
    return x
