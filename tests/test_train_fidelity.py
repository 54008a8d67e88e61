"""The training step follows each family's NVIDIA reference (issues 14.1 and 16), pinned by small hand-computed cases.

StyleGAN2 and StyleGAN3 follow NVlabs/stylegan3 (running averages move only in the D phase's generator pass;
no `* 0` terms, so parameters a regulariser does not reach keep grad None and Adam skips them); StyleGAN2-ADA
follows stylegan2-ada-pytorch (every mapping call but the style-mixing one updates w_avg; `* 0` terms).
"""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import model_zoo
from _toy_family import ToyD
from ganbench.train import Trainer, TrainOptions
from ganbench.train.augment import AdaController, AugmentPipe
from ganbench.train.losses import blur_images, build_loss
from ganbench.train.loop import Dist


def _loss_for(spec: model_zoo.ModelSpec, **extra):
    """The loss exactly as the loop builds it from a family's training settings."""
    kw = {k: v for k, v in {**spec.train, **extra}.items() if k != "loss" and v is not None}
    return build_loss(spec.train["loss"], spec.G.train(), spec.D.train(), **kw)


def _tiny(name: str, res: int = 16, **overrides):
    torch.manual_seed(0)
    return model_zoo.build(name, res, preset="tiny", num_fp16_res=0, **overrides)


def _reals(n: int, res: int) -> torch.Tensor:
    return torch.rand([n, 3, res, res], generator=torch.Generator().manual_seed(1)) * 2 - 1


# -- 1. which passes move the running averages -------------------------------------------------------

def _phase_moves(loss, G, buffer, phases=("Gmain", "Greg", "Dmain", "Dreg")) -> dict[str, bool]:
    moved = {}
    x = _reals(4, G.img_resolution)
    for phase in phases:
        before = buffer().clone()
        G.requires_grad_(phase.startswith("G"))
        loss.D.requires_grad_(phase.startswith("D"))
        loss.accumulate_gradients(phase, x, None, torch.randn([4, G.z_dim]), None, gain=1.0)
        moved[phase] = not torch.equal(before, buffer())
    return moved


@pytest.mark.parametrize("name", ["stylegan2", "stylegan2-ada"])
def test_w_avg_moves_in_the_reference_passes(name: str) -> None:
    spec = _tiny(name)
    loss = _loss_for(spec, style_mixing=0.0, r1_gamma=1.0, pl_weight=2.0)
    moved = _phase_moves(loss, spec.G, lambda: spec.G.mapping.w_avg)
    if name == "stylegan2":   # NVlabs/stylegan3 loss.py: update_emas=True only in the Dmain generator pass
        assert spec.train["ema_update"] == "d_phase"
        assert moved == {"Gmain": False, "Greg": False, "Dmain": True, "Dreg": False}
    else:                     # stylegan2-ada-pytorch: every train-mode mapping call (Dreg runs no G)
        assert spec.train["ema_update"] == "all_but_mixing"
        assert moved == {"Gmain": True, "Greg": True, "Dmain": True, "Dreg": False}


def test_style_mixing_mapping_call_never_moves_w_avg() -> None:
    spec = _tiny("stylegan2-ada")
    G = spec.G
    loss = _loss_for(spec, style_mixing=1.0)            # always mix: a second mapping call on fresh latents
    G.mapping.w_avg.copy_(torch.linspace(-1, 1, G.w_dim))
    old = G.mapping.w_avg.clone()
    z = torch.randn([4, G.z_dim])
    with torch.no_grad():
        w = G.mapping(z, None, update_emas=False)[:, 0]
    loss.run_G(z, None, "Gmain")
    beta = G.mapping.w_avg_beta
    expected = w.mean(0) + beta * (old - w.mean(0))     # lerp(mean w of z alone, old, beta)
    assert torch.allclose(G.mapping.w_avg, expected, atol=1e-6)


