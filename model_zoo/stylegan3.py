"""StyleGAN3 (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"): configs T and R.

The generator has NVlabs' `training/networks_stylegan3.py` structure (same modules, parameter names and
counts): a 2-layer mapping network, Fourier-feature input whose frequencies lie in a disc and are rotated and
translated by a learned affine of w and by a user `transform`, 14 modulated-conv layers plus ToRGB whose
cutoffs, stopbands and sampling rates follow the paper's geometric schedule, and filtered leaky ReLUs
(model_zoo/filtered_lrelu.py). Config T uses 3x3 convolutions; config R uses 1x1 convolutions, twice the
generator channels and radially symmetric (jinc) downsampling filters. The discriminator is StyleGAN2's
residual D; for R it blurs its input with a sigma that the training loop fades out (`D.blur_sigma`).

`channel_base`/`channel_max` are NVlabs' `--cbase`/`--cmax`, shared by G and D; the generator uses them times
`g_channel_mult` (1 for T, 2 for R).

Equivariance helpers: `make_transform(translate, angle)` builds the 3x3 image transform and
`set_transform(G, translate, angle)` makes G render its images moved by it (writes the inverse into
`G.synthesis.input.transform`). Translations are in units of the image size: 1 / img_resolution is one pixel.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from model_zoo import ModelSpec, register
from model_zoo import stylegan2
from model_zoo._options import Family, build_spec
from model_zoo.filtered_lrelu import design_lowpass_filter, filtered_lrelu
from model_zoo.layers import (FullyConnectedLayer, block_dtype, check_images, check_noise_mode, filter2d,
                              modulated_conv2d)


# --------------------------------------------------------------------------------------------------------------
# Transforms (for users and the equivariance metrics).

def make_transform(translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> torch.Tensor:
    """3x3 matrix rotating by `angle` degrees, then translating by `translate` (x, y) in image-size units."""
    rad = math.radians(angle)
    s, c = math.sin(rad), math.cos(rad)
    return torch.tensor([[c, s, float(translate[0])],
                         [-s, c, float(translate[1])],
                         [0.0, 0.0, 1.0]], dtype=torch.float64)


def set_transform(G: nn.Module, translate: Sequence[float] = (0.0, 0.0), angle: float = 0.0) -> None:
    """Make G's output move by (translate, angle) of `make_transform`: image content shifts by +translate."""
    synthesis = G.synthesis if hasattr(G, "synthesis") else G
    m = torch.linalg.inv(make_transform(translate, angle))
    synthesis.input.transform.copy_(m.to(synthesis.input.transform.dtype))


# --------------------------------------------------------------------------------------------------------------
# Generator.

