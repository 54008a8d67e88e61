"""Losses: regularisers against hand-computed values, schedules, and D learning to tell shapes from fakes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _toy_family import ToyD, ToyG
from ganbench.data import ShapesDataset
from ganbench.train.losses import LOSSES, StyleGAN2Loss, blur_images, build_loss
from ganbench.train.loop import ema_beta, lazy_adam_params


class LinearD(nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so R1 and GP have closed forms."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(numel) * 0.01)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return (img.flatten(1) @ self.w)[:, None]


def reals(n: int = 16, res: int = 16) -> torch.Tensor:
    ds = ShapesDataset(n=n, resolution=res, seed=0)
    return torch.stack([torch.from_numpy(ds.image(i)) for i in range(n)]).float() / 127.5 - 1


def test_registry_names() -> None:
    assert {"wgan-gp", "ns-r1", "stylegan2"} <= set(LOSSES.names())


def test_r1_penalty_matches_closed_form() -> None:
    torch.manual_seed(0)
    G, D = ToyG(img_resolution=8), LinearD(3 * 8 * 8)
    loss = build_loss("ns-r1", G, D, r1_gamma=4.0, r1_interval=16)
    stats = loss.accumulate_gradients("Dreg", reals(4, 8), None, torch.randn(4, 16), None, gain=16.0)
    expected = 4.0 / 2 * float(D.w.detach().square().sum())
    assert stats["loss/r1"] == pytest.approx(expected, rel=1e-5)
    # d/dw of gain * gamma/2 |w|^2 = gain * gamma * w
    assert torch.allclose(D.w.grad, 16.0 * 4.0 * D.w.detach(), rtol=1e-5, atol=1e-8)


def test_gradient_penalty_and_drift_match_closed_form() -> None:
    G, D = ToyG(img_resolution=8), LinearD(3 * 8 * 8)
    x, z = reals(4, 8), torch.randn(4, 16)
    torch.manual_seed(1)
    stats = build_loss("wgan-gp", G, D, gp_lambda=10.0, drift=1e-3).accumulate_gradients(
        "Dboth", x, None, z, None, gain=1.0)
    torch.manual_seed(1)
    with torch.no_grad():
        fake = G(z, noise_mode="random").flatten(1)     # the loss's fakes: same RNG draws
        w = D.w.detach()
        real_logits = x.flatten(1) @ w
    norm = float(w.norm())
    assert stats["loss/gp"] == pytest.approx(10.0 * (norm - 1) ** 2, rel=1e-5)
    assert stats["D/real"] == pytest.approx(float(real_logits.mean()), rel=1e-5)
    # d/dw [mean D(fake) - mean D(real) + drift mean D(real)^2 + lambda (|w| - 1)^2]
    expected = (fake.mean(0) - x.flatten(1).mean(0) + 1e-3 * 2 * (real_logits[:, None] * x.flatten(1)).mean(0)
                + 2 * 10.0 * (norm - 1) * w / norm)
    assert torch.allclose(D.w.grad, expected, rtol=1e-4, atol=1e-6)


def test_phase_intervals_per_loss() -> None:
    G, D = ToyG(img_resolution=8), ToyD(img_resolution=8)
    assert build_loss("wgan-gp", G, D).reg_intervals() == {"G": None, "D": None}
    assert build_loss("ns-r1", G, D, r1_interval=1).reg_intervals() == {"G": None, "D": None}
    assert build_loss("ns-r1", G, D, r1_interval=16).reg_intervals() == {"G": None, "D": 16}
    assert build_loss("stylegan2", G, D).reg_intervals() == {"G": 4, "D": 16}
    # A regulariser switched off keeps its interval (and so the lr/beta scaling), as NVIDIA's reg intervals.
    assert build_loss("stylegan2", G, D, pl_weight=0).reg_intervals() == {"G": 4, "D": 16}
    assert build_loss("stylegan2", G, D, r1_gamma=0).reg_intervals() == {"G": 4, "D": 16}
    assert build_loss("ns-r1", G, D, r1_gamma=0, r1_interval=16).reg_intervals() == {"G": None, "D": 16}
    assert build_loss("stylegan2", G, D, pl_interval=1).reg_intervals() == {"G": None, "D": 16}


def test_lazy_regularisation_and_ema_constants() -> None:
    lr, betas = lazy_adam_params(0.002, (0.0, 0.99), 16)
    assert lr == pytest.approx(0.002 * 16 / 17) and betas == (0.0, pytest.approx(0.99 ** (16 / 17)))
    assert lazy_adam_params(0.001, (0.0, 0.99), None) == (0.001, (0.0, 0.99))
    # Half-life: after ema_kimg thousand images the old weights count half.
    beta = ema_beta(batch=32, cur_nimg=10**9, ema_kimg=10, ema_rampup=None)
    assert beta ** (10_000 / 32) == pytest.approx(0.5, rel=1e-9)
    # Ramp-up: early on the half-life is cur_nimg * rampup.
    assert ema_beta(32, 1000, 10, 0.05) == pytest.approx(0.5 ** (32 / 50))


def test_path_length_regulariser_matches_direct_computation() -> None:
    G, D = ToyG(img_resolution=8), ToyD(img_resolution=8)
    loss = StyleGAN2Loss(G, D, pl_weight=2.0, pl_decay=0.01, pl_batch_shrink=2, style_mixing=0.0)
    z = torch.randn(8, 16)
    torch.manual_seed(2)
    stats = loss.accumulate_gradients("Greg", reals(8, 8), None, z, None, gain=4.0)
    # Same randomness, from a leaf W on half the batch (batch shrink 2).
    torch.manual_seed(2)
    ws = G.mapping(z[:4]).detach().requires_grad_(True)
    img = G.synthesis(ws, noise_mode="random")
    y = torch.randn_like(img) / math.sqrt(8 * 8)
    (g,) = torch.autograd.grad((img * y).sum(), ws)
    lengths = g.square().sum(2).mean(1).sqrt()
    assert stats["pl_mean"] == pytest.approx(0.01 * float(lengths.mean()), rel=1e-4)
    assert stats["loss/pl"] == pytest.approx(float(((lengths - 0.01 * lengths.mean()) ** 2).mean() * 2.0), rel=1e-4)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in G.synthesis.parameters())
    assert loss.state_dict()["pl_mean"] == pytest.approx(stats["pl_mean"])


def test_style_mixing_mixes_two_latents() -> None:
    torch.manual_seed(3)
    G, D = ToyG(img_resolution=16), ToyD(img_resolution=16)
    _, ws = build_loss("stylegan2", G, D, style_mixing=0.0).run_G(torch.randn(4, 16), None)
    assert torch.equal(ws, ws[:, :1].expand_as(ws))
    loss = build_loss("stylegan2", G, D, style_mixing=1.0)
    for _ in range(10):
        _, ws = loss.run_G(torch.randn(4, 16), None)
        changes = (ws[:, 1:] - ws[:, :-1]).abs().sum(2) > 0
        assert (changes.sum(1) == 1).all()                 # exactly one crossover point per sample
        assert (changes == changes[:1]).all()              # at the same layer for the whole batch


def _mixing_cutoffs(loss: StyleGAN2Loss, seeds: range) -> list[int]:
    """The crossover layer of run_G's style mixing (mixing probability 1) for each torch seed."""
    z = torch.randn(2, loss.G.z_dim, generator=torch.Generator().manual_seed(0))
    cutoffs = []
    for seed in seeds:
        torch.manual_seed(seed)
        _, ws = loss.run_G(z, None)
        changes = ((ws[:, 1:] - ws[:, :-1]).abs().sum(2) > 0)[0]
        assert int(changes.sum()) == 1
        cutoffs.append(int(changes.nonzero()[0, 0]) + 1)
    return cutoffs


