"""Helpers shared by the metrics that drive the generator themselves (PPL, EQ, LS): labels and progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ganbench.errors import ConfigError

if TYPE_CHECKING:
    from ganbench.metrics.context import MetricContext

LabelSampler = Callable[[int, torch.Generator], torch.Tensor]


def label_sampler(ctx: "MetricContext", G: Any) -> LabelSampler | None:
    """Labels drawn from the real dataset for a conditional generator (None for unconditional ones)."""
    if not int(getattr(G, "c_dim", 0) or 0):
        return None
    real = ctx.real
    if real is None or not hasattr(real, "label"):
        raise ConfigError("a conditional generator needs a real dataset (with labels) to draw labels from")
    check_label_dim(real, int(G.c_dim))

    def sample(b: int, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(real), [b], generator=gen)
        return torch.from_numpy(np.stack([real.label(int(i)) for i in idx]))

    return sample


def check_label_dim(real: Any, c_dim: int) -> None:
    """A conditional generator takes labels of its c_dim from the real data: other label sizes (or none) are one
    line naming the data, not a matrix-shape error deep inside the mapping network."""
    have = int(getattr(real, "label_dim", 0) or 0)
    if have != c_dim:
        name = getattr(real, "name", None) or getattr(real, "identity", "the real data")
        labels = f"labels of dimension {have}" if have else "no labels"
        raise ConfigError(f"the generator is conditional on {c_dim} classes but the real data {name} has {labels}; "
                          f"give --real data with the labels it was trained on (NVlabs dataset.json)")


def progress_reporter(ctx: "MetricContext", stage: str, total: int) -> Callable[[int], None]:
    """`report(done)` for the context's progress: a rich Progress (one task) or a callable(stage, done, total)."""
    progress = getattr(ctx, "progress", None)
    if progress is None:
        return lambda done: None
    if hasattr(progress, "add_task"):
        task = progress.add_task(stage, total=total)
        return lambda done: progress.update(task, completed=done)
    return lambda done: progress(stage, done, total)