class SynthesisInput(nn.Module):
    """Fourier features sampled on a grid, transformed by a learned rotation/translation of w and `transform`."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float) -> None:
        super().__init__()
        self.w_dim, self.channels, self.size = w_dim, channels, int(size)
        self.sampling_rate, self.bandwidth = float(sampling_rate), float(bandwidth)
        # Random frequencies inside the disc of radius `bandwidth` (NVlabs' distribution: a Gaussian direction,
        # radius remapped by exp(-r^2 / 4)).
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3))  # user inverse transform w.r.t. the output image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)  # (r_c, r_s, t_x, t_y), rotation normalised to unit length
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        zeros, ones = torch.zeros_like(t[:, 0]), torch.ones_like(t[:, 0])
        rot = torch.stack([torch.stack([t[:, 0], -t[:, 1], zeros], 1),
                           torch.stack([t[:, 1], t[:, 0], zeros], 1),
                           torch.stack([zeros, zeros, ones], 1)], 1)
        trans = torch.stack([torch.stack([ones, zeros, -t[:, 2]], 1),
                             torch.stack([zeros, ones, -t[:, 3]], 1),
                             torch.stack([zeros, zeros, ones], 1)], 1)
        m = rot @ trans @ self.transform.to(w.dtype).unsqueeze(0)  # [N, 3, 3]

        freqs = self.freqs.to(w.dtype).unsqueeze(0)                 # [1, C, 2]
        phases = self.phases.to(w.dtype).unsqueeze(0) + (freqs @ m[:, :2, 2:]).squeeze(2)   # [N, C]
        freqs = freqs @ m[:, :2, :2]                                  # [N, C, 2]
        # Fade out frequencies that a user transform pushed beyond the band the first layer can carry.
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)

        # Sample positions: pixel centres, the grid spanning size / sampling_rate units around the origin.
        pos = (torch.arange(self.size, device=w.device, dtype=w.dtype) + 0.5 - self.size / 2) / self.sampling_rate
        gy, gx = torch.meshgrid(pos, pos, indexing="ij")
        grid = torch.stack([gx, gy], dim=-1).reshape(1, -1, 2)        # [1, H*W, 2] as (x, y)
        x = grid @ freqs.transpose(1, 2) + phases.unsqueeze(1)        # [N, H*W, C]
        x = torch.sin(x * (2 * np.pi)) * amplitudes.unsqueeze(1)
        x = x @ (self.weight / np.sqrt(self.channels)).t()
        return x.transpose(1, 2).reshape(n, self.channels, self.size, self.size)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SynthesisLayer(nn.Module):
    """Modulated conv (input gain from a magnitude EMA) + filtered leaky ReLU between two sampling rates."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool,
                 in_channels: int, out_channels: int, in_size: int, out_size: int,
                 in_sampling_rate: float, out_sampling_rate: float, in_cutoff: float, out_cutoff: float,
                 in_half_width: float, out_half_width: float, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False, conv_clamp: float | None = 256,
                 magnitude_ema_beta: float = 0.999) -> None:
        super().__init__()
        self.w_dim, self.is_torgb, self.is_critically_sampled = w_dim, is_torgb, is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.in_half_width, self.out_half_width = in_half_width, out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp, self.magnitude_ema_beta = conv_clamp, magnitude_ema_beta

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        if in_sampling_rate * self.up_factor != self.tmp_sampling_rate:
            raise ValueError(f"sampling rates {in_sampling_rate} -> {self.tmp_sampling_rate} need an integer factor")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            numtaps=self.up_taps, cutoff=in_cutoff, width=in_half_width * 2, fs=self.tmp_sampling_rate))

        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        if out_sampling_rate * self.down_factor != self.tmp_sampling_rate:
            raise ValueError(f"sampling rates {self.tmp_sampling_rate} -> {out_sampling_rate} need an integer factor")
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = use_radial_filters and not is_critically_sampled
        self.register_buffer("down_filter", design_lowpass_filter(
            numtaps=self.down_taps, cutoff=out_cutoff, width=out_half_width * 2, fs=self.tmp_sampling_rate,
            radial=self.down_radial))

        # Padding on the upsampled grid so that the output has out_size samples, centred as in the paper's
        # symmetric interpretation of sample positions.
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo), int(pad_hi), int(pad_lo), int(pad_hi)]

    def forward(self, x: torch.Tensor, w: torch.Tensor, update_emas: bool = True, force_fp32: bool = False,
                fused_modconv: bool | None = None) -> torch.Tensor:
        if update_emas and self.training:
            with torch.no_grad():
                magnitude = x.detach().to(torch.float32).square().mean()
                self.magnitude_ema.copy_(magnitude.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.rsqrt()

        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / np.sqrt(self.in_channels * self.conv_kernel ** 2))

        dtype = block_dtype(self.use_fp16, x, force_fp32)
        if fused_modconv is None:
            # Measured on CPU (benchmarks/sg3_memory.py): one grouped conv is faster and keeps less for backward
            # with 1x1 kernels (config R); for 3x3 kernels scaling the activations is faster.
            fused_modconv = self.conv_kernel == 1
        x = modulated_conv2d(x.to(dtype), self.weight, styles, padding=self.conv_kernel - 1,  # fp32 demodulation
                             demodulate=not self.is_torgb, input_gain=input_gain, fused_modconv=fused_modconv)
        gain = 1 if self.is_torgb else np.sqrt(2)
        slope = 1 if self.is_torgb else 0.2
        x = filtered_lrelu(x, fu=self.up_filter, fd=self.down_filter, b=self.bias.to(x.dtype), up=self.up_factor,
                           down=self.down_factor, padding=self.padding, gain=gain, slope=slope,
                           clamp=self.conv_clamp)
        return x

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, critically_sampled={self.is_critically_sampled}, "
                f"channels={self.in_channels}->{self.out_channels}, size={self.in_size}->{self.out_size}, "
                f"sampling_rate={self.in_sampling_rate:g}->{self.out_sampling_rate:g}, "
                f"cutoff={self.in_cutoff:g}->{self.out_cutoff:g}, up={self.up_factor}, down={self.down_factor}, "
                f"radial={self.down_radial}")


