"""ProGAN (Karras et al. 2018): progressively grown, mirrored G and D with equalized learning rate.

Follows the paper and its `networks.py` (structure 'linear'): G normalises the latent, then at each
resolution nearest-upsamples and applies two 3x3 convs with pixel norm; every resolution has a 1x1 toRGB
and the output is the linear blend of the two highest active levels (alpha = 1 - frac(lod)). D mirrors it
with 1x1 fromRGB, 3x3 convs and 2x2 average pooling, and ends with a minibatch-stddev 4x4 head. Channels
are min(fmap_base / 2^stage, fmap_max). The activation gain sits after the leaky ReLU (StyleGAN2 layers),
which only rescales the bias relative to the paper.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganbench.errors import ConfigError
from model_zoo import ModelSpec, register
from model_zoo._options import Family, resolve
from model_zoo.layers import (Conv2dLayer, FullyConnectedLayer, MinibatchStdLayer, bias_act, check_images,
                              normalize_2nd_moment)


def stage_channels(stage: int, fmap_base: int, fmap_decay: float, fmap_max: int) -> int:
    """Feature maps at `stage` (stage s holds resolution 2^(s+1)): min(fmap_base / 2^(stage*decay), fmap_max)."""
    return min(int(fmap_base / 2.0 ** (stage * fmap_decay)), fmap_max)


def blend(hi: torch.Tensor, lo: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """hi + (lo - hi) * clamp(t, 0, 1): the fade between a new level and its lower-resolution stand-in."""
    return hi + (lo - hi) * t.clamp(0, 1)


def upscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Nearest-neighbour upsampling."""
    return x if factor == 1 else x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)


