"""The feature-extractor interface and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch
from torch import nn

from ganbench.registry import Registry


class FeatureExtractor(nn.Module, ABC):
    """Maps uint8 NCHW images to features in one pass; every output a metric may need comes from that pass.

    `outputs` names what `extract` returns: always 'features' ([N, feature_dim] float32), plus
    'logits' for IS and 'attributes' for linear separability where the network has them.
    `weights_sha256` and `resize_mode` are recorded with every result computed from this extractor.
    """

    name: str
    feature_dim: int
    outputs: tuple[str, ...] = ("features",)
    weights_sha256: str = ""
    resize_mode: str = "none"

    @abstractmethod
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """All outputs for a batch of uint8 NCHW images (any resolution; resizing is the extractor's job)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extract(images)["features"]

    def describe(self) -> dict[str, str]:
        """What must be recorded next to a number computed with this extractor."""
        return {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize_mode": self.resize_mode}


EXTRACTORS: Registry[Callable[..., FeatureExtractor]] = Registry("feature extractor")