def layer_schedule(img_resolution: int, img_channels: int, channel_base: int = 32768, channel_max: int = 512,
                   num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                   first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3,
                   margin_size: int = 10) -> dict[str, np.ndarray]:
    """Per-layer cutoffs, stopbands, sampling rates, half-widths, sizes and channels (index 0 = input)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates, half_widths=half_widths,
                sizes=sizes, channels=channels)


class SynthesisNetwork(nn.Module):
    """ws [N, num_layers + 2, w_dim] -> images: Fourier input, num_layers synthesis layers, ToRGB, output scale."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 0, **layer_kwargs: Any) -> None:
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.num_ws = num_layers + 2
        self.num_layers, self.num_critical, self.margin_size = num_layers, num_critical, margin_size
        self.output_scale, self.num_fp16_res = output_scale, num_fp16_res
        s = layer_schedule(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                           first_cutoff, first_stopband, last_stopband_rel, margin_size)
        self.schedule = s
        self.input = SynthesisInput(w_dim, channels=int(s["channels"][0]), size=int(s["sizes"][0]),
                                    sampling_rate=s["sampling_rates"][0], bandwidth=s["cutoffs"][0])
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim, is_torgb=(idx == num_layers), is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(s["sampling_rates"][idx] * (2 ** num_fp16_res) > img_resolution),
                in_channels=int(s["channels"][prev]), out_channels=int(s["channels"][idx]),
                in_size=int(s["sizes"][prev]), out_size=int(s["sizes"][idx]),
                in_sampling_rate=int(s["sampling_rates"][prev]), out_sampling_rate=int(s["sampling_rates"][idx]),
                in_cutoff=s["cutoffs"][prev], out_cutoff=s["cutoffs"][idx],
                in_half_width=s["half_widths"][prev], out_half_width=s["half_widths"][idx], **layer_kwargs)
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def forward(self, ws: torch.Tensor, noise_mode: str = "random", update_emas: bool = True,
                force_fp32: bool = False, fused_modconv: bool | None = None) -> torch.Tensor:
        check_noise_mode(noise_mode)  # accepted for the common interface; StyleGAN3 has no noise inputs
        if ws.ndim != 3 or ws.shape[1:] != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, update_emas=update_emas, force_fp32=force_fp32,
                                    fused_modconv=fused_modconv)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32).contiguous()

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
                f"img_channels={self.img_channels}, num_layers={self.num_layers}, "
                f"num_critical={self.num_critical}, margin_size={self.margin_size}")


class Generator(stylegan2.Generator):
    """Mapping + alias-free synthesis: G(z, c, truncation_psi) -> images in about [-1, 1]."""

    synthesis_class = SynthesisNetwork


# --------------------------------------------------------------------------------------------------------------
# Discriminator.

def blur_kernel(sigma: float) -> torch.Tensor | None:
    """NVlabs' StyleGAN3-R discriminator blur: 2^-(t/sigma)^2 for |t| <= floor(3 sigma), normalised; None if empty."""
    size = math.floor(sigma * 3)
    if size <= 0:
        return None
    f = torch.arange(-size, size + 1, dtype=torch.float32).div(sigma).square().neg().exp2()
    return f / f.sum()


class Discriminator(stylegan2.Discriminator):
    """StyleGAN2's residual D that first blurs its input by `blur_sigma` (StyleGAN3-R; 0 = no blur).

    The training loop fades the blur out by assigning `D.blur_sigma = value`; it is kept in a buffer so
    checkpoints carry it.
    """

    def __init__(self, *args: Any, blur_sigma: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("blur_sigma_value", torch.tensor(float(blur_sigma)))

    @property
    def blur_sigma(self) -> float:
        return float(self.blur_sigma_value)

    @blur_sigma.setter
    def blur_sigma(self, value: float) -> None:
        self.blur_sigma_value.fill_(float(value))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, **block_kwargs: Any) -> torch.Tensor:
        check_images(img, self.img_channels, self.img_resolution)   # before the blur, so the error is D's own
        f = blur_kernel(self.blur_sigma)
        if f is not None:
            img = filter2d(img, f.to(img.device))
        return super().forward(img, c, **block_kwargs)