def test_stylegan3_magnitude_ema_moves_only_in_the_d_phase() -> None:
    spec = _tiny("stylegan3-t")
    layer = next(m for m in spec.G.synthesis.modules() if hasattr(m, "magnitude_ema"))
    loss = _loss_for(spec, r1_gamma=1.0)
    moved = _phase_moves(loss, spec.G, lambda: layer.magnitude_ema, phases=("Gboth", "Dmain", "Dreg"))
    assert moved == {"Gboth": False, "Dmain": True, "Dreg": False}


def test_ema_update_policy_is_validated() -> None:
    from ganbench.errors import ConfigError

    with pytest.raises(ConfigError, match="ema_update='sometimes'"):
        build_loss("stylegan2", ToyD(), ToyD(), ema_update="sometimes")


# -- 2. path length: pl_mean is not detached -------------------------------------------------------

class _LinearStyleG(nn.Module):
    """ws = z as one 4-d style; img = a * ws as a 1x2x2 image: path lengths are a * |noise| per sample."""

    z_dim, w_dim, num_ws, c_dim, img_resolution, img_channels = 4, 4, 1, 0, 2, 1

    def __init__(self, a: float) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))     # ws need a graph, as a real mapping's
        self.mapping = lambda z, c=None, update_emas=True: self.b * z[:, None, :]
        self.synthesis = lambda ws, noise_mode="random", update_emas=False: (self.a * ws).reshape(-1, 1, 2, 2)


def test_path_length_penalty_gradient_includes_the_running_mean() -> None:
    a, m0, decay, weight, gain = 1.3, 0.3, 0.5, 2.0, 4.0
    G = _LinearStyleG(a)
    loss = build_loss("stylegan2", G, ToyD(), pl_weight=weight, pl_decay=decay, pl_batch_shrink=1,
                      style_mixing=0.0, zero_terms=False)
    loss.pl_mean = torch.tensor(m0, dtype=torch.float64)
    z = torch.randn([3, 4], dtype=torch.float64)
    torch.manual_seed(7)
    loss.accumulate_gradients("Greg", None, None, z, None, gain=gain)
    torch.manual_seed(7)
    noise = torch.randn([3, 1, 2, 2], dtype=torch.float64) / 2        # randn_like(img) / sqrt(H * W)
    c = noise.flatten(1).norm(dim=1)                                   # d(img . noise)/d ws = a * noise
    lengths, L = a * c, float(c.mean())
    pl_mean = m0 + decay * (a * L - m0)
    # d/da  w * mean (a c_n - pl_mean(a))^2  with  d pl_mean / da = decay * L
    expected = gain * weight * float((2 * (lengths - pl_mean) * (c - decay * L)).mean())
    assert float(G.a.grad) == pytest.approx(expected, rel=1e-10)
    assert float(loss.pl_mean) == pytest.approx(pl_mean, rel=1e-12)   # the buffer keeps the detached value
    assert not loss.pl_mean.requires_grad
    detached = gain * weight * float((2 * (lengths - pl_mean) * c).mean())
    assert abs(expected - detached) > 1e-3 * abs(expected)              # the case tells the two apart


# -- 3. parameters a regulariser does not reach ----------------------------------------------------

def _adam_steps_after(name: str, phase: str) -> tuple[dict[str, int], set[str]]:
    """Run one `phase` through the loop's gradient path; Adam step counts per parameter and the None-grad set."""
    spec = _tiny(name)
    loss = _loss_for(spec, r1_gamma=1.0, pl_weight=2.0, style_mixing=0.0)
    net = spec.G if phase.startswith("G") else spec.D
    spec.G.requires_grad_(net is spec.G)
    spec.D.requires_grad_(net is spec.D)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.0, 0.99))
    opt.zero_grad(set_to_none=True)
    loss.accumulate_gradients(phase, _reals(4, 16), None, torch.randn([4, spec.G.z_dim]), None, gain=4.0)
    Dist().all_reduce_grads(net)
    unreached = {k for k, p in net.named_parameters() if p.grad is None}
    opt.step()
    steps = {k: int(opt.state[p]["step"]) if p in opt.state else 0 for k, p in net.named_parameters()}
    return steps, unreached


