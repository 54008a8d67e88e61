"""StyleGAN (Karras et al. 2019): style-based generator with AdaIN, per-layer noise and progressive growing.

Follows the paper and NVlabs' `networks_stylegan.py` (G_style / G_mapping / G_synthesis / D_basic, structure
'linear'): an 8-layer mapping (lr multiplier 0.01) feeds, per conv, a style that modulates instance-normalised
features (AdaIN); noise with a learned per-channel strength enters before the bias and activation; the
synthesis starts from a learned 4x4 constant; resampling is nearest/box with a [1,2,1] blur. The mapping and
its label embedding are the shared `MappingNetwork`; a conditional D picks the score of the given label
(NVlabs' label switch).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from model_zoo import ModelSpec, register
from model_zoo._options import Family, resolve
from model_zoo.layers import (Conv2dLayer, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer, NoiseInjection,
                              bias_act, check_images, check_noise_mode, filter2d, setup_filter)
from model_zoo.progan import blend, downscale2d, stage_channels, upscale2d


def instance_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Normalise each feature map of each sample to zero mean and unit variance."""
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x * (x.square().mean(dim=[2, 3], keepdim=True) + eps).rsqrt()


class StyleEpilogue(nn.Module):
    """After each conv: noise, bias, lrelu, instance norm, then the style (AdaIN: x * (1 + ys) + yb)."""

    def __init__(self, channels: int, w_dim: int, resolution: int, use_noise: bool = True,
                 use_instance_norm: bool = True) -> None:
        super().__init__()
        self.use_noise, self.use_instance_norm = use_noise, use_instance_norm
        if use_noise:
            self.noise = NoiseInjection(resolution, channels)
        self.bias = nn.Parameter(torch.zeros([channels]))
        self.style = FullyConnectedLayer(w_dim, channels * 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        if self.use_noise:
            x = self.noise(x, noise_mode)
        x = bias_act(x, self.bias, act="lrelu")
        if self.use_instance_norm:
            x = instance_norm(x)
        style = self.style(w).reshape(x.shape[0], 2, -1, 1, 1)
        return x * (style[:, 0] + 1) + style[:, 1]


class StyleSynthesis(nn.Module):
    """ws [N, num_ws, w_dim] -> images; two styled convs per resolution, toRGB blended by the `lod` buffer."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, fmap_base: int = 8192,
                 fmap_decay: float = 1.0, fmap_max: int = 512, blur_filter: list[float] | None = (1, 2, 1),
                 use_noise: bool = True) -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.log2 = int(math.log2(img_resolution))
        self.num_ws = 2 * self.log2 - 2

        def nf(stage: int) -> int:
            return stage_channels(stage, fmap_base, fmap_decay, fmap_max)

        self.register_buffer("blur_filter", setup_filter(blur_filter))
        self.const = nn.Parameter(torch.ones([nf(1), 4, 4]))
        self.b4_epi0 = StyleEpilogue(nf(1), w_dim, 4, use_noise)
        self.b4_conv = Conv2dLayer(nf(1), nf(1), 3, bias=False)
        self.b4_epi1 = StyleEpilogue(nf(1), w_dim, 4, use_noise)
        self.torgb4 = Conv2dLayer(nf(1), img_channels, 1)
        for r in range(3, self.log2 + 1):
            res = 2 ** r
            setattr(self, f"b{res}_conv0", Conv2dLayer(nf(r - 2), nf(r - 1), 3, bias=False))
            setattr(self, f"b{res}_epi0", StyleEpilogue(nf(r - 1), w_dim, res, use_noise))
            setattr(self, f"b{res}_conv1", Conv2dLayer(nf(r - 1), nf(r - 1), 3, bias=False))
            setattr(self, f"b{res}_epi1", StyleEpilogue(nf(r - 1), w_dim, res, use_noise))
            setattr(self, f"torgb{res}", Conv2dLayer(nf(r - 1), img_channels, 1))
        self.register_buffer("lod", torch.zeros([]))

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", **_: Any) -> torch.Tensor:
        check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        x = self.b4_epi0(x, ws[:, 0], noise_mode)
        x = self.b4_epi1(self.b4_conv(x), ws[:, 1], noise_mode)
        img = self.torgb4(x)
        for r in range(3, self.log2 + 1):
            res = 2 ** r
            x = filter2d(getattr(self, f"b{res}_conv0")(upscale2d(x)), self.blur_filter)
            x = getattr(self, f"b{res}_epi0")(x, ws[:, 2 * r - 4], noise_mode)
            x = getattr(self, f"b{res}_epi1")(getattr(self, f"b{res}_conv1")(x), ws[:, 2 * r - 3], noise_mode)
            y = getattr(self, f"torgb{res}")(x)
            img = blend(y, upscale2d(img), self.lod - (self.log2 - r))
        return img


class StyleGenerator(nn.Module):
    """Mapping + synthesis: G(z, c, truncation_psi, noise_mode) -> images; `lod` lives in the synthesis."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = StyleSynthesis(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    @property
    def lod(self) -> torch.Tensor:
        return self.synthesis.lod

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random", update_emas: bool = True,
                **_: Any) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode)


