"""StyleGAN2 (Karras et al. 2020) and StyleGAN2-ADA (Karras et al. 2020b) networks and training defaults.

Same parameter structure as NVlabs' stylegan2-ada-pytorch `training/networks.py` (config F: skip generator,
residual discriminator), so parameter counts agree exactly. Mixed precision (num_fp16_res) only takes effect
on CUDA; on CPU everything runs in float32.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from model_zoo import ModelSpec, register
from model_zoo._options import Family, build_spec
from model_zoo.layers import (ACTIVATIONS, Conv2dLayer, FullyConnectedLayer, MappingNetwork, MinibatchStdLayer,
                              bias_act, block_dtype, check_images, check_noise_mode, downsample2d, modulated_conv2d,
                              setup_filter, upsample2d)

SQRT_HALF = math.sqrt(0.5)


# --------------------------------------------------------------------------------------------------------------
# Generator.

class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + noise + bias + lrelu."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu",
                 resample_filter: list[float] = (1, 3, 3, 1), conv_clamp: float | None = None) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].def_gain
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", fused_modconv: bool = True,
                gain: float = 1.0) -> torch.Tensor:
        styles = self.affine(w)
        # Noise, weights and styles stay float32 as in NVlabs' code (the same random draws, the demodulation
        # computed in float32); modulated_conv2d casts them to an fp16 block's dtype at the convolution.
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device)
            noise = noise * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up,
                             padding=self.padding, resample_filter=self.resample_filter,
                             flip_weight=(self.up == 1), fused_modconv=fused_modconv)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, fused_modconv: bool = True) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (const or upsampling conv) + conv + toRGB (skip architecture)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter: list[float] = (1, 3, 3, 1),
                 conv_clamp: float | None = None, use_fp16: bool = False, **layer_kwargs: Any) -> None:
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown synthesis architecture {architecture!r}")
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, ws: torch.Tensor,
                noise_mode: str = "random", force_fp32: bool = False,
                fused_modconv: bool | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        w_iter = iter(ws.unbind(dim=1))
        dtype = block_dtype(self.use_fp16, ws, force_fp32)
        if fused_modconv is None:
            fused_modconv = (not self.training) and (dtype == torch.float32 or ws.shape[0] == 1)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = x.to(dtype)
        if self.in_channels == 0:
            x = self.conv1(x, next(w_iter), noise_mode, fused_modconv)
        elif self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)
            x = self.conv0(x, next(w_iter), noise_mode, fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode, fused_modconv, gain=SQRT_HALF)
            x = y + x
        else:
            x = self.conv0(x, next(w_iter), noise_mode, fused_modconv)
            x = self.conv1(x, next(w_iter), noise_mode, fused_modconv)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused_modconv).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws [N, num_ws, w_dim] -> images, one block per resolution from 4x4 up."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs: Any) -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   is_last=(res == img_resolution), use_fp16=(res >= fp16_resolution),
                                   **block_kwargs)
            self.num_ws += block.num_conv
            if res == img_resolution:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", update_emas: bool = False,
                **block_kwargs: Any) -> torch.Tensor:
        del update_emas  # accepted for the common synthesis interface; StyleGAN2 synthesis keeps no EMAs
        check_noise_mode(noise_mode)
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, w_idx, block.num_conv + block.num_torgb), noise_mode=noise_mode,
                           **block_kwargs)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    """Mapping + synthesis: G(z, c, truncation_psi, noise_mode) -> images in about [-1, 1].

    Subclasses swap the synthesis network through `synthesis_class` (StyleGAN3 does).
    """

    synthesis_class: type[nn.Module] = SynthesisNetwork

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = self.synthesis_class(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "random", update_emas: bool = True,
                **synthesis_kwargs: Any) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff,
                          update_emas=update_emas)
        return self.synthesis(ws, noise_mode=noise_mode, update_emas=update_emas, **synthesis_kwargs)


# --------------------------------------------------------------------------------------------------------------
# Discriminator.

class DiscriminatorBlock(nn.Module):
    """One resolution of D: (fromRGB) + conv + downsampling conv, residual by default."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", activation: str = "lrelu",
                 resample_filter: list[float] = (1, 3, 3, 1), conv_clamp: float | None = None,
                 use_fp16: bool = False) -> None:
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown discriminator architecture {architecture!r}")
        self.in_channels, self.resolution, self.architecture, self.use_fp16 = (in_channels, resolution,
                                                                              architecture, use_fp16)
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, activation=activation,
                                       conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, activation=activation,
                                 conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, kernel_size=3, activation=activation, down=2,
                                 resample_filter=resample_filter, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                                    resample_filter=resample_filter)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None,
                force_fp32: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        dtype = block_dtype(self.use_fp16, img if img is not None else x, force_fp32)
        if x is not None:
            x = x.to(dtype)
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img.to(dtype))
            x = x + y if x is not None else y
            img = downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=SQRT_HALF)
            x = self.conv0(x)
            x = self.conv1(x, gain=SQRT_HALF)
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch stddev, conv, fc, output (projected onto the label embedding when conditional)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int, img_channels: int,
                 architecture: str = "resnet", mbstd_group_size: int | None = 4, mbstd_num_channels: int = 1,
                 activation: str = "lrelu", conv_clamp: float | None = None) -> None:
        super().__init__()
        self.cmap_dim, self.architecture = cmap_dim, architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation,
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: torch.Tensor | None, cmap: torch.Tensor | None) -> torch.Tensor:
        x = x.to(torch.float32)
        if self.architecture == "skip":
            x = x + self.fromrgb(img.to(torch.float32))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.out(self.fc(self.conv(x).flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """D(img, c) -> logits [N, 1]: blocks from full resolution down to 4x4, then the epilogue."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, mbstd_group_size: int | None = 4,
                 mbstd_num_channels: int = 1, mapping_kwargs: dict | None = None) -> None:
        super().__init__()
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        for res in self.block_resolutions:
            block = DiscriminatorBlock(channels[res] if res < img_resolution else 0, channels[res],
                                       channels[res // 2], res, img_channels, architecture=architecture,
                                       conv_clamp=conv_clamp, use_fp16=(res >= fp16_resolution))
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None,
                                          **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(channels[4], cmap_dim=cmap_dim, resolution=4, img_channels=img_channels,
                                        architecture=architecture, mbstd_group_size=mbstd_group_size,
                                        mbstd_num_channels=mbstd_num_channels, conv_clamp=conv_clamp)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **block_kwargs: Any) -> torch.Tensor:
        check_images(img, self.img_channels, self.img_resolution)
        x = None
        for res in self.block_resolutions:
            x, img = getattr(self, f"b{res}")(x, img, **block_kwargs)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}); pass labels c")
            cmap = self.mapping(None, c)
        return self.b4(x, img, cmap)


# --------------------------------------------------------------------------------------------------------------
# Registry entries.

# The reference is the stylegan3 repo's `train.py --cfg=stylegan2` (networks_stylegan2.py); the ADA family below
# follows stylegan2-ada-pytorch. Every default names its source in SOURCES (shown by `ganbench zoo info`).
SG3_TRAIN = "stylegan3 train.py"
SG3_NET = "stylegan3 training/networks_stylegan2.py"
ADA_TRAIN = "stylegan2-ada-pytorch train.py"

NET_DEFAULTS: dict[str, Any] = dict(
    img_channels=3, c_dim=0, z_dim=512, w_dim=512, mapping_layers=8, mapping_lr_multiplier=0.01,
    w_avg_beta=0.998, channel_base=32768, channel_max=512, g_architecture="skip", d_architecture="resnet",
    num_fp16_res=4, conv_clamp=256, mbstd_group_size=4, mbstd_num_channels=1,
)

# StyleGAN2 training defaults (NVlabs loss and loop): lazy regularization, path length, style mixing, EMA.
TRAIN_DEFAULTS: dict[str, Any] = dict(
    loss="stylegan2", batch=32, kimg=25000, ref_gpus=8, lr_g=0.002, lr_d=0.002, betas=(0.0, 0.99), eps=1e-8,
    r1_gamma=10.0, r1_interval=16, pl_weight=2.0, pl_interval=4, pl_decay=0.01, pl_batch_shrink=2,
    style_mixing=0.9, ema_kimg=10.0, ema_rampup=0.05, augment=None, ada_target=0.6, ada_kimg=500,
    progressive=None, ema_update="d_phase", zero_terms=False,
)

SOURCES: dict[str, str] = {
    "c_dim": f"{SG3_TRAIN}: --cond False (labels from dataset.json when True)",
    "img_channels": "the dataset's channels (RGB)", "loss": "stylegan3 training/loss.py: StyleGAN2Loss",
    "progressive": "no progressive growing since StyleGAN2",
    "z_dim": f"{SG3_TRAIN}: z_dim=512", "w_dim": f"{SG3_TRAIN}: w_dim=512",
    "mapping_layers": f"{SG3_TRAIN}: --map-depth default 8 for --cfg=stylegan2",
    "mapping_lr_multiplier": f"{SG3_NET}: MappingNetwork lr_multiplier=0.01",
    "w_avg_beta": f"{SG3_NET}: MappingNetwork w_avg_beta=0.998",
    "channel_base": f"{SG3_TRAIN}: --cbase 32768", "channel_max": f"{SG3_TRAIN}: --cmax 512",
    "g_architecture": f"{SG3_NET}: SynthesisBlock architecture='skip'",
    "d_architecture": f"{SG3_NET}: Discriminator architecture='resnet'",
    "num_fp16_res": f"{SG3_NET}: num_fp16_res=4 (train.py --fp32 sets 0); fp32 on CPU",
    "conv_clamp": f"{SG3_NET}: conv_clamp=256 (train.py --fp32 sets None)",
    "mbstd_group_size": f"{SG3_TRAIN}: --mbstd-group 4", "mbstd_num_channels": f"{SG3_NET}: mbstd_num_channels=1",
    "batch": f"{SG3_TRAIN}: README examples --batch=32", "lr_g": f"{SG3_TRAIN}: --glr 0.002 for --cfg=stylegan2",
    "lr_d": f"{SG3_TRAIN}: --dlr 0.002", "betas": f"{SG3_TRAIN}: Adam betas=[0,0.99], eps=1e-8",
    "eps": f"{SG3_TRAIN}: Adam eps=1e-8", "r1_gamma": f"{SG3_TRAIN}: README FFHQ-1024 example --gamma=10",
    "r1_interval": "stylegan3 training_loop.py: D_reg_interval=16",
    "pl_weight": f"{SG3_TRAIN}: pl_weight=2 for --cfg=stylegan2",
    "pl_interval": f"{SG3_TRAIN}: G_reg_interval=4 for --cfg=stylegan2",
    "pl_decay": "stylegan3 training/loss.py: pl_decay=0.01", "pl_batch_shrink": "stylegan3 training/loss.py: 2",
    "style_mixing": f"{SG3_TRAIN}: style_mixing_prob=0.9 for --cfg=stylegan2",
    "ema_kimg": f"{SG3_TRAIN}: ema_kimg = batch * 10 / 32", "ema_rampup": "stylegan3 training_loop.py: 0.05",
    "kimg": f"{SG3_TRAIN}: --kimg 25000", "ada_target": f"{SG3_TRAIN}: --target 0.6",
    "ada_kimg": "stylegan3 training_loop.py: ada_kimg=500", "ref_gpus": f"{SG3_TRAIN}: README examples --gpus=8",
    # train.py's --aug defaults to ada for every cfg; plain StyleGAN2 follows the README's FFHQ example instead
    # (--aug=noaug): ADA is the stylegan2-ada family.
    "augment": f"{SG3_TRAIN}: README --cfg=stylegan2 FFHQ example --aug=noaug",
    "ema_update": "stylegan3 training/loss.py: update_emas=True only in the Dmain generator pass",
    "zero_terms": "stylegan3 training/loss.py: no '* 0' terms (unreached grads stay None, Adam skips them)",
}

# The tiny preset trains a few kimg on CPU in about a minute at 32x32 (ganbench's own, not a published config).
# Tuned with benchmarks/learning.py (issue 14 §3): at NVIDIA's lr 0.002 and batch 16 the 32-channel networks were
# still blurry blobs after 20 kimg (recall 0.12); batch 8 (twice the steps per kimg) and lr 0.005 reach recall
# 0.30 and FID 12.3 in the same 20 kimg. Higher (0.01) was worse; the cifar recipe (gamma 0.01, no pl, no mixing)
# was worse too.
TINY_NET = dict(z_dim=64, w_dim=64, mapping_layers=2, channel_base=1024, channel_max=32, mbstd_group_size=4)
TINY_TRAIN = dict(ref_gpus=1, batch=8, kimg=50, ema_rampup=0.05, r1_gamma=1.0, lr_g=0.005, lr_d=0.005)


def _tiny(resolution: int) -> tuple[dict, dict]:
    return dict(TINY_NET), dict(TINY_TRAIN)


STYLEGAN2 = Family("stylegan2", NET_DEFAULTS, TRAIN_DEFAULTS, presets={"tiny": _tiny},
                   derived={"ema_kimg": lambda batch: batch * 10 / 32}, sources=SOURCES,
                   preset_sources={"tiny": "ganbench tiny preset (CPU-sized, not published)"})


def _ada_spec(ref_gpus: int, kimg: int, mb: int, mbstd: int, fmaps: float, lrate: float, gamma: float, ema: float,
              ramp: float | None, map: int) -> tuple[dict, dict]:
    """Map one stylegan2-ada-pytorch `cfg_specs` row onto our network and training options."""
    # channel_max 512, num_fp16_res 4 and conv_clamp 256: train.py sets them for every cfg (family defaults).
    net = dict(channel_base=int(fmaps * 32768), mapping_layers=map, mbstd_group_size=mbstd)
    train = dict(ref_gpus=ref_gpus, kimg=kimg, batch=mb, lr_g=lrate, lr_d=lrate, r1_gamma=gamma, ema_kimg=ema,
                 ema_rampup=ramp)
    return net, train


def _ada_auto(resolution: int) -> tuple[dict, dict]:
    """The 'auto' heuristics of stylegan2-ada-pytorch train.py, for one GPU."""
    gpus = 1
    mb = max(min(gpus * min(4096 // resolution, 32), 64), gpus)
    return _ada_spec(ref_gpus=gpus, kimg=25000, mb=mb, mbstd=min(mb // gpus, 4),
                     fmaps=1 if resolution >= 512 else 0.5, lrate=0.002 if resolution >= 1024 else 0.0025,
                     gamma=0.0002 * resolution ** 2 / mb, ema=mb * 10 / 32, ramp=0.05, map=2)


def _ada_cifar(resolution: int) -> tuple[dict, dict]:
    net, train = _ada_spec(ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500,
                           ramp=0.05, map=2)
    net["d_architecture"] = "orig"                  # no residual connections in D
    train.update(pl_weight=0.0, style_mixing=0.0)   # no path length regularization, no style mixing
    return net, train


def _ada_tiny(resolution: int) -> tuple[dict, dict]:
    # ADA fixes ema_kimg per preset ('auto': mb * 10 / 32) and does not rescale it with --batch.
    net, train = _tiny(resolution)
    return net, {**train, "ema_kimg": train["batch"] * 10 / 32}


ADA_PRESETS = {
    "auto": _ada_auto,
    "stylegan2": lambda r: _ada_spec(8, 25000, 32, 4, 1, 0.002, 10, 10, None, 8),
    "paper256": lambda r: _ada_spec(8, 25000, 64, 8, 0.5, 0.0025, 1, 20, None, 8),
    "paper512": lambda r: _ada_spec(8, 25000, 64, 8, 1, 0.0025, 0.5, 20, None, 8),
    "paper1024": lambda r: _ada_spec(8, 25000, 32, 4, 1, 0.002, 2, 10, None, 8),
    "cifar": _ada_cifar,
    "tiny": _ada_tiny,
}

ADA_NET = "stylegan2-ada-pytorch training/networks.py"
ADA_LOOP = "stylegan2-ada-pytorch training/training_loop.py"
ADA_LOSS = "stylegan2-ada-pytorch training/loss.py"
# Defaults of the ADA family (its presets name cfg_specs for the values they set).
ADA_SOURCES = {
    "c_dim": f"{ADA_TRAIN}: --cond false (labels from dataset.json when true)",
    "img_channels": "the dataset's channels (RGB)", "loss": f"{ADA_LOSS}: StyleGAN2Loss",
    "progressive": "no progressive growing since StyleGAN2",
    "z_dim": f"{ADA_TRAIN}: z_dim=512", "w_dim": f"{ADA_TRAIN}: w_dim=512",
    "mapping_layers": f"{ADA_TRAIN}: cfg_specs map", "mapping_lr_multiplier": f"{ADA_NET}: lr_multiplier=0.01",
    "w_avg_beta": f"{ADA_NET}: MappingNetwork w_avg_beta=0.995",
    "channel_base": f"{ADA_TRAIN}: int(cfg_specs fmaps * 32768)", "channel_max": f"{ADA_TRAIN}: channel_max=512",
    "g_architecture": f"{ADA_NET}: SynthesisNetwork architecture='skip'",
    "d_architecture": f"{ADA_NET}: Discriminator architecture='resnet' (cifar: 'orig')",
    "num_fp16_res": f"{ADA_TRAIN}: num_fp16_res=4 for every cfg (--fp32 sets 0); fp32 on CPU",
    "conv_clamp": f"{ADA_TRAIN}: conv_clamp=256 for every cfg (--fp32 sets None)",
    "mbstd_group_size": f"{ADA_TRAIN}: cfg_specs mbstd", "mbstd_num_channels": f"{ADA_NET}: mbstd_num_channels=1",
    "batch": f"{ADA_TRAIN}: cfg_specs mb", "kimg": f"{ADA_TRAIN}: cfg_specs kimg",
    "ref_gpus": f"{ADA_TRAIN}: cfg_specs ref_gpus", "lr_g": f"{ADA_TRAIN}: cfg_specs lrate",
    "lr_d": f"{ADA_TRAIN}: cfg_specs lrate", "betas": f"{ADA_TRAIN}: Adam betas=[0,0.99]",
    "eps": f"{ADA_TRAIN}: Adam eps=1e-8", "r1_gamma": f"{ADA_TRAIN}: cfg_specs gamma",
    "r1_interval": f"{ADA_LOOP}: D_reg_interval=16", "pl_weight": f"{ADA_LOSS}: pl_weight=2 (cifar: 0)",
    "pl_interval": f"{ADA_LOOP}: G_reg_interval=4", "pl_decay": f"{ADA_LOSS}: pl_decay=0.01",
    "pl_batch_shrink": f"{ADA_LOSS}: pl_batch_shrink=2",
    "style_mixing": f"{ADA_LOSS}: style_mixing_prob=0.9 (cifar: 0)", "ema_kimg": f"{ADA_TRAIN}: cfg_specs ema",
    "ema_rampup": f"{ADA_TRAIN}: cfg_specs ramp", "augment": f"{ADA_TRAIN}: --aug ada, --augpipe bgc",
    "ada_target": f"{ADA_TRAIN}: --target 0.6", "ada_kimg": f"{ADA_LOOP}: ada_kimg=500",
    "ema_update": "stylegan2-ada-pytorch training/loss.py: w_avg in every mapping call but style mixing's",
    "zero_terms": "stylegan2-ada-pytorch training/loss.py: 'gen_img * 0', 'real_logits * 0' in the losses",
}

STYLEGAN2_ADA = Family("stylegan2-ada", {**NET_DEFAULTS, "w_avg_beta": 0.995},
                       {**TRAIN_DEFAULTS, "augment": "bgc", "ada_target": 0.6, "ada_kimg": 500,
                        "ema_update": "all_but_mixing", "zero_terms": True},
                       presets=ADA_PRESETS, default_preset="auto", sources=ADA_SOURCES,
                       preset_sources={**{p: f"{ADA_TRAIN}: cfg_specs['{p}']"
                                          for p in ("stylegan2", "paper256", "paper512", "paper1024")},
                                       "auto": f"{ADA_TRAIN}: cfg_specs['auto'] heuristics, 1 GPU",
                                       "cifar": f"{ADA_TRAIN}: cfg_specs['cifar'] and its cifar block",
                                       "tiny": "ganbench tiny preset (CPU-sized, not published)"})


def build_networks(resolution: int, net: dict[str, Any]) -> tuple[Generator, Discriminator]:
    """Construct G and D from resolved network options."""
    conv_clamp = net["conv_clamp"]   # None = no clamp, also with fp16 layers (NVIDIA's networks)
    G = Generator(
        z_dim=net["z_dim"], c_dim=net["c_dim"], w_dim=net["w_dim"], img_resolution=resolution,
        img_channels=net["img_channels"],
        mapping_kwargs=dict(num_layers=net["mapping_layers"], lr_multiplier=net["mapping_lr_multiplier"],
                            w_avg_beta=net["w_avg_beta"]),
        synthesis_kwargs=dict(channel_base=net["channel_base"], channel_max=net["channel_max"],
                              num_fp16_res=net["num_fp16_res"], conv_clamp=conv_clamp,
                              architecture=net["g_architecture"]),
    )
    D = Discriminator(
        c_dim=net["c_dim"], img_resolution=resolution, img_channels=net["img_channels"],
        architecture=net["d_architecture"], channel_base=net["channel_base"], channel_max=net["channel_max"],
        num_fp16_res=net["num_fp16_res"], conv_clamp=conv_clamp, mbstd_group_size=net["mbstd_group_size"],
        mbstd_num_channels=net["mbstd_num_channels"],
    )
    return G, D


def _build(family: Family, resolution: int, preset: str | None, overrides: dict[str, Any]) -> ModelSpec:
    return build_spec(family, resolution, preset, overrides, build_networks)


@register("stylegan2")
def build_stylegan2(resolution: int, preset: str | None = None, **overrides: Any) -> ModelSpec:
    """StyleGAN2 config F networks with the paper's training defaults (or the `tiny` preset)."""
    return _build(STYLEGAN2, resolution, preset, overrides)


build_stylegan2.family = STYLEGAN2  # read by `ganbench zoo` to list presets and defaults


@register("stylegan2-ada")
def build_stylegan2_ada(resolution: int, preset: str | None = None, **overrides: Any) -> ModelSpec:
    """StyleGAN2 networks with stylegan2-ada-pytorch presets (default `auto`) and ADA ('bgc', target 0.6)."""
    return _build(STYLEGAN2_ADA, resolution, preset, overrides)


build_stylegan2_ada.family = STYLEGAN2_ADA
