"""Building blocks shared by every family: FIR resampling, bias+activation, equalized-lr layers, modulation.

Pure PyTorch; each op follows the reference semantics of NVlabs' stylegan2-ada-pytorch / stylegan3 ops
(`upfirdn2d`, `bias_act`, `conv2d_resample`, `modulated_conv2d`) so that hyperparameters, gains and
parameter layouts carry over unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------------------------------------------
# Mixed precision.

HALF_PRECISION_DEVICES = {"cuda"}  # device types where fp16 blocks compute in float16 (NVlabs: CUDA only)


def block_dtype(use_fp16: bool, x: torch.Tensor | None, force_fp32: bool = False) -> torch.dtype:
    """float16 for an fp16 block whose input lies on a device type in HALF_PRECISION_DEVICES, else float32.

    NVlabs' networks run fp16 blocks in float16 on CUDA only (CPU half convolutions are slow). Tests add
    "cpu" to the set so that the mixed-precision path runs without a GPU."""
    on_half_device = x is not None and x.device.type in HALF_PRECISION_DEVICES
    return torch.float16 if use_fp16 and on_half_device and not force_fp32 else torch.float32


# --------------------------------------------------------------------------------------------------------------
# Argument parsing helpers.

Padding = int | Sequence[int]


def _parse_scaling(scaling: int | Sequence[int]) -> tuple[int, int]:
    """(sx, sy) from an int or a pair."""
    if isinstance(scaling, int):
        scaling = [scaling, scaling]
    sx, sy = (int(s) for s in scaling)
    if sx < 1 or sy < 1:
        raise ValueError(f"scaling factors must be >= 1, got {scaling}")
    return sx, sy


def _parse_padding(padding: Padding) -> tuple[int, int, int, int]:
    """(x0, x1, y0, y1) from an int, [x, y] or [x0, x1, y0, y1]."""
    if isinstance(padding, int):
        padding = [padding, padding]
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        px, py = padding
        return px, px, py, py
    if len(padding) == 4:
        return padding[0], padding[1], padding[2], padding[3]
    raise ValueError(f"padding must be an int, [x, y] or [x0, x1, y0, y1], got {padding}")


def _filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a 2-D or separable 1-D filter; None acts like [[1]]."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


# --------------------------------------------------------------------------------------------------------------
# FIR filtering.

def setup_filter(f: Any, device: torch.device | str | None = None, normalize: bool = True, flip_filter: bool = False,
                 gain: float = 1, separable: bool | None = None) -> torch.Tensor:
    """Turn filter taps into a float32 tensor for `upfirdn2d`: 1-D (separable) or 2-D (outer product)."""
    f = torch.as_tensor(1.0 if f is None else f, dtype=torch.float32)
    if f.ndim not in (0, 1, 2) or f.numel() == 0:
        raise ValueError(f"filter must be a non-empty scalar, 1-D or 2-D array, got shape {tuple(f.shape)}")
    if f.ndim == 0:
        f = f[None]
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    if flip_filter:
        f = f.flip(list(range(f.ndim)))
    f = f * (gain ** (f.ndim / 2))
    return f if device is None else f.to(device=device)


def upfirdn2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 1, down: int | Sequence[int] = 1,
              padding: Padding = 0, flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Upsample by zero insertion, pad (or crop, if negative), convolve with FIR `f`, then keep every `down`-th pixel.

    `f` is 2-D [fh, fw] or 1-D [fw] (separable, applied along x then y); `gain` scales the result.
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects NCHW input, got shape {tuple(x.shape)}")
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    upx, upy = _parse_scaling(up)
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    n, c, h, w = x.shape

    if upx > 1 or upy > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, upx - 1, 0, 0, 0, upy - 1])
        x = x.reshape(n, c, h * upy, w * upx)

    x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
    x = x[:, :, max(-py0, 0): x.shape[2] - max(-py1, 0), max(-px0, 0): x.shape[3] - max(-px1, 0)]

    f = f.to(dtype=x.dtype, device=x.device) * (gain ** (f.ndim / 2))
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))  # conv2d correlates; flipping makes it a true convolution
    kernel = f[None, None].repeat([c, 1] + [1] * f.ndim)
    if f.ndim == 2:
        x = F.conv2d(x, kernel, groups=c)
    else:
        x = F.conv2d(x, kernel.unsqueeze(2), groups=c)
        x = F.conv2d(x, kernel.unsqueeze(3), groups=c)
    return x[:, :, ::downy, ::downx]


def filter2d(x: torch.Tensor, f: torch.Tensor | None, padding: Padding = 0, flip_filter: bool = False,
             gain: float = 1) -> torch.Tensor:
    """Filter with FIR `f`, keeping the image size (plus `padding`)."""
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + fw // 2, px1 + (fw - 1) // 2, py0 + fh // 2, py1 + (fh - 1) // 2]
    return upfirdn2d(x, f, padding=pad, flip_filter=flip_filter, gain=gain)


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, up: int | Sequence[int] = 2, padding: Padding = 0,
               flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Upsample by `up` with FIR interpolation filter `f`, output size exactly `up` times the input."""
    upx, upy = _parse_scaling(up)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + (fw + upx - 1) // 2, px1 + (fw - upx) // 2, py0 + (fh + upy - 1) // 2, py1 + (fh - upy) // 2]
    return upfirdn2d(x, f, up=up, padding=pad, flip_filter=flip_filter, gain=gain * upx * upy)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, down: int | Sequence[int] = 2, padding: Padding = 0,
                 flip_filter: bool = False, gain: float = 1) -> torch.Tensor:
    """Downsample by `down` after FIR anti-alias filtering with `f`, output size exactly input / `down`."""
    downx, downy = _parse_scaling(down)
    px0, px1, py0, py1 = _parse_padding(padding)
    fw, fh = _filter_size(f)
    pad = [px0 + (fw - downx + 1) // 2, px1 + (fw - downx) // 2, py0 + (fh - downy + 1) // 2,
           py1 + (fh - downy) // 2]
    return upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter, gain=gain)