# --------------------------------------------------------------------------------------------------------------
# Registry entries.

def recommended_r1_gamma(resolution: int) -> float:
    """NVlabs' recommended R1 gamma at batch 32 (0.5 @128, 2 @256, 8 @512, 32 @1024), quadratic in resolution."""
    return 32.0 * (resolution / 1024) ** 2


REF_BATCH = 32  # NVlabs' batch for the recommended configs; the batch rules below rescale from it
S3 = "stylegan3 train.py"
S3_NET = "stylegan3 training/networks_stylegan3.py"

NET_DEFAULTS: dict[str, Any] = dict(
    img_channels=3, c_dim=0, z_dim=512, w_dim=512, mapping_layers=2, mapping_lr_multiplier=0.01,
    w_avg_beta=0.998, channel_base=32768, channel_max=512, g_channel_mult=1, num_layers=14, num_critical=2,
    first_cutoff=2.0, first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10, output_scale=0.25,
    conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False, conv_clamp=256,
    magnitude_ema_beta=0.5 ** (REF_BATCH / 20e3), num_fp16_res=4,
    d_architecture="resnet", d_num_fp16_res=4, d_conv_clamp=256, mbstd_group_size=4, mbstd_num_channels=1,
    blur_init_sigma=0.0,
)
R_NET = dict(conv_kernel=1, g_channel_mult=2, use_radial_filters=True, blur_init_sigma=10.0)

TRAIN_DEFAULTS: dict[str, Any] = {
    **stylegan2.TRAIN_DEFAULTS,
    "lr_g": 0.0025, "lr_d": 0.002, "betas": (0.0, 0.99), "batch": REF_BATCH, "pl_weight": 0.0, "style_mixing": 0.0,
    "pl_interval": 1,   # NVIDIA G_reg_interval=None (train.py sets 4 only for --cfg=stylegan2): no lazy G phase, G's Adam unscaled
    "ema_kimg": REF_BATCH * 10 / 32, "ema_rampup": 0.05, "augment": "bgc", "ada_target": 0.6, "ada_kimg": 500,
    "blur_sigma": 0.0, "blur_fade_kimg": 0.0,
}
R_TRAIN = {"blur_sigma": 10.0, "blur_fade_kimg": REF_BATCH * 200 / 32}

# Tiny: a few kimg at 32x32 on a CPU in about a minute (32 channels, 4 layers, 8-tap filters, margin 4;
# ~15 CPU-s per kimg at batch 16 on one core).
TINY_NET = dict(z_dim=64, w_dim=64, channel_base=512, channel_max=32, num_layers=4, filter_size=4, margin_size=4,
                mbstd_group_size=4)
# ema_kimg, magnitude_ema_beta: NVIDIA's batch rules. Tuned with benchmarks/learning.py (issue 14 §3): with batch 8
# and lr 0.005 for G and D, StyleGAN3-T reaches recall 0.48 and FID 7.6 in 12 kimg (batch 16 at lr 0.005: 0.18, 13.0;
# NVIDIA's 0.0025/0.002 at batch 16 was at recall 0.06 after 4 kimg).
TINY_TRAIN = dict(batch=8, kimg=50, ema_rampup=0.05, lr_g=0.005, lr_d=0.005)

# NVIDIA derives these from the actual batch (stylegan3 train.py); R alone fades D's blur.
BATCH_RULES = {"ema_kimg": lambda b: b * 10 / 32, "magnitude_ema_beta": lambda b: 0.5 ** (b / 20e3)}
R_BATCH_RULES = {"blur_fade_kimg": lambda b: b * 200 / 32}