@pytest.mark.parametrize("lod, cur_layers", [(0.0, 8), (1.0, 6), (1.5, 6), (2.0, 4)])
def test_stylegan_mixing_cutoff_follows_the_level_of_detail(lod: float, cur_layers: int) -> None:
    # TF StyleGAN G_style: cur_layers = num_layers - int(lod) * 2, cutoff ~ U{1..cur_layers-1}: every mixing event
    # lands in a layer the growing networks use. 32 px: num_ws 8; at lod 0 the draw is unchanged (U{1..7}).
    import model_zoo
    from ganbench.train.progressive import set_lod

    torch.manual_seed(0)
    spec = model_zoo.build("stylegan", 32, preset="tiny")
    set_lod([spec.G], lod)
    loss = build_loss("ns-r1", spec.G, spec.D, style_mixing=1.0)
    seeds = range(40)
    cutoffs = _mixing_cutoffs(loss, seeds)
    assert max(cutoffs) < cur_layers and min(cutoffs) >= 1
    expected = []
    for seed in seeds:     # the same draw, from the same RNG state, as torch.randint(1, cur_layers)
        torch.manual_seed(seed)
        expected.append(int(torch.randint(1, cur_layers, [])))
    assert cutoffs == expected


def test_mixing_cutoff_of_networks_without_growing_uses_every_w() -> None:
    from ganbench.train.losses import mixing_layers

    G = ToyG(img_resolution=16)
    assert not hasattr(G, "lod") and mixing_layers(G, G.num_ws) == G.num_ws


