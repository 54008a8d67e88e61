"""Training: `run_training` drives the generic loop (loop.py) with a family's networks, loss and schedule."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

from ganbench.train.loop import TRAIN_DEFAULTS, TrainOptions, Trainer

LOOP_OPTIONS = ("cond", "augment", "device", "tick_kimg", "grid", "progress", "quiet", "stop_kimg", "mirror", "crop",
                "resize", "skip_unknown", "resume_from", "freeze_d", "initial_snapshot", "stop_on_nan")


def _as_int(x: Any) -> Any:
    """numpy and Python integers as int; anything else unchanged, for TrainOptions' checks to name."""
    return int(x) if isinstance(x, numbers.Integral) and not isinstance(x, bool) else x


def _as_float(x: Any) -> Any:
    return float(x) if isinstance(x, numbers.Real) and not isinstance(x, bool) else x


def run_training(model: str, data: str, resolution: int, kimg: float, batch: int | None, seed: int, out: Path,
                 preset: str | None = None, snapshot_kimg: float = 4.0, resume: bool = True,
                 **overrides: Any) -> Path:
    """Train `model` on `data` for `kimg` thousand images into `out` (resuming its newest snapshot).

    `overrides` holds loop and data options (cond, augment, device, tick_kimg, grid, progress, quiet,
    stop_kimg, mirror, crop, resize, skip_unknown, resume_from, freeze_d, initial_snapshot, stop_on_nan),
    training settings (any `spec.train` key such as lr_g, r1_gamma, ema_kimg; or a dict `train=`),
    and network options passed to `model_zoo.build` (anything else; or a dict `network=`).
    Returns the run folder holding network-snapshot-*.pt, fakes*.png and stats.jsonl.
    """
    loop = {k: overrides.pop(k) for k in LOOP_OPTIONS if k in overrides}
    train = dict(overrides.pop("train", None) or {})
    network = dict(overrides.pop("network", None) or {})
    for k, v in overrides.items():
        (train if k in TRAIN_DEFAULTS else network)[k] = v
    opts = TrainOptions(model=model, data=data, resolution=_as_int(resolution), kimg=_as_float(kimg),
                        batch=_as_int(batch), seed=_as_int(seed), out=Path(out), preset=preset,
                        snapshot_kimg=_as_float(snapshot_kimg), resume=resume, network=network, train=train, **loop)
    return Trainer(opts).run()


__all__ = ["run_training", "Trainer", "TrainOptions"]