class StyleDiscriminator(nn.Module):
    """D_basic: fromRGB, [conv, blur, conv + avg-pool] per resolution (faded by `lod`), mbstd 4x4 head."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, fmap_base: int = 8192,
                 fmap_decay: float = 1.0, fmap_max: int = 512, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, blur_filter: list[float] | None = (1, 2, 1)) -> None:
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        self.log2 = int(math.log2(img_resolution))

        def nf(stage: int) -> int:
            return stage_channels(stage, fmap_base, fmap_decay, fmap_max)

        self.register_buffer("blur_filter", setup_filter(blur_filter))
        for r in range(self.log2, 2, -1):
            res = 2 ** r
            setattr(self, f"fromrgb{res}", Conv2dLayer(img_channels, nf(r - 1), 1, activation="lrelu"))
            setattr(self, f"b{res}_conv0", Conv2dLayer(nf(r - 1), nf(r - 1), 3, activation="lrelu"))
            setattr(self, f"b{res}_conv1", Conv2dLayer(nf(r - 1), nf(r - 2), 3, bias=False))
            setattr(self, f"b{res}_bias1", nn.Parameter(torch.zeros([nf(r - 2)])))
        self.fromrgb4 = Conv2dLayer(img_channels, nf(1), 1, activation="lrelu")
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.b4_conv = Conv2dLayer(nf(1) + mbstd_num_channels, nf(1), 3, activation="lrelu")
        self.b4_fc0 = FullyConnectedLayer(nf(1) * 16, nf(0), activation="lrelu")
        self.b4_fc1 = FullyConnectedLayer(nf(0), max(c_dim, 1))
        self.register_buffer("lod", torch.zeros([]))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **_: Any) -> torch.Tensor:
        check_images(img, self.img_channels, self.img_resolution)
        x = getattr(self, f"fromrgb{self.img_resolution}")(img)
        for r in range(self.log2, 2, -1):
            res = 2 ** r
            x = getattr(self, f"b{res}_conv0")(x)
            x = downscale2d(getattr(self, f"b{res}_conv1")(filter2d(x, self.blur_filter)))
            x = bias_act(x, getattr(self, f"b{res}_bias1"), act="lrelu")
            img = downscale2d(img)
            x = blend(x, getattr(self, f"fromrgb{res // 2}")(img), self.lod - (self.log2 - r))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.b4_fc1(self.b4_fc0(self.b4_conv(x).flatten(1)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}); pass labels c")
            x = (x * c.to(x.dtype)).sum(dim=1, keepdim=True)
        return x


SG_TRAIN = "stylegan train.py"
SG_LOOP = "stylegan training/training_loop.py"
SG_NET = "stylegan training/networks_stylegan.py"

# Where each default comes from: the paper's official TF code (NVlabs/stylegan, train.py's enabled 8-GPU config).
STYLEGAN_SOURCES = {
    "img_channels": "the dataset's channels (RGB)", "c_dim": f"{SG_NET}: label_size from the dataset (0: none)",
    "augment": "no augmentation besides --mirror",
    "z_dim": f"{SG_NET}: latent_size=512", "w_dim": f"{SG_NET}: dlatent_size=512",
    "mapping_layers": f"{SG_NET}: mapping_layers=8", "mapping_lr_multiplier": f"{SG_NET}: mapping_lrmul=0.01",
    "w_avg_beta": f"{SG_NET}: dlatent_avg_beta=0.995", "fmap_base": f"{SG_NET}: fmap_base=8192",
    "fmap_decay": f"{SG_NET}: fmap_decay=1.0", "fmap_max": f"{SG_NET}: fmap_max=512",
    "use_noise": f"{SG_NET}: use_noise=True", "mbstd_group_size": f"{SG_NET}: D mbstd_group_size=4",
    "mbstd_num_channels": f"{SG_NET}: D mbstd_num_features=1",
    "loss": f"{SG_TRAIN}: G_logistic_nonsaturating + D_logistic_simplegp", "r1_gamma": f"{SG_TRAIN}: r1_gamma=10",
    "r1_interval": "no lazy regularisation in StyleGAN", "lr_g": f"{SG_LOOP}: G_lrate_base=0.001",
    "lr_d": f"{SG_LOOP}: D_lrate_base=0.001", "betas": f"{SG_TRAIN}: beta1=0, beta2=0.99",
    "eps": f"{SG_TRAIN}: epsilon=1e-8",
    "batch": f"{SG_TRAIN}: 8 GPUs, minibatch_base=32 (used where batch_schedule has no entry; --batch sets it)",
    "batch_schedule": f"{SG_TRAIN}: 8 GPUs, minibatch_dict (per level, by the resolution trained or faded in)",
    "lr_schedule": f"{SG_TRAIN}: G_lrate_dict = D_lrate_dict",
    "sched_repeats": f"{SG_LOOP}: minibatch_repeats=4 (settings re-evaluated every 4 minibatches)",
    "reset_adam_per_level": f"{SG_LOOP}: reset_opt_for_new_lod=True",
    "step_order": f"{SG_LOOP}: run([D_train_op, Gs_update_op]) then run([G_train_op]) per minibatch",
    "ema_step_beta": f"{SG_LOOP}: Gs_beta = 0.5 ** (minibatch / (G_smoothing_kimg * 1000)) (ema_kimg)",
    "style_mixing": f"{SG_NET}: style_mixing_prob=0.9", "ema_kimg": f"{SG_LOOP}: G_smoothing_kimg=10",
    "ema_rampup": f"{SG_LOOP}: no EMA ramp-up",
    "progressive": f"{SG_TRAIN}: lod_initial_resolution=8; {SG_LOOP}: lod_training_kimg=600, lod_transition_kimg=600",
}


STYLEGAN = Family(
    "stylegan",
    net=dict(img_channels=3, c_dim=0, z_dim=512, w_dim=512, mapping_layers=8, mapping_lr_multiplier=0.01,
             w_avg_beta=0.995, fmap_base=8192, fmap_decay=1.0, fmap_max=512, use_noise=True,
             mbstd_group_size=4, mbstd_num_channels=1),
    # Paper: non-saturating loss + R1 (gamma 10), Adam(0.001, 0, 0.99), mixing 0.9, growing from 8x8.
    train=dict(loss="ns-r1", r1_gamma=10.0, r1_interval=None, lr_g=0.001, lr_d=0.001, betas=(0.0, 0.99),
               eps=1e-8, batch=32, batch_schedule={4: 512, 8: 256, 16: 128, 32: 64, 64: 32},
               lr_schedule={128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}, sched_repeats=4,
               reset_adam_per_level=True, step_order="d_first", ema_step_beta=None,
               style_mixing=0.9, ema_kimg=10.0, ema_rampup=None, augment=None,
               progressive=dict(start_res=8, kimg_per_phase=600, fade_kimg=600)),
    # Tiny: one batch and lr throughout (the published tables are sized for 8 GPUs); the TF loop's recipe stays.
    # Tuned with benchmarks/learning.py (issue 14 §3): batch 8, lr 0.003 and 1-kimg growing phases (most of a short
    # run at full resolution) take recall from 0.06 to 0.27 in 12 kimg; R1 gamma 1 instead of 10 was worse. A 2-kimg
    # G_ema (ramp-up 0.2) instead of 0.05 x the images seen steadies the snapshots (FID 14.0, 15.9, 13.8, 12.6, 12.8
    # against 12.0, 20.4, 19.0, 10.6, 14.2) and ends at recall 0.37.
    presets={"tiny": lambda r: (dict(z_dim=64, w_dim=64, mapping_layers=2, fmap_base=512, fmap_max=32),
                                dict(batch=8, lr_g=0.003, lr_d=0.003, ema_kimg=2.0, ema_rampup=0.2, batch_schedule=None,
                                     lr_schedule=None, progressive=dict(start_res=8, kimg_per_phase=1, fade_kimg=1)))},
    min_resolution=8, sources=STYLEGAN_SOURCES,
    preset_sources={"tiny": "ganbench tiny preset (CPU-sized, not published)"},
)


@register("stylegan")
def build_stylegan(resolution: int, preset: str | None = None, **overrides: Any) -> ModelSpec:
    """StyleGAN G (mapping + AdaIN synthesis) and D with the paper's training defaults."""
    opts = resolve(STYLEGAN, resolution, preset, overrides)
    net = opts.net
    fmaps = dict(fmap_base=net["fmap_base"], fmap_decay=net["fmap_decay"], fmap_max=net["fmap_max"])
    G = StyleGenerator(net["z_dim"], net["c_dim"], net["w_dim"], resolution, net["img_channels"],
                       mapping_kwargs=dict(num_layers=net["mapping_layers"],
                                           lr_multiplier=net["mapping_lr_multiplier"],
                                           w_avg_beta=net["w_avg_beta"]),
                       synthesis_kwargs=dict(use_noise=net["use_noise"], **fmaps))
    D = StyleDiscriminator(net["c_dim"], resolution, net["img_channels"], mbstd_group_size=net["mbstd_group_size"],
                           mbstd_num_channels=net["mbstd_num_channels"], **fmaps)
    return ModelSpec(G=G, D=D, config=opts.config, train=opts.train)


build_stylegan.family = STYLEGAN  # read by `ganbench zoo` to list presets and defaults