def test_blur_sigma_fades_out() -> None:
    G, D = ToyG(img_resolution=8), ToyD(img_resolution=8)
    loss = build_loss("stylegan2", G, D, blur_sigma=10.0, blur_fade_kimg=2.0)
    loss.set_progress(0)
    assert loss.blur_sigma == 10.0
    loss.set_progress(1000)
    assert loss.blur_sigma == pytest.approx(5.0)
    loss.set_progress(5000)
    assert loss.blur_sigma == 0.0
    x = torch.rand(2, 3, 16, 16)
    y = blur_images(x, 1.0)
    assert y.shape == x.shape and y.std() < x.std()
    # NVIDIA's taps 2^-(x/sigma)^2, |x| <= floor(3 sigma) = 3 for sigma 1, zero padding: a constant stays
    # constant away from the border.
    flat = blur_images(torch.full([1, 1, 16, 16], 0.3), 1.0)
    assert torch.allclose(flat[..., 3:-3, 3:-3], torch.full([1, 1, 10, 10], 0.3))
    f = torch.tensor([2.0 ** -(k * k) for k in range(-3, 4)])
    assert float(flat[0, 0, 0, 8]) == pytest.approx(0.3 * float(f[3:].sum() / f.sum()), rel=1e-6)


@pytest.mark.parametrize("name", ["wgan-gp", "ns-r1", "stylegan2"])
def test_discriminator_learns_to_separate_shapes_from_fakes(name: str) -> None:
    torch.manual_seed(4)
    G, D = ToyG(img_resolution=16), ToyD(img_resolution=16)
    G.requires_grad_(False)
    loss = build_loss(name, G, D, r1_gamma=0.1, r1_interval=1)
    opt = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    x = reals(32, 16)
    losses = []
    for step in range(40):
        opt.zero_grad(set_to_none=True)
        batch = x[(step * 8) % 32:(step * 8) % 32 + 8]
        stats = loss.accumulate_gradients("Dboth", batch, None, torch.randn(8, 16), None, gain=1.0)
        losses.append(stats["loss/D"])
        opt.step()
    with torch.no_grad():
        real_score, fake_score = D(x).mean(), D(G(torch.randn(32, 16))).mean()
    assert real_score - fake_score > 1.0
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5
    assert math.isfinite(losses[-1])