@pytest.mark.parametrize("phase, param", [("Greg", "synthesis.b16.torgb.bias"), ("Dreg", "b4.out.bias")])
def test_unreached_parameters_are_stepped_only_with_zero_terms(phase: str, param: str) -> None:
    # The last toRGB bias is an additive constant of the image (no path length); D's output bias does
    # not change D's input gradient (no R1).
    steps, unreached = _adam_steps_after("stylegan2", phase)
    assert param in unreached and steps[param] == 0                     # NVlabs/stylegan3: Adam skips it
    assert max(steps.values()) == 1
    steps, unreached = _adam_steps_after("stylegan2-ada", phase)
    assert not unreached and steps[param] == 1                          # stylegan2-ada-pytorch: '* 0' terms


def _reduce_worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2",
                      LOCAL_RANK=str(rank))
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    net = nn.ParameterList([nn.Parameter(torch.zeros(3)) for _ in range(3)])
    net[0].grad = torch.full([3], float(rank + 1))     # both ranks: averaged
    if rank == 0:
        net[2].grad = torch.full([3], 4.0)             # one rank only: counts as zero on the other
    Dist(rank=rank, world=2).all_reduce_grads(net)
    torch.save([None if p.grad is None else p.grad.clone() for p in net], Path(out) / f"{rank}.pt")
    dist.destroy_process_group()


