"""`shapes-net`: the embedded feature network, a small CNN trained on the `shapes` attributes.

It plays Inception's part for the offline `shapes` benchmark: its penultimate layer (256-d, scaled
by FEATURE_SCALE) feeds FID/KID/PR, its shape-class logits feed IS, its 13 attribute logits (one per
`BINARY_ATTRIBUTE_NAMES`) feed linear separability, and `feature_maps` feeds a perceptual distance
for PPL when LPIPS weights are absent. Weights ship with the package
(`ganbench/assets_data/shapes_net.safetensors`, reproduced by `ganbench/features/_train_shapes_net.py`).

Input: uint8 (or float in [0, 255]) NCHW RGB at any resolution. Images whose side is not
`NATIVE_RESOLUTION` are resized with bilinear interpolation with antialiasing (resize mode
`bilinear-antialias`), i.e. area-like averaging when shrinking and plain bilinear when enlarging.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.data.shapes import BINARY_ATTRIBUTE_NAMES, SHAPE_CLASSES
from ganbench.errors import DataError
from ganbench.features.base import EXTRACTORS, FeatureExtractor

NATIVE_RESOLUTION = 32
FEATURE_DIM = 256
RESIZE_MODE = "bilinear-antialias"
CHANNELS = (32, 32, 64, 128)  # conv widths at 32, 16, 8, 4 px
# The embedding's raw mean square is ~19; scaled by 0.1 it is ~0.2, the order of Inception's pool3,
# so KID's cubic kernel (x.y/d + 1)^3 is not dominated by the norm. Scale-free metrics do not care.
FEATURE_SCALE = 0.1


def to_native(images: torch.Tensor) -> torch.Tensor:
    """uint8/float [0,255] NCHW (1 or 3 channels, any size) -> float [-1, 1] NCHW RGB at the native size."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"shapes-net expects NCHW images with 1 or 3 channels, got shape {tuple(images.shape)}")
    x = images.to(torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[2] != NATIVE_RESOLUTION or x.shape[3] != NATIVE_RESOLUTION:
        x = F.interpolate(x, size=(NATIVE_RESOLUTION, NATIVE_RESOLUTION), mode="bilinear",
                          align_corners=False, antialias=True)
    return x / 127.5 - 1.0


class ShapesNet(nn.Module):
    """Four 3x3 conv stages (32 -> 4 px), a 256-d embedding, a shape-class head and an attribute head."""

    def __init__(self) -> None:
        super().__init__()
        widths = (3,) + CHANNELS
        self.convs = nn.ModuleList(
            nn.Conv2d(widths[i], widths[i + 1], 3, stride=1 if i == 0 else 2, padding=1) for i in range(len(CHANNELS))
        )
        spatial = NATIVE_RESOLUTION // 2 ** (len(CHANNELS) - 1)
        self.embed = nn.Linear(CHANNELS[-1] * spatial * spatial, FEATURE_DIM)
        self.classify = nn.Linear(FEATURE_DIM, len(SHAPE_CLASSES))
        self.attribute = nn.Linear(FEATURE_DIM, len(BINARY_ATTRIBUTE_NAMES))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-normal weights (for leaky ReLU 0.2) and zero biases."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)

    def maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after every conv stage for a native-size [-1, 1] batch."""
        out = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.leaky_relu(self.embed(self.maps(x)[-1].flatten(1)), 0.2)
        return {"features": h * FEATURE_SCALE, "logits": self.classify(h), "attributes": self.attribute(h)}


def weights_path() -> Path:
    """The shipped weight file (package data)."""
    return Path(__file__).resolve().parent.parent / "assets_data" / "shapes_net.safetensors"


@EXTRACTORS.register("shapes-net")
class ShapesNetExtractor(FeatureExtractor):
    """The embedded extractor; `weights` overrides the shipped file (resolved through ganbench.assets)."""

    name = "shapes-net"
    feature_dim = FEATURE_DIM
    outputs = ("features", "logits", "attributes")
    resize_mode = RESIZE_MODE
    version = 2  # bumped whenever the outputs change for the same weights (keys the real-stats cache)

    def __init__(self, weights: str | Path | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        from safetensors.torch import load_file

        from ganbench import assets

        path = assets.resolve("shapes-net", weights)
        self.weights_sha256 = assets.sha256_file(path)
        self.net = ShapesNet()
        try:
            self.net.load_state_dict(load_file(str(path)))
        except Exception as exc:  # wrong keys/shapes or a corrupt file: one line naming the file
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise assets.AssetError(f"{path} is not a shapes-net weight file ({first})") from None
        self.net.requires_grad_(False).eval().to(device)
        self.device = torch.device(device)

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.net(to_native(images.to(self.device)))
        return {k: v.float().cpu() for k, v in out.items()}

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Intermediate conv maps (4 stages) of uint8/float [0,255] images; differentiable for float input."""
        return self.net.maps(to_native(images.to(self.device)))