# --------------------------------------------------------------------------------------------------------------
# Bias + activation.

@dataclass(frozen=True)
class Activation:
    """An activation with the default slope and the gain that keeps activations at unit variance."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    def_alpha: float = 0.0
    def_gain: float = 1.0


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x),
    "relu": Activation(lambda x, a: F.relu(x), def_gain=math.sqrt(2)),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), def_alpha=0.2, def_gain=math.sqrt(2)),
    "tanh": Activation(lambda x, a: torch.tanh(x)),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x)),
    "elu": Activation(lambda x, a: F.elu(x)),
    "selu": Activation(lambda x, a: F.selu(x)),
    "softplus": Activation(lambda x, a: F.softplus(x)),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, def_gain=math.sqrt(2)),
}


def _activation(act: str) -> Activation:
    try:
        return ACTIVATIONS[act]
    except KeyError:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}") from None


def bias_act(x: torch.Tensor, b: torch.Tensor | None = None, dim: int = 1, act: str = "linear",
             alpha: float | None = None, gain: float | None = None, clamp: float | None = None) -> torch.Tensor:
    """Add bias `b` along `dim`, apply `act`, multiply by `gain` (default: the activation's), clamp to ±clamp."""
    spec = _activation(act)
    alpha = float(spec.def_alpha if alpha is None else alpha)
    gain = float(spec.def_gain if gain is None else gain)
    if b is not None:
        if b.ndim != 1 or b.shape[0] != x.shape[dim]:
            raise ValueError(f"bias of shape {tuple(b.shape)} does not match dim {dim} of input {tuple(x.shape)}")
        x = x + b.to(x.dtype).reshape([-1 if i == dim % x.ndim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# --------------------------------------------------------------------------------------------------------------
# Convolution with resampling.

def _conv(x: torch.Tensor, w: torch.Tensor, stride: int = 1, padding: int | Sequence[int] = 0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> torch.Tensor:
    """conv2d / conv_transpose2d; flip_weight=False flips the kernel (true convolution instead of correlation)."""
    if not flip_weight and (w.shape[2] > 1 or w.shape[3] > 1):
        w = w.flip([2, 3])
    if transpose:
        return F.conv_transpose2d(x, w, stride=stride, padding=padding, groups=groups)
    return F.conv2d(x, w, stride=stride, padding=padding, groups=groups)


def conv2d_resample(x: torch.Tensor, w: torch.Tensor, f: torch.Tensor | None = None, up: int = 1, down: int = 1,
                    padding: Padding = 0, groups: int = 1, flip_weight: bool = True,
                    flip_filter: bool = False) -> torch.Tensor:
    """downsample(conv2d(upsample(x))) with FIR filter `f`, computed the cheapest way (as NVlabs' conv2d_resample)."""
    out_channels, in_per_group, kh, kw = w.shape
    fw, fh = _filter_size(f)
    px0, px1, py0, py1 = _parse_padding(padding)
    if up > 1:
        px0, px1 = px0 + (fw + up - 1) // 2, px1 + (fw - up) // 2
        py0, py1 = py0 + (fh + up - 1) // 2, py1 + (fh - up) // 2
    if down > 1:
        px0, px1 = px0 + (fw - down + 1) // 2, px1 + (fw - down) // 2
        py0, py1 = py0 + (fh - down + 1) // 2, py1 + (fh - down) // 2
    pad = [px0, px1, py0, py1]

    if kw == 1 and kh == 1 and down > 1 and up == 1:  # 1x1 conv commutes with resampling: shrink first
        x = upfirdn2d(x, f, down=down, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, groups=groups, flip_weight=flip_weight)
    if kw == 1 and kh == 1 and up > 1 and down == 1:  # ... or grow last
        x = _conv(x, w, groups=groups, flip_weight=flip_weight)
        return upfirdn2d(x, f, up=up, padding=pad, gain=up ** 2, flip_filter=flip_filter)
    if down > 1 and up == 1:  # filter, then strided conv
        x = upfirdn2d(x, f, padding=pad, flip_filter=flip_filter)
        return _conv(x, w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1:  # transposed strided conv, then filter
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
            w = w.reshape(groups * in_per_group, out_channels // groups, kh, kw)
        px0, px1, py0, py1 = px0 - (kw - 1), px1 - (kw - up), py0 - (kh - 1), py1 - (kh - up)
        pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
        x = _conv(x, w, stride=up, padding=[pyt, pxt], groups=groups, transpose=True, flip_weight=not flip_weight)
        x = upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up ** 2,
                      flip_filter=flip_filter)
        if down > 1:
            x = upfirdn2d(x, f, down=down, flip_filter=flip_filter)
        return x
    if px0 == px1 and py0 == py1 and px0 >= 0 and py0 >= 0:  # plain conv with symmetric padding
        return _conv(x, w, padding=[py0, px0], groups=groups, flip_weight=flip_weight)
    x = upfirdn2d(x, None, padding=pad, flip_filter=flip_filter)
    return _conv(x, w, groups=groups, flip_weight=flip_weight)


# --------------------------------------------------------------------------------------------------------------
# Equalized learning-rate layers.

class FullyConnectedLayer(nn.Module):
    """Linear layer with equalized learning rate: weights stored N(0, 1/lr_mul²), scaled at runtime by lr_mul/√fan_in."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: Any = 0.0, weight_init: float = 1.0,
                 gain: float = 1.0) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        _activation(activation)
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        if bias:
            init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
            self.bias = nn.Parameter(torch.from_numpy(init.copy()) / lr_multiplier)
        else:
            self.bias = None
        self.weight_gain = gain * lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


class Conv2dLayer(nn.Module):
    """Conv with equalized learning rate, optional FIR up/downsampling, bias, activation (with gain) and clamp."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1,
                 resample_filter: Sequence[float] | None = (1, 3, 3, 1), conv_clamp: float | None = None,
                 channels_last: bool = False, trainable: bool = True, lr_multiplier: float = 1.0) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, kernel_size
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = lr_multiplier / math.sqrt(in_channels * kernel_size ** 2)
        self.bias_gain = lr_multiplier
        self.act_gain = _activation(activation).def_gain
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size]) / lr_multiplier
        weight = weight.to(memory_format=fmt)
        b = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            self.register_buffer("bias", b)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) * self.bias_gain if self.bias is not None else None
        x = conv2d_resample(x, w, f=self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, out_channels={self.out_channels}, k={self.kernel_size}, "
                f"activation={self.activation}, up={self.up}, down={self.down}")


# ProGAN / StyleGAN speak of "equalized" layers; they are the same classes.
EqualizedLinear = FullyConnectedLayer
EqualizedConv2d = Conv2dLayer


# --------------------------------------------------------------------------------------------------------------
# Modulated convolution.

def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, noise: torch.Tensor | None = None,
                     up: int = 1, down: int = 1, padding: int = 0, resample_filter: torch.Tensor | None = None,
                     demodulate: bool = True, flip_weight: bool = True, fused_modconv: bool = True,
                     input_gain: torch.Tensor | None = None) -> torch.Tensor:
    """Per-sample conv with weights scaled by `styles` [N, I] along the input axis, optionally demodulated.

    Demodulation divides each output channel by the L2 norm of its modulated weights; `input_gain` ([I] or
    [N, I], StyleGAN3) scales the (demodulated) weights per input channel; `noise` is added after.
    fused_modconv=True runs one grouped conv; False scales the activations instead (same result).
    """
    n = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    if styles.shape != (n, in_channels):
        raise ValueError(f"styles must have shape {(n, in_channels)}, got {tuple(styles.shape)}")

    if x.dtype == torch.float16 and demodulate:  # keep fp16 intermediate values in range; no effect on the result
        weight = weight * (1 / math.sqrt(in_channels * kh * kw)
                           / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = dcoefs = None
    if fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, kh, kw]
    if demodulate and w is not None:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]
    elif demodulate:  # same sum, sum_i s_ni^2 sum_k w_oik^2, without building [N, O, I, kh, kw] (StyleGAN3 speed)
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + 1e-8).rsqrt()  # [N, O]
    gains = None
    if input_gain is not None:
        gains = input_gain.to(styles.dtype).expand(n, in_channels)  # [N, I]

    if not fused_modconv:
        scale = styles if gains is None else styles * gains
        x = x * scale.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding,
                            flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    if gains is not None:
        w = w * gains.reshape(n, 1, -1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_channels, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), f=resample_filter, up=up, down=down, padding=padding, groups=n,
                        flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


