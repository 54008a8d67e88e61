"""Random-weight (Kaiming-init) stand-ins for the pretrained files, for offline tests and benchmarks.

They have the exact formats of the real assets (torch-fidelity's Inception state dict, an
NVlabs-style TorchScript Inception with `layers` and the `forward(img, return_features,
use_fp16, no_output_bias)` signature, NVlabs-style TorchScript VGG16, torchvision VGG16 state
dict), so every loading path runs without the internet. Kaiming init keeps the features O(1);
PyTorch's default init would make Inception features ~1e-8 and every metric degenerate. The
Inception output layer is scaled up (OUTPUT_GAIN) so its softmax is far from uniform and IS is not
trivially 1.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


OUTPUT_GAIN = 20.0


def _kaiming_(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.01)


def torch_fidelity_inception_module(seed: int = 0) -> nn.Module:
    """torch-fidelity's Inception-v3 module with Kaiming-normal random weights."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args, **kwargs):  # skip the pretrained load in __init__
            return None

    import io

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    net = _Unloaded("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=empty)
    _kaiming_(net, seed)
    with torch.no_grad():
        net.fc.weight.mul_(OUTPUT_GAIN)
    return net


def write_torch_fidelity_inception(path: str | os.PathLike, seed: int = 0) -> Path:
    """A random Inception state dict in torch-fidelity's (= pytorch-fid's) format."""
    net = torch_fidelity_inception_module(seed)
    torch.save({k: v.clone() for k, v in net.state_dict().items()}, path)
    return Path(path)


class _NVInception(nn.Module):
    """NVlabs-style interface over torch-fidelity's Inception trunk (internal resize: torch bilinear)."""

    def __init__(self, layers: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.layers = layers
        self.output = nn.Linear(2048, 1008)
        with torch.no_grad():
            self.output.weight.copy_(weight)
            self.output.bias.copy_(bias)

    def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                no_output_bias: bool = False) -> torch.Tensor:
        x = img.to(torch.float32)
        if x.shape[2] != 299 or x.shape[3] != 299:
            x = F.interpolate(x, size=[299, 299], mode="bilinear", align_corners=False)
        features = self.layers((x - 128) / 128).reshape(-1, 2048)
        if return_features:
            return features
        logits = features @ self.output.weight.t()
        if not no_output_bias:
            logits = logits + self.output.bias
        return torch.softmax(logits, dim=1)


def write_torchscript_inception(path: str | os.PathLike, seed: int = 0) -> Path:
    """A random TorchScript Inception with NVlabs' interface and the same weights as the state-dict file."""
    tf = torch_fidelity_inception_module(seed).eval()
    names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
             "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
             "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool"]
    trunk = nn.Sequential(*[getattr(tf, n) for n in names]).eval()
    layers = torch.jit.trace(trunk, torch.zeros(1, 3, 299, 299))
    scripted = torch.jit.script(_NVInception(layers, tf.fc.weight.detach(), tf.fc.bias.detach()).eval())
    scripted.save(str(path))
    return Path(path)


class _NVVGG(nn.Module):
    """NVlabs-style VGG16 interface: uint8-range input, internal resize to 224, fc2 features."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.features = net.features
        self.head = net.classifier[:5]

    def forward(self, img: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = F.interpolate(img.to(torch.float32), size=[224, 224], mode="bilinear", align_corners=False) / 127.5 - 1
        return self.head(torch.flatten(F.adaptive_avg_pool2d(self.features(x), [7, 7]), 1))


def write_torchvision_vgg16(path: str | os.PathLike, seed: int = 0) -> Path:
    """A random VGG16 state dict in torchvision's format."""
    from ganbench.features.vgg16 import torchvision_vgg16

    net = torchvision_vgg16()
    _kaiming_(net, seed)
    torch.save(net.state_dict(), path)
    return Path(path)


def write_torchscript_vgg16(path: str | os.PathLike, seed: int = 0) -> Path:
    """A random TorchScript VGG16 with NVlabs' call signature."""
    from ganbench.features.vgg16 import torchvision_vgg16

    net = torchvision_vgg16()
    _kaiming_(net, seed)
    torch.jit.script(_NVVGG(net).eval()).save(str(path))
    return Path(path)