SOURCES: dict[str, str] = {
    **{k: stylegan2.SOURCES[k] for k in ("c_dim", "img_channels", "loss", "progressive", "pl_decay",
                                          "pl_batch_shrink", "mbstd_num_channels", "ref_gpus")},
    "d_architecture": "stylegan3 training/networks_stylegan2.py: Discriminator architecture='resnet'",
    "z_dim": f"{S3}: z_dim=512", "w_dim": f"{S3}: w_dim=512", "mapping_layers": f"{S3}: --map-depth default 2",
    "mapping_lr_multiplier": f"{S3_NET}: MappingNetwork lr_multiplier=0.01",
    "w_avg_beta": f"{S3_NET}: MappingNetwork w_avg_beta=0.998",
    "channel_base": f"{S3}: --cbase 32768 (R: doubled in G)", "channel_max": f"{S3}: --cmax 512 (R: doubled in G)",
    "g_channel_mult": f"{S3}: R doubles G's channel_base and channel_max",
    "num_layers": f"{S3_NET}: num_layers=14", "num_critical": f"{S3_NET}: num_critical=2",
    "first_cutoff": f"{S3_NET}: first_cutoff=2", "first_stopband": f"{S3_NET}: first_stopband=2**2.1",
    "last_stopband_rel": f"{S3_NET}: last_stopband_rel=2**0.3", "margin_size": f"{S3_NET}: margin_size=10",
    "output_scale": f"{S3_NET}: output_scale=0.25", "conv_kernel": f"{S3}: 3 (R: conv_kernel=1)",
    "filter_size": f"{S3_NET}: filter_size=6", "lrelu_upsampling": f"{S3_NET}: lrelu_upsampling=2",
    "use_radial_filters": f"{S3}: R sets use_radial_filters=True",
    "conv_clamp": f"{S3_NET}: conv_clamp=256 (--fp32 sets None)",
    "magnitude_ema_beta": f"{S3}: 0.5 ** (batch / (20 * 1e3))",
    "num_fp16_res": f"{S3_NET}: num_fp16_res=4 (--fp32 sets 0); fp32 on CPU",
    "d_num_fp16_res": "stylegan3 networks_stylegan2.py Discriminator num_fp16_res=4; fp32 on CPU",
    "d_conv_clamp": "stylegan3 networks_stylegan2.py Discriminator conv_clamp=256",
    "mbstd_group_size": f"{S3}: --mbstd-group 4", "blur_init_sigma": f"{S3}: R blur_init_sigma=10, T 0",
    "blur_sigma": f"{S3}: R blur_init_sigma=10, T 0", "blur_fade_kimg": f"{S3}: R batch * 200 / 32",
    "lr_g": f"{S3}: --glr 0.0025", "lr_d": f"{S3}: --dlr 0.002", "betas": f"{S3}: Adam betas=[0,0.99]",
    "eps": f"{S3}: Adam eps=1e-8", "batch": f"{S3}: README configs --batch=32",
    "ema_kimg": f"{S3}: ema_kimg = batch * 10 / 32", "ema_rampup": "stylegan3 training_loop.py: 0.05",
    "pl_weight": f"{S3}: no path length for stylegan3 configs",
    "pl_interval": "stylegan3 training_loop.py: G_reg_interval=None (train.py sets 4 only for stylegan2)",
    "style_mixing": f"{S3}: no mixing for stylegan3",
    "r1_gamma": "stylegan3 README / docs/configs.md: gamma ~ 32 * (res/1024)^2 at batch 32",
    "r1_interval": "stylegan3 training_loop.py: D_reg_interval=16", "augment": f"{S3}: --aug ada --augpipe bgc",
    "ada_target": f"{S3}: --target 0.6", "ada_kimg": "stylegan3 training_loop.py: ada_kimg=500",
    "kimg": f"{S3}: --kimg 25000",
    "ema_update": "stylegan3 training/loss.py: update_emas=True only in the Dmain generator pass",
    "zero_terms": "stylegan3 training/loss.py: no '* 0' terms (unreached grads stay None, Adam skips them)",
}


def _paper(resolution: int) -> tuple[dict, dict]:
    return {}, {"r1_gamma": recommended_r1_gamma(resolution)}


def _tiny(resolution: int) -> tuple[dict, dict]:
    return dict(TINY_NET), {**TINY_TRAIN, "r1_gamma": max(recommended_r1_gamma(resolution), 0.05)}


