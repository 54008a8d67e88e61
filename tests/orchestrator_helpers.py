"""Small stand-ins for the orchestrator tests: a toy generator family, toy metrics, tiny checkpoints."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import model_zoo
from ganbench.checkpoint import save_checkpoint, snapshot_name
from ganbench.features.base import EXTRACTORS, FeatureExtractor
from ganbench.metrics.base import METRICS, Metric

TOY = "toy-gan"


class ToyG(nn.Module):
    """z -> image through one linear layer and tanh; enough to give distinct, seed-stable samples."""

    def __init__(self, resolution: int, z_dim: int = 8) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, 0, resolution, 3
        self.fc = nn.Linear(z_dim, 3 * resolution * resolution)
        nn.init.kaiming_normal_(self.fc.weight)

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        return torch.tanh(self.fc(z)).view(-1, 3, self.img_resolution, self.img_resolution)


class ToyD(nn.Module):
    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * resolution * resolution, 1)

    def forward(self, img, c=None):
        return self.fc(img.flatten(1))


class ToyPixels(FeatureExtractor):
    """Features = 4x4 average-pooled pixels (48-d); a stand-in extractor with no weights."""

    name = "toy-pixels"
    feature_dim = 48
    outputs = ("features",)
    weights_sha256 = "0" * 64
    resize_mode = "adaptive-avg-4"

    def __init__(self, device="cpu") -> None:
        super().__init__()

    def extract(self, images):
        x = nn.functional.adaptive_avg_pool2d(images.float() / 255.0, 4)
        return {"features": x.flatten(1)}


def register_toys() -> None:
    """Register the toy family, extractor and metrics once per process."""
    if "toy-pixels" not in EXTRACTORS:
        EXTRACTORS.register("toy-pixels")(ToyPixels)
    if TOY not in model_zoo.MODELS:
        @model_zoo.register(TOY)
        def build_toy(resolution: int, z_dim: int = 8, **_):
            return model_zoo.ModelSpec(G=ToyG(resolution, z_dim), D=ToyD(resolution), config={"z_dim": z_dim})

    if "toy-stat" not in METRICS:
        @METRICS.register("toy-stat")
        @dataclass
        class ToyStat(Metric):
            """Distance between mean generated and mean real features (times `scale`), plus the generated spread."""

            scale: float = 1.0
            name = "toy-stat"
            outputs = {"toy_gap": "lower", "toy_spread": None}
            needs = frozenset({"gen_features", "real_features"})

            def compute(self, ctx):
                g, r = ctx.gen_outputs()["features"], ctx.real_outputs()["features"]
                return {"toy_gap": self.scale * float(np.linalg.norm(g.mean(0) - r.mean(0))), "toy_spread": float(g.std())}

    if "toy-score" not in METRICS:
        @METRICS.register("toy-score")
        class ToyScore(Metric):
            """Mean of the generated features (higher is better); raises while TOY_FAIL is set."""

            name = "toy-score"
            outputs = {"toy_score": "higher"}

            def compute(self, ctx):
                if os.environ.get("TOY_FAIL"):
                    raise RuntimeError("injected failure")
                return {"toy_score": float(ctx.gen_outputs()["features"].mean())}


def register_inapplicable() -> None:
    """A metric that, like PPL in W on ProGAN, does not apply to the toy generator (NotApplicable)."""
    from ganbench.errors import NotApplicable

    if "toy-w" not in METRICS:
        @METRICS.register("toy-w")
        class ToyW(Metric):
            name = "toy-w"
            outputs = {"toy_w": "lower"}

            def compute(self, ctx):
                raise NotApplicable("toy-w needs a W space; ToyG has none")


def make_run(folder: Path, kimgs=(1, 2), resolution: int = 16, seed: int = 0, **extra_meta) -> Path:
    """Write toy checkpoints (distinct weights per kimg) into `folder`."""
    register_toys()
    folder.mkdir(parents=True, exist_ok=True)
    for i, kimg in enumerate(kimgs):
        torch.manual_seed(seed * 100 + i)
        spec = model_zoo.build(TOY, resolution)
        state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(),
                 "cur_nimg": int(kimg * 1000)}
        meta = {"arch": TOY, "config": spec.config, "resolution": resolution, "seed": seed, "kimg": kimg,
                "dataset": "shapes", **extra_meta}
        save_checkpoint(folder / snapshot_name(int(kimg)), state, meta)
    return folder
