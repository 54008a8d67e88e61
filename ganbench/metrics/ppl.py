"""Perceptual path length (Karras et al., StyleGAN): how abruptly images change along latent paths.

For each sample: z0, z1 ~ N(0, I), t ~ U(0, 1) ('full') or t = 0 ('end'); the endpoints t and t + eps
(eps = 1e-4) are interpolated with slerp in Z or lerp in W (W = the mapping output, all layers), both
images are generated, optionally centre-cropped to the face region (NVlabs' crop), box-downsampled to
256 px when larger, and their perceptual distance / eps^2 is the sample's value. Values below the
1st and above the 99th percentile are dropped and the rest averaged. As NVlabs, the generator runs
in float32 (`force_fp32=True` for networks with fp16 layers) on an eval-mode copy when it is training.

Noise is shared within a pair: both images of a batch are generated with noise_mode='random' from
the same torch RNG state (re-seeded per batch inside `torch.random.fork_rng`), so the i-th pair sees
identical noise inputs and differs only through its latent; different pairs get different noise.
Latents, t and labels are drawn per batch from one torch.Generator seeded with `seed`, so a value
is reproducible for a given (seed, batch_size).

Distance: `distance='auto'` uses LPIPS(VGG16) when its backbone file is available locally and the
shapes-net feature-map distance otherwise; `params()` names the one actually used
('lpips-vgg16' or 'shapes-net'), and numbers from the two are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from ganbench.errors import ConfigError, NotApplicable
from ganbench.heap import reuse_freed_memory
from ganbench.metrics._generator import fp32_kwargs, measured_generator, require_finite
from ganbench.metrics._sampling import label_sampler, progress_reporter
from ganbench.metrics.base import Metric, register_variant

if TYPE_CHECKING:
    from ganbench.metrics.context import MetricContext

SPACES = ("z", "w")
SAMPLINGS = ("full", "end")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between the directions of a and b (rows), returning unit vectors."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    d = (a * b).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    p = t * torch.acos(d)
    c = b - d * a
    c = c / c.norm(dim=-1, keepdim=True)
    out = a * torch.cos(p) + c * torch.sin(p)
    return out / out.norm(dim=-1, keepdim=True)


def has_w_space(G: Any) -> bool:
    """Whether G exposes the style-based mapping/synthesis split."""
    return callable(getattr(G, "mapping", None)) and callable(getattr(G, "synthesis", None))


def crop_and_downsample(img: torch.Tensor, resolution: int, crop: bool) -> torch.Tensor:
    """NVlabs' face crop (rows 3/8..7/8, columns 2/8..6/8) and box downsampling to 256 px when larger."""
    if crop:
        if img.shape[2] != img.shape[3]:
            raise ConfigError(f"PPL crop needs square images, got {img.shape[2]}x{img.shape[3]}")
        c = img.shape[2] // 8
        img = img[:, :, c * 3:c * 7, c * 2:c * 6]
    factor = resolution // 256
    if factor > 1:
        n, ch, h, w = img.shape
        img = img.reshape(n, ch, h // factor, factor, w // factor, factor).mean(dim=(3, 5))
    return img


def filtered_mean(dist: np.ndarray) -> float:
    """Mean of the values between the 1st ('lower') and 99th ('higher') percentiles, as NVlabs."""
    dist = np.asarray(dist, dtype=np.float64)
    if dist.size == 0:
        raise ConfigError("PPL got no samples")
    lo = np.percentile(dist, 1, method="lower")
    hi = np.percentile(dist, 99, method="higher")
    return float(dist[(dist >= lo) & (dist <= hi)].mean())


@torch.no_grad()
@reuse_freed_memory()  # each batch reuses the last one's pages instead of faulting in new ones (LPIPS at 256 px: ~30 %)
def path_lengths(G: Any, distance: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n: int, space: str = "z",
                 sampling: str = "full", epsilon: float = 1e-4, crop: bool = False, batch_size: int = 16,
                 seed: int = 0, device: str | torch.device = "cpu",
                 labels: Callable[[int, torch.Generator], torch.Tensor | None] | None = None,
                 report: Callable[[int], None] | None = None) -> np.ndarray:
    """Per-sample distance(img(t), img(t + eps)) / eps^2 for `n` random paths of generator G: [n]."""
    if space not in SPACES or sampling not in SAMPLINGS:
        raise ConfigError(f"PPL space must be one of {SPACES} and sampling one of {SAMPLINGS}, "
                          f"got {space!r}, {sampling!r}")
    if space == "w" and not has_w_space(G):
        raise NotApplicable(f"PPL in W needs a style-based generator with mapping/synthesis; "
                            f"{type(G).__name__} has no W space (use ppl_zfull / ppl_zend)")
    G = measured_generator(G)
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    devices = [device] if device.type == "cuda" else []
    out = []
    for k, start in enumerate(range(0, n, batch_size)):
        b = min(batch_size, n - start)
        t = torch.rand([b, 1], generator=gen) * (1.0 if sampling == "full" else 0.0)
        z0, z1 = torch.randn([2 * b, G.z_dim], generator=gen).to(device).chunk(2)
        t = t.to(device)
        c = labels(b, gen) if labels is not None else None
        c = None if c is None else c.to(device)
        if space == "w":
            w0, w1 = G.mapping(torch.cat([z0, z1]), None if c is None else torch.cat([c, c]),
                               truncation_psi=1.0).chunk(2)
            inputs = [w0.lerp(w1, t[:, :, None]), w0.lerp(w1, t[:, :, None] + epsilon)]
            fp32 = fp32_kwargs(G, G.synthesis)
            synth: Callable[[torch.Tensor], torch.Tensor] = lambda x: G.synthesis(x, noise_mode="random", **fp32)  # noqa: E731
        else:
            inputs = [slerp(z0, z1, t), slerp(z0, z1, t + epsilon)]
            fp32 = fp32_kwargs(G, G)
            synth = lambda x: G(x, c, truncation_psi=1.0, noise_mode="random", **fp32)  # noqa: E731
        images = []
        for x in inputs:  # the same RNG state for both ends: identical noise within each pair
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(seed * 1000003 + k)
                img = synth(x).float()
            require_finite(img, "generator output", "generator")
            img = crop_and_downsample(img, int(G.img_resolution), crop)
            images.append(img.repeat(1, 3, 1, 1) if img.shape[1] == 1 else img)
        d = distance(images[0], images[1]).reshape(-1).double().cpu() / epsilon**2
        out.append(d.numpy())
        if report is not None:
            report(start + b)
    return np.concatenate(out)


@dataclass
class PPL(Metric):  # registered below once per (space, sampling)
    """Perceptual path length for one (space, sampling); NVlabs used 50k samples (StyleGAN: 100k)."""

    space: str = "z"
    sampling: str = "full"
    epsilon: float = 1e-4
    crop: bool = False
    distance: str = "auto"
    distance_weights: str | None = None
    n_gen: int | None = None  # None: the context's n_gen
    batch_size: int = 16

    needs = frozenset({"generator", "labels"})
    reference = "NVlabs metrics/perceptual_path_length.py (LPIPS VGG16, eps=1e-4, 1st-99th percentile mean)"
    cost = "two generator calls and one perceptual distance per sample over n_gen samples"
    work_per_sample = 3.0

    def __post_init__(self) -> None:
        if self.space not in SPACES or self.sampling not in SAMPLINGS:
            raise ConfigError(f"PPL space must be one of {SPACES} and sampling one of {SAMPLINGS}, "
                              f"got {self.space!r}, {self.sampling!r}")
        fixed = type(self).__dataclass_fields__
        if self.name and (self.space, self.sampling) != (fixed["space"].default, fixed["sampling"].default):
            raise ConfigError(f"metric {self.name} fixes its space and sampling; use ppl_{self.space}{self.sampling}")
        if not (isinstance(self.epsilon, (int, float)) and 0 < float(self.epsilon) < 1):
            # 0 divides by zero (NaN that would be blamed on the network); NVlabs uses 1e-4
            raise ConfigError(f"bad parameter {self.name or 'ppl'}.epsilon={self.epsilon!r}: the path step must be "
                              "a number between 0 and 1 (exclusive; NVlabs uses 1e-4)")
        from ganbench.features.lpips_distance import DISTANCE_NAMES

        if self.distance not in ("auto",) + DISTANCE_NAMES:
            known = ", ".join(("auto",) + DISTANCE_NAMES)
            raise ConfigError(f"unknown perceptual distance {self.distance!r}; known: {known}")

    @property
    def key(self) -> str:
        """The result key: the registered name (e.g. `ppl_wend`, or NVlabs' `ppl2_wend`)."""
        return self.name or f"ppl_{self.space}{self.sampling}"

    def params(self) -> dict[str, Any]:
        """Parameters, with `distance` resolved to the distance that is (or would be) used."""
        from ganbench.features.lpips_distance import resolve_distance_name

        out = super().params()
        out["distance"] = resolve_distance_name(self.distance, self.distance_weights)
        return out

    def not_applicable_to(self, G: Any) -> str | None:
        if self.space == "w" and not has_w_space(G):
            return (f"{self.key} needs a style-based generator with a W space; "
                    f"{type(G).__name__} has none (use ppl_z{self.sampling})")
        return None

    def compute(self, ctx: "MetricContext") -> dict[str, float]:
        from ganbench.features.lpips_distance import perceptual_distance

        G = ctx.generator
        if not isinstance(G, torch.nn.Module):
            raise ConfigError(f"{self.key} needs a generator network, not pre-generated images")
        why = self.not_applicable_to(G)
        if why:
            raise NotApplicable(why)
        dist = perceptual_distance(self.distance, self.distance_weights, device=ctx.device)
        n = self.n_gen or ctx.num_gen()
        values = path_lengths(G, dist, n, self.space, self.sampling, self.epsilon, self.crop, self.batch_size,
                              ctx.seed, ctx.device, label_sampler(ctx, G), progress_reporter(ctx, self.key, n))
        return {self.key: filtered_mean(values)}


register_variant(PPL, "ppl_zfull", "PPL in Z, t ~ U(0, 1).", {"ppl_zfull": "lower"}, space="z", sampling="full")
register_variant(PPL, "ppl_wfull", "PPL in W, t ~ U(0, 1).", {"ppl_wfull": "lower"}, space="w", sampling="full")
register_variant(PPL, "ppl_zend", "PPL in Z at the path ends (t = 0).", {"ppl_zend": "lower"},
                 space="z", sampling="end")
register_variant(PPL, "ppl_wend", "PPL in W at the path ends (t = 0); NVlabs' `ppl2_wend` is this with 50k samples.",
                 {"ppl_wend": "lower"}, space="w", sampling="end")
register_variant(PPL, "ppl2_wend", "NVlabs' `ppl2_wend` (StyleGAN2 onwards): W, end sampling, no crop, 50k samples.",
                 {"ppl2_wend": "lower"}, space="w", sampling="end", n_gen=50000)