def test_all_reduce_keeps_missing_grads_none(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two ranks with identical gradients, simulated: all_reduce doubles what it is given.
    import torch.distributed as dist

    reduced = []
    monkeypatch.setattr(dist, "all_reduce", lambda t: (reduced.append(t.numel()), t.mul_(2)))
    net = nn.ParameterList([nn.Parameter(torch.zeros(3)) for _ in range(2)])
    net[0].grad = torch.full([3], 5.0)
    Dist(rank=0, world=2).all_reduce_grads(net)
    assert torch.equal(net[0].grad, torch.full([3], 5.0)) and net[1].grad is None
    assert reduced == [2, 3]       # the presence mask, then only the grads that exist (no zeros for net[1])


@pytest.mark.slow
def test_ddp_all_reduce_leaves_grads_no_rank_has_none(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_reduce_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        g = torch.load(tmp_path / f"{rank}.pt", weights_only=True)
        assert torch.equal(g[0], torch.full([3], 1.5)) and g[1] is None and torch.equal(g[2], torch.full([3], 2.0))


# -- 4. lazy regularisation scaling when a regulariser is off ---------------------------------------

def _trainer(tmp_path: Path, model: str, **train) -> Trainer:
    return Trainer(TrainOptions(model=model, data="shapes:8", resolution=16, kimg=0.008, batch=4, seed=0,
                                out=tmp_path, preset="tiny", device="cpu", quiet=True,
                                network={"num_fp16_res": 0}, train=train))


def test_lazy_scaling_kept_when_regularisers_are_off(tmp_path: Path) -> None:
    t = _trainer(tmp_path, "stylegan2", pl_weight=0.0, r1_gamma=0.0, lr_g=0.002, lr_d=0.002)
    assert [(p.name, p.interval) for p in t.phases] == [("Gmain", 1), ("Greg", 4), ("Dmain", 1), ("Dreg", 16)]
    g, d = t.optimizers["G"].param_groups[0], t.optimizers["D"].param_groups[0]
    assert g["lr"] == pytest.approx(0.002 * 4 / 5) and g["betas"][1] == pytest.approx(0.99 ** 0.8)
    assert d["lr"] == pytest.approx(0.002 * 16 / 17) and d["betas"][1] == pytest.approx(0.99 ** (16 / 17))
    t.step()    # the reg phases run and do nothing: one Adam step per parameter (the main phases')
    assert all(int(t.optimizers[k].state[p]["step"]) == 1 for k, net in (("G", t.G), ("D", t.D))
               for p in net.parameters())


def test_stylegan3_has_no_lazy_g_phase(tmp_path: Path) -> None:
    # stylegan3 training_loop.py: G_reg_interval=None (train.py sets 4 only for --cfg=stylegan2), D 16.
    t = _trainer(tmp_path, "stylegan3-t", lr_g=0.0025, lr_d=0.002)     # NVIDIA's rates (tiny tunes its own)
    assert [(p.name, p.interval) for p in t.phases] == [("Gboth", 1), ("Dmain", 1), ("Dreg", 16)]
    assert t.optimizers["G"].param_groups[0]["lr"] == pytest.approx(0.0025)
    assert t.optimizers["D"].param_groups[0]["lr"] == pytest.approx(0.002 * 16 / 17)
    assert (t.loss.ema_update, t.loss.zero_terms) == ("d_phase", False)


@pytest.mark.parametrize("interval", [None, 1])
def test_reg_interval_none_means_no_lazy_regularisation(tmp_path: Path, interval: int | None) -> None:
    # stylegan3 training_loop.py: reg_interval None -> one '<name>both' phase, Adam's lr and betas not rescaled
    # (the same as 1); before, None fell back to the loss's 16 and 4 (D lr 0.005 * 16/17).
    t = _trainer(tmp_path, "stylegan2", r1_interval=interval, pl_interval=interval, r1_gamma=1.0, pl_weight=2.0,
                 lr_g=0.002, lr_d=0.005)
    assert [(p.name, p.interval) for p in t.phases] == [("Gboth", 1), ("Dboth", 1)]
    assert t.loss.reg_intervals() == {"G": None, "D": None}
    g, d = t.optimizers["G"].param_groups[0], t.optimizers["D"].param_groups[0]
    assert (g["lr"], tuple(g["betas"])) == (0.002, (0.0, 0.99))
    assert (d["lr"], tuple(d["betas"])) == (0.005, (0.0, 0.99))
    for _ in range(2):   # both regularisers in every minibatch, not only every 4th / 16th
        stats = t.step()
        assert "loss/pl" in stats and "loss/r1" in stats
    # the record says what ran, and a run recorded with None resumes with 1 (and the other way), not with 16
    from ganbench.train.options import settings_mismatch

    assert (t.metadata()["train"]["r1_interval"], t.metadata()["train"]["pl_interval"]) == (interval, interval)
    other = {**t.metadata(), "train": {**t.metadata()["train"], "r1_interval": 1 if interval is None else None,
                                       "pl_interval": 1 if interval is None else None}}
    assert settings_mismatch(t.metadata(), other) == []
    lazy = {**t.metadata(), "train": {**t.metadata()["train"], "r1_interval": 16}}
    assert settings_mismatch(t.metadata(), lazy) == [f"--set r1_interval: recorded {interval}, now 16"]


# -- 5. StyleGAN3-R blur, ADA statistics -----------------------------------------------------------

class _Mask(nn.Module):
    """A stand-in augmentation that does not commute with a blur: zero the left half."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.ones_like(x)
        mask[..., : x.shape[-1] // 2] = 0
        return x * mask


def test_stylegan3_r_blurs_then_augments() -> None:
    spec = _tiny("stylegan3-r")
    D = spec.D
    kw = {k: v for k, v in spec.train.items() if k != "loss" and v is not None}
    loss = build_loss(spec.train["loss"], spec.G, D, _Mask(), **kw)
    loss.set_progress(0)
    sigma = spec.train["blur_sigma"]
    assert sigma == 10.0 and loss.blur_sigma == sigma and D.blur_sigma == 0.0   # D itself no longer blurs
    seen = []
    D.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    x = _reals(2, 16)
    loss.run_D(x, None)
    assert torch.allclose(seen[0], _Mask()(blur_images(x, sigma)), atol=1e-6)   # NVIDIA: blur, then augment
    assert not torch.allclose(seen[0], blur_images(_Mask()(x), sigma), atol=1e-3)


def test_blur_fade_kimg_zero_turns_the_blur_off() -> None:
    # stylegan3 loss.py: blur_sigma = ... if blur_fade_kimg > 0 else 0
    loss = build_loss("stylegan2", ToyD(), ToyD(), blur_sigma=10.0, blur_fade_kimg=0.0)
    loss.set_progress(0)
    assert loss.blur_sigma == 0.0
    loss = build_loss("stylegan2", ToyD(), ToyD(), blur_sigma=10.0, blur_fade_kimg=4.0)
    loss.set_progress(1000)
    assert loss.blur_sigma == pytest.approx(7.5)


class _SignD(nn.Module):
    """Logits = mean of the image minus 0.1: signs are known from the inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.tensor(-0.1))

    def forward(self, img: torch.Tensor, c=None) -> torch.Tensor:
        return img.flatten(1).mean(1, keepdim=True) + self.b


def test_ada_statistic_counts_the_r1_pass_signs() -> None:
    pipe = AugmentPipe(p=0.0)
    ada = AdaController(pipe, target=0.6, interval=1, speed_kimg=500)
    D = _SignD()
    loss = build_loss("stylegan2", ToyD(), D, pipe, r1_gamma=1.0, style_mixing=0.0)
    loss.on_real_logits = ada.accumulate
    x = torch.stack([torch.full([3, 4, 4], v) for v in (0.5, 0.3, -0.5, 0.2)])   # signs + + - +
    D.requires_grad_(True)
    loss.accumulate_gradients("Dreg", x, None, None, None, gain=16.0)
    assert (ada.sign_sum, ada.count) == (2.0, 4)        # NVIDIA reports Loss/signs/real in the R1 pass too
    rt = ada.step(batch_size=4)
    assert rt == pytest.approx(0.5) and float(pipe.p) == 0.0   # 0.5 < 0.6: p would fall, floored at 0


def test_ada_p_is_not_capped_at_one() -> None:
    pipe = AugmentPipe(p=0.999)
    ada = AdaController(pipe, target=0.6, interval=4, speed_kimg=1)
    ada.accumulate(torch.ones([8, 1]))
    for _ in range(4):
        ada.step(batch_size=8)
    # stylegan2-ada-pytorch / stylegan3 training_loop.py: p += sign(r_t - target) * batch * interval / (kimg * 1000)
    assert float(pipe.p) == pytest.approx(0.999 + 8 * 4 / 1000, rel=1e-6)
    assert math.isfinite(float(pipe.p))


# -- 6. the policy is shown by `zoo info` ----------------------------------------------------------

@pytest.mark.parametrize("name, reference", [("stylegan2", "NVlabs/stylegan3"), ("stylegan3-t", "NVlabs/stylegan3"),
                                             ("stylegan2-ada", "stylegan2-ada-pytorch")])
def test_zoo_info_names_the_training_step_reference(name: str, reference: str) -> None:
    from typer.testing import CliRunner

    from ganbench.cli import app

    res = CliRunner().invoke(app, ["zoo", "info", name, "-r", "32"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("training step:"))
    assert line.startswith(f"training step: {reference} (")


def test_style_mixing_draws_its_latents_even_without_mixing() -> None:
    # NVIDIA's run_G: cutoff ~ U{1..num_ws-1}, u ~ U(0,1), z2 ~ N(0, I) always, then the synthesis noise.
    from _toy_family import ToyG

    G = ToyG(img_resolution=8)
    loss = build_loss("stylegan2", G, ToyD(img_resolution=8), style_mixing=1e-12)   # never mixes
    z = torch.randn([2, 16])
    torch.manual_seed(5)
    img, _ = loss.run_G(z, None, "Gmain")
    after = torch.randn([3])
    torch.manual_seed(5)
    torch.randint(1, G.num_ws, [])
    torch.rand([])
    torch.randn_like(z)
    expected_img = G.synthesis(G.mapping(z, None, update_emas=False), noise_mode="random")
    assert torch.equal(img, expected_img) and torch.equal(after, torch.randn([3]))