def _tiny_r(resolution: int) -> tuple[dict, dict]:
    # NVlabs fades D's blur over 200 kimg of a 25000-kimg run; scaled by batch that would be 100 kimg, longer
    # than the preset's whole 50-kimg run, so D would see blurred images throughout. A fifth of the run instead.
    net, train = _tiny(resolution)
    return net, {**train, "blur_fade_kimg": TINY_TRAIN["kimg"] / 5}


def build_networks(resolution: int, net: dict[str, Any]) -> tuple[Generator, Discriminator]:
    """Construct G and D from resolved network options."""
    mult = net["g_channel_mult"]
    G = Generator(
        z_dim=net["z_dim"], c_dim=net["c_dim"], w_dim=net["w_dim"], img_resolution=resolution,
        img_channels=net["img_channels"],
        mapping_kwargs=dict(num_layers=net["mapping_layers"], lr_multiplier=net["mapping_lr_multiplier"],
                            w_avg_beta=net["w_avg_beta"]),
        synthesis_kwargs=dict(
            channel_base=net["channel_base"] * mult, channel_max=net["channel_max"] * mult,
            num_layers=net["num_layers"], num_critical=net["num_critical"], first_cutoff=net["first_cutoff"],
            first_stopband=net["first_stopband"], last_stopband_rel=net["last_stopband_rel"],
            margin_size=net["margin_size"], output_scale=net["output_scale"], num_fp16_res=net["num_fp16_res"],
            conv_kernel=net["conv_kernel"], filter_size=net["filter_size"],
            lrelu_upsampling=net["lrelu_upsampling"], use_radial_filters=net["use_radial_filters"],
            conv_clamp=net["conv_clamp"], magnitude_ema_beta=net["magnitude_ema_beta"]),
    )
    D = Discriminator(
        c_dim=net["c_dim"], img_resolution=resolution, img_channels=net["img_channels"],
        architecture=net["d_architecture"], channel_base=net["channel_base"], channel_max=net["channel_max"],
        num_fp16_res=net["d_num_fp16_res"], conv_clamp=net["d_conv_clamp"],
        mbstd_group_size=net["mbstd_group_size"], mbstd_num_channels=net["mbstd_num_channels"],
        blur_sigma=net["blur_init_sigma"],
    )
    return G, D


def _family(name: str, r_config: bool) -> Family:
    net = {**NET_DEFAULTS, **(R_NET if r_config else {})}
    train = {**TRAIN_DEFAULTS, **(R_TRAIN if r_config else {})}
    rules = {**BATCH_RULES, **(R_BATCH_RULES if r_config else {})}
    return Family(name, net, train, presets={"paper": _paper, "tiny": _tiny_r if r_config else _tiny},
                  default_preset="paper", min_resolution=8, derived=rules, sources=SOURCES,
                  preset_sources={"paper": SOURCES["r1_gamma"],
                                  "tiny": "ganbench tiny preset (CPU-sized, not published)"})


STYLEGAN3_T = _family("stylegan3-t", r_config=False)
STYLEGAN3_R = _family("stylegan3-r", r_config=True)


def _build(family: Family, resolution: int, preset: str | None, overrides: dict[str, Any]) -> ModelSpec:
    return build_spec(family, resolution, preset, overrides, build_networks)


@register("stylegan3-t")
def build_stylegan3_t(resolution: int, preset: str | None = None, **overrides: Any) -> ModelSpec:
    """StyleGAN3-T (translation equivariant): 3x3 convs, Kaiser filters; NVlabs' training defaults."""
    return _build(STYLEGAN3_T, resolution, preset, overrides)


@register("stylegan3-r")
def build_stylegan3_r(resolution: int, preset: str | None = None, **overrides: Any) -> ModelSpec:
    """StyleGAN3-R (rotation equivariant): 1x1 convs, 2x channels, jinc filters, blurred D input."""
    return _build(STYLEGAN3_R, resolution, preset, overrides)


build_stylegan3_t.family = STYLEGAN3_T  # read by `ganbench zoo` to list presets, defaults and their sources
build_stylegan3_r.family = STYLEGAN3_R
