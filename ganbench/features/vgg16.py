"""`vgg16`: VGG16 fc2 features (4096-d) for precision/recall (Kynkäänniemi et al. 2019, NVlabs).

Variants, with weights resolved through `ganbench.assets`:
- `nvlabs` (default): NVlabs' TorchScript `vgg16.pt` (loaded with `torch.jit.load`: a serialized graph,
  not a pickle), called as NVlabs does: uint8-range images in, `return_features=True`, the network
  resizes internally (resize mode `nvlabs-internal`).
- `torchvision`: torchvision's ImageNet VGG16 (`vgg16-397923af.pth`, read with
  `torch.load(weights_only=True)`); images resized to 224 with antialiased bilinear, ImageNet
  normalisation, features = output of the second fully connected layer after its ReLU.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from ganbench.errors import AssetError, ConfigError
from ganbench.features.base import EXTRACTORS, FeatureExtractor

VARIANTS = {"nvlabs": ("vgg16-nvlabs", "nvlabs-internal"), "torchvision": ("vgg16-torchvision", "bilinear-antialias-224")}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def torchvision_vgg16(state: dict[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """torchvision's VGG16 architecture, optionally with a state dict."""
    from torchvision.models import vgg16

    net = vgg16(weights=None)
    if state is not None:
        net.load_state_dict(state)
    return net


@EXTRACTORS.register("vgg16")
class VGG16Extractor(FeatureExtractor):
    """VGG16 'features': fc2 activations (4096-d)."""

    name = "vgg16"
    feature_dim = 4096
    outputs = ("features",)

    def __init__(self, variant: str = "nvlabs", weights: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu") -> None:
        super().__init__()
        from ganbench import assets

        if variant not in VARIANTS:
            raise ConfigError(f"unknown vgg16 variant {variant!r}; known: {', '.join(VARIANTS)}")
        asset, self.resize_mode = VARIANTS[variant]
        self.variant = variant
        self.device = torch.device(device)
        path = assets.resolve(asset, weights)
        self.weights_sha256 = assets.sha256_file(path)
        try:
            if variant == "nvlabs":
                self.net = assets.load_torchscript(path)
            else:
                self.net = torchvision_vgg16(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # any failure to read the file is the file's fault: one line naming it
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise AssetError(f"{path} is not a usable VGG16 weight file for variant {variant!r} ({first})") from None
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.eval().to(self.device)

    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ConfigError(f"vgg16 expects Nx3xHxW images, got {tuple(images.shape)}")
        x = images.to(self.device)
        if self.variant == "nvlabs":
            return {"features": self.net(x, return_features=True).float().cpu()}
        x = F.interpolate(x.float() / 255, size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
        h = self.net.avgpool(self.net.features((x - mean) / std)).flatten(1)
        return {"features": self.net.classifier[:5](h).float().cpu()}
