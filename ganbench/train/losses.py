"""GAN losses by name: `wgan-gp` (ProGAN), `ns-r1` (StyleGAN), `stylegan2` (NS + lazy R1 + path length).

A loss accumulates gradients for one training phase at a time, as in StyleGAN2-ADA: `Gmain`, `Greg`,
`Gboth`, `Dmain`, `Dreg`, `Dboth`. `*reg` phases run every `interval` minibatches with the gradient
scaled by `gain = interval` (lazy regularisation); `*both` phases run main and regulariser together.
The loop decides which phases exist from `reg_intervals()`; the loss only computes.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.registry import Registry

LOSSES: Registry[type["GANLoss"]] = Registry("loss")


def _mean(t: torch.Tensor) -> float:
    return float(t.detach().mean())


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with a kernel of half-width 3 sigma (reflect padding where it fits)."""
    radius = int(math.ceil(3 * sigma))
    if radius < 1:
        return images
    t = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    h, w = images.shape[2:]
    mode = "reflect" if radius < min(h, w) else "replicate"
    x = F.pad(images, [radius, radius, radius, radius], mode=mode)
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


class GANLoss(ABC):
    """Shared machinery: running G (with optional style mixing) and D (with augmentation and blur)."""

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: nn.Module | None = None,
                 style_mixing: float = 0.0, blur_sigma: float = 0.0, blur_fade_kimg: float = 0.0,
                 **unused: Any) -> None:
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.style_mixing = float(style_mixing or 0.0)
        self.blur_init_sigma, self.blur_fade_kimg = float(blur_sigma or 0.0), float(blur_fade_kimg or 0.0)
        self.on_real_logits: Callable[[torch.Tensor], None] | None = None   # ADA statistics hook
        self.blur_sigma = 0.0

    # -- schedule ------------------------------------------------------------------------------------
    def reg_intervals(self) -> dict[str, int | None]:
        """Lazy-regularisation interval per network (None = regulariser in the main phase, every step)."""
        return {"G": None, "D": None}

    def set_progress(self, cur_nimg: int) -> None:
        """Update schedules that depend on training progress (D input blur fade-out)."""
        if self.blur_init_sigma > 0 and self.blur_fade_kimg > 0:
            self.blur_sigma = max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0.0) * self.blur_init_sigma
        else:
            self.blur_sigma = self.blur_init_sigma
        if hasattr(self.D, "blur_sigma"):     # the discriminator blurs its own input
            self.D.blur_sigma = self.blur_sigma

    # -- networks ------------------------------------------------------------------------------------
    def run_G(self, z: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generate images; returns (images, ws) where ws is None for networks without a W space."""
        G = self.G
        if not hasattr(G, "mapping") or not hasattr(G, "synthesis"):
            return G(z, c, noise_mode="random"), None
        ws = G.mapping(z, c)
        if self.style_mixing > 0 and ws.shape[1] > 1:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) >= self.style_mixing:
                cutoff = ws.shape[1]
            if cutoff < ws.shape[1]:
                ws2 = G.mapping(torch.randn_like(z), c)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return G.synthesis(ws, noise_mode="random"), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Discriminator logits after augmentation and (StyleGAN3-R) blur."""
        if self.blur_sigma > 0 and not hasattr(self.D, "blur_sigma"):
            img = gaussian_blur(img, self.blur_sigma)
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def _real_logits(self, real: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        logits = self.run_D(real, c)
        if self.on_real_logits is not None:
            self.on_real_logits(logits)
        return logits

    # -- state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    @abstractmethod
    def accumulate_gradients(self, phase: str, real: torch.Tensor, real_c: torch.Tensor | None,
                             gen_z: torch.Tensor, gen_c: torch.Tensor | None, gain: float) -> dict[str, float]:
        """Backpropagate the loss terms of `phase` (scaled by `gain`); returns scalar stats."""


@LOSSES.register("wgan-gp")
class WGANGPLoss(GANLoss):
    """Wasserstein loss with gradient penalty on real/fake interpolates and a drift term (ProGAN)."""

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: nn.Module | None = None,
                 gp_lambda: float = 10.0, gp_target: float = 1.0, drift: float = 1e-3, **kw: Any) -> None:
        super().__init__(G, D, augment_pipe, **kw)
        self.gp_lambda, self.gp_target, self.drift = gp_lambda, gp_target, drift

    def accumulate_gradients(self, phase, real, real_c, gen_z, gen_c, gain):  # noqa: D102
        stats: dict[str, float] = {}
        if phase in ("Gmain", "Gboth"):
            fake, _ = self.run_G(gen_z, gen_c)
            loss = -self.run_D(fake, gen_c)
            loss.mean().mul(gain).backward()
            stats["loss/G"] = _mean(loss.detach())
        if phase in ("Dmain", "Dboth", "Dreg"):
            with torch.no_grad():
                fake, _ = self.run_G(gen_z, gen_c)
            terms = torch.zeros([], device=real.device)
            if phase != "Dreg":
                fake_logits = self.run_D(fake, gen_c)
                real_logits = self._real_logits(real, real_c)
                wdist = fake_logits - real_logits
                terms = terms + (wdist + self.drift * real_logits.square()).mean()
                stats.update({"loss/D": _mean(wdist), "D/real": _mean(real_logits),
                              "D/fake": _mean(fake_logits)})
            if phase != "Dmain":
                alpha = torch.rand([real.shape[0], 1, 1, 1], device=real.device, dtype=real.dtype)
                mixed = (real.detach() + alpha * (fake.detach() - real.detach())).requires_grad_(True)
                logits = self.run_D(mixed, real_c)
                (grad,) = torch.autograd.grad(logits.sum(), mixed, create_graph=True)
                norm = grad.flatten(1).norm(dim=1)
                gp = (norm - self.gp_target).square() * (self.gp_lambda / self.gp_target ** 2)
                terms = terms + gp.mean()
                stats["loss/gp"] = _mean(gp)
            terms.mul(gain).backward()
        return stats


@LOSSES.register("ns-r1")
class NonSaturatingR1Loss(GANLoss):
    """Non-saturating logistic loss with R1 penalty gamma/2 * |grad D(real)|^2 (StyleGAN)."""

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: nn.Module | None = None,
                 r1_gamma: float = 10.0, r1_interval: int | None = 1, **kw: Any) -> None:
        super().__init__(G, D, augment_pipe, **kw)
        self.r1_gamma = float(r1_gamma)
        self.r1_interval = int(r1_interval) if r1_interval else 1

    def reg_intervals(self) -> dict[str, int | None]:
        return {"G": None, "D": self.r1_interval if self.r1_interval > 1 and self.r1_gamma > 0 else None}

    def _g_main(self, gen_z, gen_c, gain, stats):
        fake, _ = self.run_G(gen_z, gen_c)
        loss = F.softplus(-self.run_D(fake, gen_c))
        loss.mean().mul(gain).backward()
        stats["loss/G"] = _mean(loss.detach())

    def accumulate_gradients(self, phase, real, real_c, gen_z, gen_c, gain):  # noqa: D102
        stats: dict[str, float] = {}
        if phase in ("Gmain", "Gboth"):
            self._g_main(gen_z, gen_c, gain, stats)
        if phase in ("Dmain", "Dboth"):
            with torch.no_grad():
                fake, _ = self.run_G(gen_z, gen_c)
            fake_logits = self.run_D(fake, gen_c)
            F.softplus(fake_logits).mean().mul(gain).backward()
            stats["D/fake"] = _mean(fake_logits)
            stats["loss/D_fake"] = _mean(F.softplus(fake_logits))
        if phase in ("Dmain", "Dreg", "Dboth"):
            with_r1 = phase in ("Dreg", "Dboth") and self.r1_gamma > 0
            real_in = real.detach().requires_grad_(with_r1)
            real_logits = self.run_D(real_in, real_c) if phase == "Dreg" else self._real_logits(real_in, real_c)
            total = torch.zeros([], device=real.device)
            if phase != "Dreg":
                loss_real = F.softplus(-real_logits)
                total = total + loss_real.mean()
                stats["D/real"] = _mean(real_logits)
                stats["loss/D"] = stats.pop("loss/D_fake") + _mean(loss_real)
            if with_r1:
                (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
                r1 = grad.square().sum(dim=[1, 2, 3]) * (self.r1_gamma / 2)
                total = total + r1.mean() + real_logits.mean() * 0   # keep every output in the graph
                stats["loss/r1"] = _mean(r1)
            total.mul(gain).backward()
        return stats


@LOSSES.register("stylegan2")
class StyleGAN2Loss(NonSaturatingR1Loss):
    """NS + lazy R1 plus path-length regularisation on a shrunk batch every `pl_interval` steps."""

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: nn.Module | None = None,
                 r1_gamma: float = 10.0, r1_interval: int | None = 16, pl_weight: float = 2.0,
                 pl_interval: int | None = 4, pl_decay: float = 0.01, pl_batch_shrink: int = 2,
                 **kw: Any) -> None:
        super().__init__(G, D, augment_pipe, r1_gamma=r1_gamma, r1_interval=r1_interval, **kw)
        self.pl_weight, self.pl_decay = float(pl_weight or 0.0), float(pl_decay)
        self.pl_interval = int(pl_interval) if pl_interval else 1
        self.pl_batch_shrink = max(int(pl_batch_shrink or 1), 1)
        self.pl_mean = torch.zeros([])

    def reg_intervals(self) -> dict[str, int | None]:
        intervals = super().reg_intervals()
        has_w = hasattr(self.G, "mapping") and hasattr(self.G, "synthesis")
        if self.pl_weight > 0 and has_w:
            intervals["G"] = self.pl_interval if self.pl_interval > 1 else None
        return intervals

    def accumulate_gradients(self, phase, real, real_c, gen_z, gen_c, gain):  # noqa: D102
        if phase not in ("Greg", "Gboth"):
            return super().accumulate_gradients(phase, real, real_c, gen_z, gen_c, gain)
        stats: dict[str, float] = {}
        if phase == "Gboth":
            self._g_main(gen_z, gen_c, gain, stats)
        if self.pl_weight > 0 and hasattr(self.G, "mapping"):
            n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            img, ws = self.run_G(gen_z[:n], None if gen_c is None else gen_c[:n])
            noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
            (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
            lengths = grad.square().sum(2).mean(1).sqrt()
            self.pl_mean = self.pl_mean.to(lengths.device)
            pl_mean = self.pl_mean.lerp(lengths.mean().detach(), self.pl_decay)
            self.pl_mean = pl_mean.detach()
            penalty = (lengths - pl_mean).square() * self.pl_weight
            (penalty.mean() + img[:, 0, 0, 0].sum() * 0).mul(gain).backward()
            stats["loss/pl"] = _mean(penalty.detach())
            stats["pl_mean"] = float(self.pl_mean)
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "pl_mean" in state:
            self.pl_mean = torch.as_tensor(state["pl_mean"]).clone().float()


def build_loss(name: str, G: nn.Module, D: nn.Module, augment_pipe: nn.Module | None = None,
               **params: Any) -> GANLoss:
    """Instantiate loss `name` with the family's training parameters (unknown keys are ignored)."""
    return LOSSES.get(name)(G, D, augment_pipe, **params)
