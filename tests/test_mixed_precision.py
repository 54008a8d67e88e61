"""The mixed-precision path (num_fp16_res > 0) runs and agrees with fp32, though no GPU is here.

NVlabs' networks compute their fp16 blocks in float16 on CUDA only, and so do ours (model_zoo.layers.
block_dtype). So on a CPU-only machine the fp16 code (casts at block borders, the fp16 demodulation
rescaling, clamps, fp32 outputs) would never run and could break unseen until someone trains on a GPU
(benchmarks/gpu_suite.py's "mixed" rows). These tests add "cpu" to HALF_PRECISION_DEVICES, check that
the fp16 blocks really compute in float16, and compare with the same networks in fp32 (the reference)
within float16's precision.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import torch

import model_zoo
import model_zoo.layers as layers
from ganbench.train import Trainer, TrainOptions

FAMILIES = ["stylegan2", "stylegan2-ada", "stylegan3-t", "stylegan3-r"]


def _mixed(name: str) -> dict:
    if name.startswith("stylegan3"):
        return {"num_fp16_res": 4, "d_num_fp16_res": 4}
    return {"num_fp16_res": 4, "conv_clamp": 256}


@pytest.fixture
def half_on_cpu(monkeypatch):
    def set_half(on: bool) -> None:
        monkeypatch.setattr(layers, "HALF_PRECISION_DEVICES", {"cuda", "cpu"} if on else {"cuda"})
    return set_half


def _block_dtypes(net: torch.nn.Module, run) -> tuple[object, list[tuple[str, bool, torch.dtype]]]:
    """run()'s result and, for every module with a `use_fp16` flag, (name, flag, dtype of its first output)."""
    seen, hooks = [], []
    for name, module in net.named_modules():
        if hasattr(module, "use_fp16"):
            def hook(mod, args, out, name=name):
                first = out[0] if isinstance(out, tuple) else out
                seen.append((name, bool(mod.use_fp16), first.dtype))
            hooks.append(module.register_forward_hook(hook))
    try:
        return run(), seen
    finally:
        for h in hooks:
            h.remove()


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("name", FAMILIES)
def test_fp16_blocks_compute_in_half_and_match_fp32(name, half_on_cpu):
    torch.manual_seed(0)
    spec = model_zoo.build(name, 32, preset="tiny", **_mixed(name))
    G, D = spec.G.eval(), spec.D.eval()
    z = torch.randn([4, G.z_dim], generator=torch.Generator().manual_seed(1))
    c = torch.zeros([4, G.c_dim])
    out = {}
    for half in (False, True):
        half_on_cpu(half)
        with torch.no_grad():
            img, g_seen = _block_dtypes(G, lambda: G(z, c, noise_mode="const"))
            logits, d_seen = _block_dtypes(D, lambda: D(img, c))
        out[half] = img, logits
        assert img.dtype == logits.dtype == torch.float32  # the networks hand fp32 back in both modes
        assert any(use_fp16 for _, use_fp16, _ in g_seen) and any(use_fp16 for _, use_fp16, _ in d_seen)
        for block, use_fp16, dtype in g_seen + d_seen:
            assert dtype == (torch.float16 if half and use_fp16 else torch.float32), (block, use_fp16, dtype)
    # float16 keeps 11 significant bits (relative step 4.9e-4); measured 0.8-1.9e-3 (images) and
    # 1.2-6.5e-3 (logits) on these tiny networks
    assert _relative(out[True][0], out[False][0]) < 5e-3
    assert _relative(out[True][1], out[False][1]) < 2e-2
    assert not torch.equal(out[True][0], out[False][0])  # the half path really ran


@pytest.mark.parametrize("name", FAMILIES)
def test_training_step_with_fp16_blocks_matches_fp32(name, half_on_cpu):
    losses = {}
    for half in (False, True):
        half_on_cpu(half)
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(TrainOptions(model=name, data="shapes:16", resolution=32, kimg=1000, batch=4, seed=0,
                                           out=Path(tmp), preset="tiny", resume=False, device="cpu", quiet=True,
                                           network=_mixed(name)))
            stats = trainer.step()
            losses[half] = {k: float(v) for k, v in stats.items()}
            params = [p for net in (trainer.G, trainer.D) for p in net.parameters()]
            assert all(torch.isfinite(p).all() for p in params)
            assert all(p.dtype == torch.float32 for p in params)  # weights stay fp32; only activations are half
    assert losses[True].keys() == losses[False].keys() and losses[True] != losses[False]  # half really ran
    for key, ref in losses[False].items():
        assert losses[True][key] == pytest.approx(ref, rel=2e-2, abs=2e-3), key


@pytest.mark.parametrize("name", FAMILIES)
def test_fp16_blocks_pass_float32_weights_styles_and_noise_like_nvlabs(name, half_on_cpu, monkeypatch):
    """NVlabs' layers hand float32 weights, styles and noise to modulated_conv2d, which computes the
    demodulation in float32 and casts at the convolution; casting them to float16 first loses ~1e-3 in
    the demodulation coefficients and draws other random noise."""
    import model_zoo.stylegan2 as sg2
    import model_zoo.stylegan3 as sg3

    calls = []

    def spy(x, weight, styles, noise=None, **kw):
        calls.append((x.dtype, weight.dtype, styles.dtype, None if noise is None else noise.dtype))
        return layers.modulated_conv2d(x, weight, styles, noise=noise, **kw)

    monkeypatch.setattr(sg2, "modulated_conv2d", spy)
    monkeypatch.setattr(sg3, "modulated_conv2d", spy)
    half_on_cpu(True)
    torch.manual_seed(0)
    G = model_zoo.build(name, 32, preset="tiny", **_mixed(name)).G.eval()
    with torch.no_grad():
        G(torch.randn([2, G.z_dim]), torch.zeros([2, G.c_dim]), noise_mode="random")
    half = [c for c in calls if c[0] == torch.float16]
    assert half and all(c[1:3] == (torch.float32, torch.float32) and c[3] in (None, torch.float32) for c in half)


def test_modulated_conv2d_on_half_input_demodulates_in_float32():
    """The fused fp16 path against NVlabs' formula written out: pre-normalise, modulate and demodulate in
    float32, cast the weights to float16 for the grouped convolution."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn([2, 16, 8, 8], generator=g).half()
    weight = torch.randn([8, 16, 3, 3], generator=g) * 1e-2
    styles = torch.randn([2, 16], generator=g)
    w = weight * (1 / (16 * 9) ** 0.5 / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
    s = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = w.unsqueeze(0) * s.reshape(2, 1, -1, 1, 1)
    w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(2, -1, 1, 1, 1)
    ref = torch.nn.functional.conv2d(x.reshape(1, -1, 8, 8), w.reshape(-1, 16, 3, 3).half(), padding=1, groups=2)
    ours = layers.modulated_conv2d(x, weight, styles, padding=1, fused_modconv=True)
    assert ours.dtype == torch.float16
    torch.testing.assert_close(ours, ref.reshape(2, 8, 8, 8), rtol=0, atol=0)