# --------------------------------------------------------------------------------------------------------------
# Normalisation, statistics and noise.

def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each vector to unit root-mean-square along `dim` (ProGAN's pixel norm / latent normalisation)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class PixelNorm(nn.Module):
    """Per-pixel feature vector normalisation to unit RMS over channels (ProGAN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return normalize_2nd_moment(x, dim=1)


class MinibatchStdLayer(nn.Module):
    """Append `num_channels` feature maps holding the average stddev over groups of `group_size` samples."""

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        while n % g:  # NVlabs requires divisibility; fall back to the largest group size that divides the batch
            g -= 1
        f = self.num_channels
        if c % f:
            raise ValueError(f"minibatch stddev: {c} channels cannot be split into {f} groups")
        y = x.reshape(g, -1, f, c // f, h, w)            # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()       # [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)   # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)                         # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class NoiseInjection(nn.Module):
    """Add per-pixel Gaussian noise scaled by a learned strength (scalar or per channel), StyleGAN style.

    noise_mode 'random' draws fresh noise, 'const' uses the fixed buffer, 'none' adds nothing.
    """

    def __init__(self, resolution: int, channels: int | None = None) -> None:
        super().__init__()
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.weight = nn.Parameter(torch.zeros([] if channels is None else [channels]))

    def noise(self, x: torch.Tensor, noise_mode: str = "random") -> torch.Tensor | None:
        """The noise to add to `x` (already multiplied by the strength), or None."""
        check_noise_mode(noise_mode)
        if noise_mode == "none":
            return None
        if noise_mode == "random":
            base = torch.randn([x.shape[0], 1, x.shape[2], x.shape[3]], device=x.device, dtype=x.dtype)
        else:
            base = self.noise_const.to(x.dtype)
        strength = self.weight.to(x.dtype)
        if strength.ndim == 1:
            strength = strength.reshape(1, -1, 1, 1)
        return base * strength

    def forward(self, x: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        noise = self.noise(x, noise_mode)
        return x if noise is None else x + noise


NOISE_MODES = ("random", "const", "none")


def check_noise_mode(noise_mode: str) -> None:
    """Reject a noise mode other than 'random', 'const' or 'none'."""
    if noise_mode not in NOISE_MODES:
        raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")


def check_images(img: torch.Tensor, channels: int, resolution: int) -> None:
    """Reject a discriminator input that is not [N, channels, resolution, resolution]."""
    expected = (channels, resolution, resolution)
    if img.ndim != 4 or tuple(img.shape[1:]) != expected:
        raise ValueError(f"D expects images [N, {', '.join(map(str, expected))}], got {tuple(img.shape)}")


# --------------------------------------------------------------------------------------------------------------
# Mapping network.

class MappingNetwork(nn.Module):
    """z (+ embedded label c) -> w: an MLP of equalized-lr layers, w broadcast to num_ws, with W-mean truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.998) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        if z_dim + embed_features == 0:
            raise ValueError("mapping network needs z_dim > 0 or c_dim > 0")
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", FullyConnectedLayer(features[idx], features[idx + 1], activation=activation,
                                                         lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor | None, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_emas: bool = True) -> torch.Tensor:
        x = None
        if self.z_dim > 0:
            x = normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional (c_dim={self.c_dim}); pass labels c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if self.w_avg_beta is not None and self.training and update_emas and hasattr(self, "w_avg"):
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs a tracked W average (w_avg_beta is None for this network)")
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :cut], truncation_psi), x[:, cut:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


def count_params(module: nn.Module) -> int:
    """Number of trainable-or-not parameters (buffers excluded), as NVlabs' summaries count them."""
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "ACTIVATIONS", "Activation", "Conv2dLayer", "EqualizedConv2d", "EqualizedLinear", "FullyConnectedLayer",
    "MappingNetwork", "MinibatchStdLayer", "NOISE_MODES", "NoiseInjection", "PixelNorm", "bias_act",
    "check_noise_mode", "conv2d_resample", "count_params", "downsample2d", "filter2d", "modulated_conv2d",
    "normalize_2nd_moment", "setup_filter", "upfirdn2d", "upsample2d",
]
