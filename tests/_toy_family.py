"""A tiny style-based GAN family registered only inside tests (fixture `toy_model`), for fast loop tests."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model_zoo import ModelSpec


class ToyMapping(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.embed = nn.Linear(c_dim, z_dim) if c_dim else None
        self.net = nn.Sequential(nn.Linear(z_dim, w_dim), nn.LeakyReLU(0.2), nn.Linear(w_dim, w_dim))
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, c=None, truncation_psi=1.0, update_emas=True):
        x = z if self.embed is None or c is None else z + self.embed(c)
        w = self.net(x)
        if self.training and update_emas:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, 0.995))
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)


class ToySynthesis(nn.Module):
    def __init__(self, w_dim: int, resolution: int, channels: int, ch: int = 16) -> None:
        super().__init__()
        self.num_up = int(math.log2(resolution)) - 2
        self.num_ws = self.num_up + 2
        self.const = nn.Parameter(torch.randn(ch, 4, 4))
        self.affines = nn.ModuleList([nn.Linear(w_dim, ch) for _ in range(self.num_ws)])
        self.convs = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=1) for _ in range(self.num_up + 1)])
        self.to_rgb = nn.Conv2d(ch, channels, 1)

    def forward(self, ws, noise_mode="const", update_emas=False):
        x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        for i, conv in enumerate(self.convs):
            if i > 0:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = F.leaky_relu(conv(x * (1 + self.affines[i](ws[:, i])[..., None, None])), 0.2)
            if noise_mode == "random":
                x = x + 0.01 * torch.randn_like(x)
        return torch.tanh(self.to_rgb(x * (1 + self.affines[-1](ws[:, -1])[..., None, None])))


class ToyG(nn.Module):
    def __init__(self, z_dim=16, w_dim=16, c_dim=0, img_resolution=16, img_channels=3):
        super().__init__()
        self.z_dim, self.w_dim, self.c_dim = z_dim, w_dim, c_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = ToySynthesis(w_dim, img_resolution, img_channels)
        self.num_ws = self.synthesis.num_ws
        self.mapping = ToyMapping(z_dim, c_dim, w_dim, self.num_ws)

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        return self.synthesis(self.mapping(z, c, truncation_psi), noise_mode=noise_mode)


class ToyD(nn.Module):
    def __init__(self, c_dim=0, img_resolution=16, img_channels=3, ch=16):
        super().__init__()
        layers = [nn.Conv2d(img_channels, ch, 3, padding=1), nn.LeakyReLU(0.2)]
        for _ in range(int(math.log2(img_resolution)) - 2):
            layers += [nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ch * 16, ch), nn.LeakyReLU(0.2))
        self.out = nn.Linear(ch, 1)
        self.proj = nn.Linear(c_dim, ch) if c_dim else None

    def forward(self, img, c=None):
        h = self.net(img)
        out = self.out(h)
        if self.proj is not None and c is not None:
            out = out + (h * self.proj(c)).sum(1, keepdim=True) / math.sqrt(h.shape[1])
        return out


def build_toy(resolution: int, img_channels: int = 3, c_dim: int = 0, preset=None, loss: str = "stylegan2",
              **train) -> ModelSpec:
    G = ToyG(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels)
    D = ToyD(c_dim=c_dim, img_resolution=resolution, img_channels=img_channels)
    defaults = {"loss": loss, "lr_g": 0.002, "lr_d": 0.002, "betas": (0.0, 0.99), "r1_gamma": 1.0,
                "r1_interval": 4, "pl_weight": 2.0, "pl_interval": 4, "style_mixing": 0.9, "ema_kimg": 0.1,
                "ema_rampup": 0.05}
    return ModelSpec(G, D, {"img_channels": img_channels, "c_dim": c_dim, "loss": loss}, {**defaults, **train})
