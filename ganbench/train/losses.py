"""GAN losses by name: `wgan-gp` (ProGAN), `ns-r1` (StyleGAN), `stylegan2` (NS + lazy R1 + path length).

A loss accumulates gradients for one training phase at a time, as in StyleGAN2-ADA: `Gmain`, `Greg`,
`Gboth`, `Dmain`, `Dreg`, `Dboth`. `*reg` phases run every `interval` minibatches with the gradient
scaled by `gain = interval` (lazy regularisation); `*both` phases run main and regulariser together.
The loop decides which phases exist from `reg_intervals()`; the loss only computes.

Two details differ between NVIDIA's two StyleGAN2 codebases, so each family names its reference's choice:
- `ema_update`: which generator passes move the networks' running averages (w_avg, StyleGAN3's
  magnitude_ema). 'd_phase' (NVlabs/stylegan3): only the generator pass of the D phase;
  'all_but_mixing' (stylegan2-ada-pytorch, TF StyleGAN): every pass except the style-mixing mapping call.
- `zero_terms`: stylegan2-ada-pytorch adds `output * 0` to the regularisers so every parameter of the
  network gets a (zero) gradient and Adam steps it; NVlabs/stylegan3 does not, so parameters a
  regulariser does not reach keep grad None and Adam skips them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import ConfigError
from ganbench.registry import Registry

LOSSES: Registry[type["GANLoss"]] = Registry("loss")

# Generator passes that update the running averages, per `ema_update` policy. Passes: 'Gmain' (G loss),
# 'Greg' (path length), 'Dgen' (fakes for D); the style-mixing mapping call never updates them.
EMA_UPDATE_PASSES: dict[str, frozenset[str]] = {
    "d_phase": frozenset({"Dgen"}),                          # NVlabs/stylegan3 training/loss.py
    "all_but_mixing": frozenset({"Gmain", "Greg", "Dgen"}),  # stylegan2-ada-pytorch training/loss.py
}


def _mean(t: torch.Tensor) -> float:
    return float(t.detach().mean())


def blur_images(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """NVIDIA's D-input blur (stylegan3 loss.py): taps 2^-(x/sigma)^2 for |x| <= floor(3 sigma), zero padding."""
    from model_zoo.layers import filter2d
    from model_zoo.stylegan3 import blur_kernel

    f = blur_kernel(sigma)
    return images if f is None else filter2d(images, f.to(images.device, images.dtype))


def mixing_layers(G: nn.Module, num_ws: int) -> int:
    """How many ws a style-mixing cutoff is drawn below: those the synthesis uses at its level of detail.

    TF StyleGAN (networks_stylegan.py G_style): cur_layers = num_layers - int(lod) * 2 (two ws per resolution;
    tf.cast truncates, a floor for lod >= 0), cutoff ~ U{1..cur_layers-1}, so every mixing event reaches a layer
    in use. Networks without growing (no `lod`, StyleGAN2/3) use all `num_ws`, as NVlabs' PyTorch losses.
    """
    lod = getattr(G, "lod", None)
    if lod is None:
        return num_ws
    return min(max(num_ws - int(float(lod)) * 2, 2), num_ws)   # at least one valid cutoff (1)


