"""Perceptual distances between image pairs, for perceptual path length.

`lpips-vgg16`: LPIPS v0.1 (Zhang et al. 2018) from the `lpips` package: its learned linear layers ship
inside that package; the VGG16 backbone is torchvision's ImageNet file, resolved through
`ganbench.assets` (`vgg16-torchvision`, or an explicit path) and never downloaded implicitly here.

`shapes-net`: the offline fallback. Same recipe as LPIPS without learned weights: each of shapes-net's
four conv maps is unit-normalised over channels, the squared difference is summed over channels,
averaged over space, and the four layers are summed.

Both take float NCHW RGB images in [-1, 1] and return one distance per pair. `perceptual_distance('auto')`
picks LPIPS when its backbone file is present locally and shapes-net otherwise; the chosen name is
what results record.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ganbench.errors import AssetError, ConfigError

LPIPS_ASSET = "vgg16-torchvision"
DISTANCE_NAMES = ("lpips-vgg16", "shapes-net")
# torchvision VGG16 `features` indices of the 13 conv layers LPIPS uses.
_VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Normalise feature vectors to unit length along channels (as LPIPS does)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPSDistance(nn.Module):
    """LPIPS(VGG16) v0.1 with the backbone loaded from a torchvision VGG16 state dict."""

    name = "lpips-vgg16"

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        import lpips

        from ganbench import assets

        path = assets.resolve(LPIPS_ASSET, weights, download=False)
        self.weights_sha256 = assets.sha256_file(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated/corrupt file or pickled code: one line naming the file
            raise AssetError(f"{path} is not a readable VGG16 state dict ({type(exc).__name__})") from None
        if not isinstance(state, dict):
            raise AssetError(f"{path} is not a torchvision VGG16 state dict (it holds a {type(state).__name__})")
        slices = {i: k for k in range(1, 6) for i in _slice_indices(k)}
        backbone = {}
        for i in _VGG_CONVS:
            for kind in ("weight", "bias"):
                key = f"features.{i}.{kind}"
                if key not in state:
                    raise AssetError(f"{path} is not a torchvision VGG16 state dict (missing {key})")
                backbone[f"slice{slices[i]}.{i}.{kind}"] = state[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision's deprecation notes about `pretrained`
            model = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False)
        self.lin_sha256 = assets.sha256_file(Path(lpips.__file__).parent / "weights" / "v0.1" / "vgg.pth")
        try:
            model.net.load_state_dict(backbone)
        except RuntimeError as exc:
            reason = str(exc).splitlines()[-1][:120]
            raise AssetError(f"{path} has VGG16 weights of the wrong shape ({reason})") from None
        self.model = model.eval().requires_grad_(False).to(device)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """LPIPS of each pair (x[i], y[i]) of [-1, 1] images: [N]."""
        if min(x.shape[2], x.shape[3]) < 16:
            raise ConfigError(f"LPIPS(VGG16) needs images of at least 16 px, got {x.shape[2]}x{x.shape[3]}; "
                              f"use distance='shapes-net'")
        return self.model(x, y, normalize=False).reshape(-1)


def _slice_indices(k: int) -> range:
    """torchvision `features` indices that lpips puts into slice k (relu1_2, relu2_2, ..., relu5_3)."""
    return (range(0, 4), range(4, 9), range(9, 16), range(16, 23), range(23, 30))[k - 1]


class ShapesNetDistance(nn.Module):
    """Unweighted LPIPS-style distance over shapes-net's conv maps (works offline, shapes-specific)."""

    name = "shapes-net"

    def __init__(self, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> None:
        super().__init__()
        from ganbench.features import get_extractor

        self.extractor = get_extractor("shapes-net", **({"weights": weights} if weights else {}), device=device)
        self.weights_sha256 = self.extractor.weights_sha256

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Distance of each pair (x[i], y[i]) of [-1, 1] images: [N]."""
        maps = self.extractor.feature_maps(torch.cat([x, y]).add(1).mul(127.5))
        total = torch.zeros(x.shape[0], dtype=torch.float32, device=x.device)
        for m in maps:
            a, b = _unit(m).chunk(2)
            total = total + (a - b).pow(2).sum(dim=1).mean(dim=(1, 2)).to(total.device)
        return total


def lpips_available(weights: str | os.PathLike | None = None) -> bool:
    """Whether the LPIPS backbone file is present locally; a present file that fails its check is an error."""
    from ganbench import assets

    if weights is None and not any(p.is_file() for p in assets.candidates(assets.get_asset(LPIPS_ASSET))):
        return False
    assets.resolve(LPIPS_ASSET, weights, download=False)  # raises on a wrong or missing explicit file
    return True


def resolve_distance_name(name: str, weights: str | os.PathLike | None = None) -> str:
    """'auto' -> 'lpips-vgg16' when its backbone is present locally, else 'shapes-net'; others are checked."""
    if name == "auto":
        return "lpips-vgg16" if lpips_available(weights) else "shapes-net"
    if name not in DISTANCE_NAMES:
        raise ConfigError(f"unknown perceptual distance {name!r}; known: auto, {', '.join(DISTANCE_NAMES)}")
    return name


def perceptual_distance(name: str = "auto", weights: str | os.PathLike | None = None,
                        device: str | torch.device = "cpu") -> LPIPSDistance | ShapesNetDistance:
    """Build the distance `name` ('auto', 'lpips-vgg16' or 'shapes-net'); `weights` overrides its file."""
    resolved = resolve_distance_name(name, weights)
    cls = LPIPSDistance if resolved == "lpips-vgg16" else ShapesNetDistance
    return cls(weights, device=device)