def downscale2d(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Box-filter (average pool) downsampling."""
    return x if factor == 1 else F.avg_pool2d(x, factor)


class ProGenerator(nn.Module):
    """z -> pixel-normed latent -> 4x4 dense -> [up, conv, conv] per resolution, faded by the `lod` buffer."""

    def __init__(self, z_dim: int, img_resolution: int, img_channels: int, fmap_base: int = 8192,
                 fmap_decay: float = 1.0, fmap_max: int = 512, normalize_latents: bool = True,
                 use_pixelnorm: bool = True) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, 0, img_resolution, img_channels
        self.normalize_latents, self.use_pixelnorm = normalize_latents, use_pixelnorm
        self.log2 = int(math.log2(img_resolution))

        def nf(stage: int) -> int:
            return stage_channels(stage, fmap_base, fmap_decay, fmap_max)

        self.fc = FullyConnectedLayer(z_dim, nf(1) * 16, bias=False, gain=math.sqrt(2) / 4)
        self.fc_bias = nn.Parameter(torch.zeros([nf(1)]))
        self.b4 = Conv2dLayer(nf(1), nf(1), 3, activation="lrelu")
        self.torgb4 = Conv2dLayer(nf(1), img_channels, 1)
        for r in range(3, self.log2 + 1):
            res = 2 ** r
            setattr(self, f"b{res}_conv0", Conv2dLayer(nf(r - 2), nf(r - 1), 3, activation="lrelu"))
            setattr(self, f"b{res}_conv1", Conv2dLayer(nf(r - 1), nf(r - 1), 3, activation="lrelu"))
            setattr(self, f"torgb{res}", Conv2dLayer(nf(r - 1), img_channels, 1))
        self.register_buffer("lod", torch.zeros([]))

    def _pn(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_2nd_moment(x) if self.use_pixelnorm else x

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                noise_mode: str = "random", **_: Any) -> torch.Tensor:
        if truncation_psi != 1:
            raise ValueError("ProGAN has no W space: truncation_psi must be 1")
        x = normalize_2nd_moment(z) if self.normalize_latents else z
        x = self.fc(x).reshape(z.shape[0], -1, 4, 4)
        x = self._pn(bias_act(x, self.fc_bias, act="lrelu"))
        x = self._pn(self.b4(x))
        img = self.torgb4(x)
        for r in range(3, self.log2 + 1):
            res = 2 ** r
            x = upscale2d(x)
            x = self._pn(getattr(self, f"b{res}_conv0")(x))
            x = self._pn(getattr(self, f"b{res}_conv1")(x))
            y = getattr(self, f"torgb{res}")(x)
            img = blend(y, upscale2d(img), self.lod - (self.log2 - r))
        return img


class ConvDownLayer(Conv2dLayer):
    """ProGAN's fused `conv2d_downscale2d`: the 3x3 conv and the 2x2 average pool both run before the bias and
    the activation (TF folds them into one 4x4 stride-2 conv). Same weights and names as a Conv2dLayer."""

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        x = downscale2d(F.conv2d(x, w, padding=self.padding))
        return bias_act(x, self.bias.to(x.dtype) * self.bias_gain, act=self.activation, gain=self.act_gain * gain)


class ProDiscriminator(nn.Module):
    """Mirror of the generator: fromRGB, [conv, conv, avg-pool] per resolution, mbstd + conv + 2 dense at 4x4.

    `fused_scale=True` is the TF code's fused variant (variables `Conv1_down`): each block's second conv pools
    before its bias and activation (ConvDownLayer) instead of after them.
    """

    def __init__(self, img_resolution: int, img_channels: int, fmap_base: int = 8192, fmap_decay: float = 1.0,
                 fmap_max: int = 512, mbstd_group_size: int = 4, fused_scale: bool = False) -> None:
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = 0, img_resolution, img_channels
        self.log2 = int(math.log2(img_resolution))
        self.fused_scale = fused_scale
        conv_down = ConvDownLayer if fused_scale else Conv2dLayer

        def nf(stage: int) -> int:
            return stage_channels(stage, fmap_base, fmap_decay, fmap_max)

        for r in range(self.log2, 2, -1):
            res = 2 ** r
            setattr(self, f"fromrgb{res}", Conv2dLayer(img_channels, nf(r - 1), 1, activation="lrelu"))
            setattr(self, f"b{res}_conv0", Conv2dLayer(nf(r - 1), nf(r - 1), 3, activation="lrelu"))
            setattr(self, f"b{res}_conv1", conv_down(nf(r - 1), nf(r - 2), 3, activation="lrelu"))
        self.fromrgb4 = Conv2dLayer(img_channels, nf(1), 1, activation="lrelu")
        self.mbstd = MinibatchStdLayer(mbstd_group_size, 1) if mbstd_group_size > 1 else None
        self.b4_conv = Conv2dLayer(nf(1) + (1 if self.mbstd else 0), nf(1), 3, activation="lrelu")
        self.b4_fc0 = FullyConnectedLayer(nf(1) * 16, nf(0), activation="lrelu")
        self.b4_fc1 = FullyConnectedLayer(nf(0), 1)
        self.register_buffer("lod", torch.zeros([]))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        check_images(img, self.img_channels, self.img_resolution)
        x = getattr(self, f"fromrgb{self.img_resolution}")(img)
        for r in range(self.log2, 2, -1):
            res = 2 ** r
            x = getattr(self, f"b{res}_conv0")(x)
            x = getattr(self, f"b{res}_conv1")(x)
            x = x if self.fused_scale else downscale2d(x)
            img = downscale2d(img)
            y = getattr(self, f"fromrgb{res // 2}")(img)
            x = blend(x, y, self.lod - (self.log2 - r))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.b4_conv(x)
        return self.b4_fc1(self.b4_fc0(x.flatten(1)))


PG_TRAIN = "progressive_growing_of_gans train.py"
PG_NET = "progressive_growing_of_gans networks.py"

# Where each default comes from: the paper's official TF code (tkarras/progressive_growing_of_gans), with the
# config preset its config.py leaves enabled (preset-v2-1gpu).
PG_CONFIG = "progressive_growing_of_gans config.py preset-v2-1gpu"
PROGAN_SOURCES = {
    "img_channels": "the dataset's channels (RGB)", "c_dim": "unconditional (ganbench has no AC-GAN head)",
    "augment": "no augmentation besides --mirror",
    "z_dim": f"{PG_NET}: latent_size = min(fmap_base, fmap_max) = 512",
    "fmap_base": f"{PG_NET}: fmap_base=8192", "fmap_decay": f"{PG_NET}: fmap_decay=1.0",
    "fmap_max": f"{PG_NET}: fmap_max=512", "normalize_latents": f"{PG_NET}: normalize_latents=True",
    "use_pixelnorm": f"{PG_NET}: use_pixelnorm=True", "mbstd_group_size": f"{PG_NET}: D mbstd_group_size=4",
    "d_fused_scale": f"{PG_NET}: D fused_scale=True (conv+pool before bias and lrelu)",
    "loss": "progressive_growing_of_gans loss.py: WGAN-GP", "gp_lambda": "loss.py: wgan_lambda=10",
    "drift": "loss.py: wgan_epsilon=0.001", "lr_g": f"{PG_TRAIN}: G_lrate_base=0.001",
    "lr_d": f"{PG_TRAIN}: D_lrate_base=0.001", "betas": "config.py: beta1=0, beta2=0.99",
    "eps": "config.py: epsilon=1e-8",
    "batch": f"{PG_CONFIG}: minibatch_base=4 (used where batch_schedule has no entry; --batch sets it)",
    "batch_schedule": f"{PG_CONFIG}: minibatch_dict (per level, by the resolution being trained or faded in)",
    "lr_schedule": f"{PG_CONFIG}: G_lrate_dict = D_lrate_dict",
    "sched_repeats": f"{PG_TRAIN}: minibatch_repeats=4 (settings re-evaluated every 4 minibatches)",
    "reset_adam_per_level": f"{PG_TRAIN}: reset_opt_for_new_lod=True",
    "step_order": f"{PG_TRAIN}: run([D_train_op, Gs_update_op]) then run([G_train_op]) per minibatch",
    "ema_step_beta": f"{PG_TRAIN}: G_smoothing=0.999 per minibatch, whatever its size",
    "ema_kimg": "unused: ProGAN decays by a fixed beta per minibatch (ema_step_beta)",
    "ema_rampup": f"{PG_TRAIN}: no EMA ramp-up", "style_mixing": "no style mixing (not style-based)",
    "progressive": f"{PG_TRAIN}: lod_initial_resolution=4, lod_training_kimg=600, lod_transition_kimg=600",
}

PROGAN = Family(
    "progan",
    net=dict(img_channels=3, c_dim=0, z_dim=512, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
             normalize_latents=True, use_pixelnorm=True, mbstd_group_size=4, d_fused_scale=True),
    # Paper: WGAN-GP (lambda 10, drift 1e-3), Adam(0.001, 0, 0.99); 600 kimg per stable / fade phase from 4x4.
    train=dict(loss="wgan-gp", gp_lambda=10.0, drift=1e-3, lr_g=0.001, lr_d=0.001, betas=(0.0, 0.99), eps=1e-8,
               batch=4, batch_schedule={4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4},
               lr_schedule={1024: 0.0015}, sched_repeats=4, reset_adam_per_level=True, step_order="d_first",
               style_mixing=0.0, ema_kimg=None, ema_step_beta=0.999, ema_rampup=None,
               augment=None, progressive=dict(start_res=4, kimg_per_phase=600, fade_kimg=600)),
    # Tiny: one batch and lr throughout (the published tables are sized for GPUs); the TF loop's order, repeats
    # and Adam resets stay. Its EMA keeps the 0.999-per-step half-life at batch 16 but ramps up, as the other
    # families' tiny presets, so a few-kimg run is not averaged towards its initial weights. Tuned with
    # benchmarks/learning.py (issue 14 §3): batch 8, lr 0.003 and 1-kimg growing phases (most of a short run at full
    # resolution) take recall from 0.01 (batch 16, lr 0.001, 12 kimg) to 0.40, FID 11.3, in 12 kimg.
    presets={"tiny": lambda r: (dict(z_dim=64, fmap_base=512, fmap_max=32),
                                dict(batch=8, lr_g=0.003, lr_d=0.003, batch_schedule=None, lr_schedule=None,
                                     ema_step_beta=None, ema_kimg=16 * math.log(0.5) / math.log(0.999) / 1000,
                                     ema_rampup=0.05,
                                     progressive=dict(start_res=4, kimg_per_phase=1, fade_kimg=1)))},
    sources=PROGAN_SOURCES,
    preset_sources={"tiny": "ganbench tiny preset (CPU-sized, not published)"},
)


@register("progan")
def build_progan(resolution: int, preset: str | None = None, **overrides: Any) -> ModelSpec:
    """ProGAN G and D (unconditional) with the paper's WGAN-GP training defaults."""
    opts = resolve(PROGAN, resolution, preset, overrides)
    net = opts.net
    if net["c_dim"]:
        raise ConfigError(f"progan is unconditional; got c_dim={net['c_dim']} (use a style-based family "
                          f"for labels)")
    fmaps = dict(fmap_base=net["fmap_base"], fmap_decay=net["fmap_decay"], fmap_max=net["fmap_max"])
    G = ProGenerator(net["z_dim"], resolution, net["img_channels"], normalize_latents=net["normalize_latents"],
                     use_pixelnorm=net["use_pixelnorm"], **fmaps)
    D = ProDiscriminator(resolution, net["img_channels"], mbstd_group_size=net["mbstd_group_size"],
                         fused_scale=net["d_fused_scale"], **fmaps)
    return ModelSpec(G=G, D=D, config=opts.config, train=opts.train)


build_progan.family = PROGAN  # read by `ganbench zoo` to list presets and defaults