class GANLoss(ABC):
    """Shared machinery: running G (with optional style mixing) and D (with augmentation and blur)."""

    def __init__(self, G: nn.Module, D: nn.Module, augment_pipe: nn.Module | None = None,
                 style_mixing: float = 0.0, blur_sigma: float = 0.0, blur_fade_kimg: float = 0.0,
                 ema_update: str = "all_but_mixing", zero_terms: bool = True, **unused: Any) -> None:
        self.G, self.D, self.augment_pipe = G, D, augment_pipe
        self.style_mixing = float(style_mixing or 0.0)
        self.blur_init_sigma, self.blur_fade_kimg = float(blur_sigma or 0.0), float(blur_fade_kimg or 0.0)
        if ema_update not in EMA_UPDATE_PASSES:
            raise ConfigError(f"training setting ema_update={ema_update!r}: must be one of "
                              f"{', '.join(EMA_UPDATE_PASSES)}")
        if not isinstance(zero_terms, bool):
            raise ConfigError(f"training setting zero_terms={zero_terms!r}: must be true or false")
        self.ema_update, self.zero_terms = ema_update, zero_terms
        self.on_real_logits: Callable[[torch.Tensor], None] | None = None   # ADA statistics hook
        self.blur_sigma = 0.0

    # -- schedule ------------------------------------------------------------------------------------
    def reg_intervals(self) -> dict[str, int | None]:
        """Lazy-regularisation interval per network (None = regulariser in the main phase, every step)."""
        return {"G": None, "D": None}

    def set_progress(self, cur_nimg: int) -> None:
        """Update schedules that depend on training progress (D input blur fade-out; fade 0 = no blur, as NVIDIA)."""
        if self.blur_fade_kimg > 0:
            self.blur_sigma = max(1 - cur_nimg / (self.blur_fade_kimg * 1e3), 0.0) * self.blur_init_sigma
        else:
            self.blur_sigma = 0.0
        if hasattr(self.D, "blur_sigma"):   # the loss blurs before augmenting (run_D), so D itself must not
            self.D.blur_sigma = 0.0

    # -- networks ------------------------------------------------------------------------------------
    def run_G(self, z: torch.Tensor, c: torch.Tensor | None,
              pass_name: str = "Gmain") -> tuple[torch.Tensor, torch.Tensor | None]:
        """Generate images; returns (images, ws) where ws is None for networks without a W space.

        `pass_name` ('Gmain', 'Greg', 'Dgen') decides, with `ema_update`, whether running averages move.
        """
        G = self.G
        if not hasattr(G, "mapping") or not hasattr(G, "synthesis"):
            return G(z, c, noise_mode="random"), None
        update_emas = pass_name in EMA_UPDATE_PASSES[self.ema_update]
        ws = G.mapping(z, c, update_emas=update_emas)
        if self.style_mixing > 0 and ws.shape[1] > 1:
            cutoff = int(torch.randint(1, mixing_layers(G, ws.shape[1]), []))
            if float(torch.rand([])) >= self.style_mixing:
                cutoff = ws.shape[1]   # TF: cur_layers (ws2 in the layers past it, faded out at this lod)
            z2 = torch.randn_like(z)   # drawn even when not mixing, as NVIDIA: the same RNG stream afterwards
            if cutoff < ws.shape[1]:
                ws2 = G.mapping(z2, c, update_emas=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return G.synthesis(ws, noise_mode="random", update_emas=update_emas), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        """Discriminator logits on blurred (StyleGAN3-R fade-in), then augmented images, in NVIDIA's order."""
        if self.blur_sigma > 0:
            img = blur_images(img, self.blur_sigma)
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
                fake, _ = self.run_G(gen_z, gen_c, "Dgen")
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
        self.r1_interval = int(r1_interval) if r1_interval else 1   # None: no lazy R1 (NVlabs), as 1

    def reg_intervals(self) -> dict[str, int | None]:
        # The interval (and the loop's lr/beta scaling) stays when gamma is 0, as NVIDIA's D_reg_interval does.
        return {"G": None, "D": self.r1_interval if self.r1_interval > 1 else None}

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
                fake, _ = self.run_G(gen_z, gen_c, "Dgen")
            fake_logits = self.run_D(fake, gen_c)
            F.softplus(fake_logits).mean().mul(gain).backward()
            stats["D/fake"] = _mean(fake_logits)
            stats["loss/D_fake"] = _mean(F.softplus(fake_logits))
        with_r1 = phase in ("Dreg", "Dboth") and self.r1_gamma > 0
        if phase in ("Dmain", "Dboth") or with_r1:   # gamma 0: the Dreg phase does nothing (NVIDIA)
            real_in = real.detach().requires_grad_(with_r1)
            real_logits = self._real_logits(real_in, real_c)   # ADA counts the Dreg pass's signs too (NVIDIA)
            total = real_logits.mean() * 0 if self.zero_terms else torch.zeros([], device=real.device)
            if phase != "Dreg":
                loss_real = F.softplus(-real_logits)
                total = total + loss_real.mean()
                stats["D/real"] = _mean(real_logits)
                stats["loss/D"] = stats.pop("loss/D_fake") + _mean(loss_real)
            if with_r1:
                (grad,) = torch.autograd.grad(real_logits.sum(), real_in, create_graph=True)
                r1 = grad.square().sum(dim=[1, 2, 3]) * (self.r1_gamma / 2)
                total = total + r1.mean()
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
        self.pl_interval = int(pl_interval) if pl_interval else 1   # None: no lazy path length (NVlabs), as 1
        self.pl_batch_shrink = max(int(pl_batch_shrink or 1), 1)
        self.pl_mean = torch.zeros([])

    def reg_intervals(self) -> dict[str, int | None]:
        # As NVIDIA's G_reg_interval: set by the config alone, kept when pl_weight is 0 (ADA's cifar).
        return {**super().reg_intervals(), "G": self.pl_interval if self.pl_interval > 1 else None}

    def accumulate_gradients(self, phase, real, real_c, gen_z, gen_c, gain):  # noqa: D102
        if phase not in ("Greg", "Gboth"):
            return super().accumulate_gradients(phase, real, real_c, gen_z, gen_c, gain)
        stats: dict[str, float] = {}
        if phase == "Gboth":
            self._g_main(gen_z, gen_c, gain, stats)
        if self.pl_weight > 0 and hasattr(self.G, "mapping"):
            n = max(gen_z.shape[0] // self.pl_batch_shrink, 1)
            img, ws = self.run_G(gen_z[:n], None if gen_c is None else gen_c[:n], "Greg")
            noise = torch.randn_like(img) / np.sqrt(img.shape[2] * img.shape[3])
            (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
            lengths = grad.square().sum(2).mean(1).sqrt()
            self.pl_mean = self.pl_mean.to(lengths.device)
            # Not detached (NVIDIA): each length's gradient also carries -pl_decay * mean(lengths - pl_mean).
            pl_mean = self.pl_mean.lerp(lengths.mean(), self.pl_decay)
            self.pl_mean = pl_mean.detach()
            penalty = (lengths - pl_mean).square() * self.pl_weight
            total = penalty.mean() + (img[:, 0, 0, 0].sum() * 0 if self.zero_terms else 0)
            total.mul(gain).backward()
            stats["loss/pl"] = _mean(penalty.detach())
            stats["pl_mean"] = float(self.pl_mean)
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {"pl_mean": self.pl_mean.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "pl_mean" in state:
            self.pl_mean = torch.as_tensor(state["pl_mean"]).clone().float()


def describe_step_policy(train: dict[str, Any]) -> str | None:
    """One line naming the reference a family's training step follows (its ema_update / zero_terms), or None."""
    ema, zero = train.get("ema_update"), train.get("zero_terms")
    if ema is None and zero is None:
        return None
    passes = ", ".join(sorted(EMA_UPDATE_PASSES.get(ema, ()))) or "?"
    grads = ("'* 0' terms, Adam steps every parameter" if zero
             else "unreached grads stay None, Adam skips them")
    ref = {("d_phase", False): "NVlabs/stylegan3", ("all_but_mixing", True): "stylegan2-ada-pytorch"}.get(
        (ema, zero), "custom")
    return f"training step: {ref} (ema_update={ema}: EMAs move in {passes}; zero_terms={zero}: {grads})"


def build_loss(name: str, G: nn.Module, D: nn.Module, augment_pipe: nn.Module | None = None,
               **params: Any) -> GANLoss:
    """Instantiate loss `name` with the family's training parameters (unknown keys are ignored)."""
    return LOSSES.get(name)(G, D, augment_pipe, **params)
