"""Every registered family (parametrised over model_zoo.list_models()): shapes, ranges, rebuild, checkpoints, grads.

Families are built with their `tiny` preset at 8-32 px so the whole file runs in seconds on one core.
"""

from __future__ import annotations

import math

import pytest
import torch

import model_zoo
from ganbench.checkpoint import save_checkpoint
from ganbench.errors import ConfigError

MODELS = model_zoo.list_models()
LOD_FREE = ("lod",)


def _build(name: str, resolution: int = 16, **overrides) -> model_zoo.ModelSpec:
    torch.manual_seed(0)
    return model_zoo.build(name, resolution, preset="tiny", **overrides)


def _labels(n: int, c_dim: int) -> torch.Tensor | None:
    return torch.eye(c_dim)[torch.arange(n) % c_dim] if c_dim else None


def _style_based(G: torch.nn.Module) -> bool:
    return hasattr(G, "mapping") and hasattr(G, "synthesis")


def test_expected_families_registered() -> None:
    assert {"progan", "stylegan", "stylegan2", "stylegan2-ada"} <= set(MODELS)


@pytest.mark.parametrize("resolution", [8, 32])
@pytest.mark.parametrize("name", MODELS)
def test_output_shapes_and_ranges(name: str, resolution: int) -> None:
    spec = _build(name, resolution)
    G, D = spec.G, spec.D
    assert (G.img_resolution, G.img_channels, G.c_dim) == (resolution, 3, 0)
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        img = G(z, None, noise_mode="const")
        logits = D(img, None)
    assert img.shape == (4, 3, resolution, resolution) and img.dtype == torch.float32
    assert torch.isfinite(img).all() and torch.isfinite(logits).all()
    # Random init gives unit-scale images (equalized lr): neither collapsed to 0 nor blown up.
    assert 0.05 < float(img.std()) < 10 and float(img.abs().max()) < 50
    assert logits.shape == (4, 1)


@pytest.mark.parametrize("name", MODELS)
def test_config_rebuilds_identical_networks(name: str) -> None:
    spec = _build(name, 16)
    again = model_zoo.build(**spec.config)
    assert again.config == spec.config and again.train == spec.train
    for a, b in ((spec.G, again.G), (spec.D, again.D)):
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb)
        assert all(sa[k].shape == sb[k].shape for k in sa)


@pytest.mark.parametrize("name", MODELS)
def test_checkpoint_roundtrip_gives_identical_output(name: str, tmp_path) -> None:
    spec = _build(name, 16)
    G_ema = spec.G
    with torch.no_grad():  # move weights off their init so a silently rebuilt fresh net would be caught
        for p in G_ema.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": G_ema.state_dict(), "cur_nimg": 0}
    path = save_checkpoint(tmp_path / "net.pt", state, {"arch": name, "config": spec.config, "resolution": 16})
    loaded = model_zoo.load(str(path))
    assert not loaded.training
    z = torch.randn(3, G_ema.z_dim, generator=torch.Generator().manual_seed(2))
    G_ema.eval()
    with torch.no_grad():
        ref = G_ema(z, None, noise_mode="const")
        out = loaded(z, None, noise_mode="const")
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    D = model_zoo.load(str(path), which="D")
    assert isinstance(D, type(spec.D))


@pytest.mark.parametrize("name", MODELS)
def test_truncation_psi_zero_gives_one_image(name: str) -> None:
    spec = _build(name, 16)
    G = spec.G.eval()
    if not _style_based(G):
        pytest.skip(f"{name} has no W space")
    assert G.num_ws == G.mapping.num_ws and G.w_dim == G.mapping.w_dim
    with torch.no_grad():
        G.mapping.w_avg.copy_(torch.randn(G.w_dim))
        z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(3))
        img = G(z, None, truncation_psi=0, noise_mode="const")
        full = G(z, None, noise_mode="const")
        ws = G.mapping(z, None)
        via_ws = G.synthesis(ws, noise_mode="const")
    torch.testing.assert_close(img, img[:1].expand_as(img), atol=1e-5, rtol=0)
    assert float((full[0] - full[1]).abs().max()) > 1e-3
    torch.testing.assert_close(via_ws, full, atol=1e-5, rtol=0)  # G = synthesis(mapping(z)): mixing works on ws
    torch.testing.assert_close(G.w_avg, G.mapping.w_avg)


@pytest.mark.parametrize("name", MODELS)
def test_noise_modes(name: str) -> None:
    G = _build(name, 16).G.eval()
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        a, b = G(z, None, noise_mode="const"), G(z, None, noise_mode="const")
        G(z, None, noise_mode="none")
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError) if _style_based(G) else _nullcontext():
        G(z, None, noise_mode="bogus")


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_parameter(name: str) -> None:
    spec = _build(name, 16)
    G, D = spec.G.train(), spec.D.train()
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(5))
    real = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    loss = torch.nn.functional.softplus(D(G(z, None), None)).mean() + torch.nn.functional.softplus(-D(real, None)).mean()
    loss.backward()
    for net_name, net in (("G", G), ("D", D)):
        params = dict(net.named_parameters())
        missing = [k for k, p in params.items() if p.grad is None]
        assert not missing, f"{name} {net_name}: no gradient for {missing}"
        assert all(torch.isfinite(p.grad).all() for p in params.values())
        zero = [k for k, p in params.items() if float(p.grad.abs().max()) == 0]
        # Progressive nets at lod 0 give the lower levels' toRGB/fromRGB exactly zero gradient (faded out).
        if not hasattr(net, "lod"):
            assert not zero, f"{name} {net_name}: zero gradient for {zero}"
        else:
            assert all("rgb" in k for k in zero), f"{name} {net_name}: zero gradient for {zero}"


@pytest.mark.parametrize("name", MODELS)
def test_conditional_labels(name: str) -> None:
    if name == "progan":
        with pytest.raises(ConfigError, match="unconditional"):
            _build(name, 16, c_dim=4)
        return
    spec = _build(name, 16, c_dim=4)
    G, D = spec.G.eval(), spec.D.eval()
    assert G.c_dim == 4
    z = torch.randn(4, G.z_dim, generator=torch.Generator().manual_seed(7)).repeat(2, 1)
    c = torch.eye(4)[[0, 1, 2, 3, 1, 2, 3, 0]]
    with torch.no_grad():
        img = G(z, c, noise_mode="const")
        logits = D(img, c)
        swapped = D(img, c.flip(0))
    assert img.shape == (8, 3, 16, 16) and logits.shape == (8, 1)
    assert float((img[:4] - img[4:]).abs().max()) > 1e-4      # the label changes the image
    assert float((logits - swapped).abs().max()) > 1e-5       # ... and D's score
    with pytest.raises(ValueError):
        G(z, None)


@pytest.mark.parametrize("name", MODELS)
def test_discriminator_names_the_shape_it_expects(name: str) -> None:
    D = model_zoo.build(name, 16, preset="tiny").D
    with pytest.raises(ValueError, match=r"D expects images \[N, 3, 16, 16\], got \(2, 3, 32, 32\)"):
        D(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"got \(3, 16, 16\)"):
        D(torch.zeros(3, 16, 16))


@pytest.mark.parametrize("name", MODELS)
def test_bad_options_are_config_errors(name: str) -> None:
    with pytest.raises(ConfigError, match="no_such_option"):
        model_zoo.build(name, 16, preset="tiny", no_such_option=1)
    with pytest.raises(ConfigError, match="no-such-preset"):
        model_zoo.build(name, 16, preset="no-such-preset")
    with pytest.raises(ConfigError, match="resolution"):
        model_zoo.build(name, 24, preset="tiny")


@pytest.mark.parametrize("name", MODELS)
def test_train_defaults_are_complete(name: str) -> None:
    train = _build(name, 16).train
    assert train["loss"] in ("wgan-gp", "ns-r1", "stylegan2")
    assert train["lr_g"] > 0 and train["lr_d"] > 0 and len(train["betas"]) == 2
    if train["progressive"]:
        assert hasattr(_build(name, 16).G, "lod")


# ---- family-specific behaviour -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["progan", "stylegan"])
def test_lod_fades_between_levels(name: str) -> None:
    spec = _build(name, 16)
    G, D = spec.G.eval(), spec.D.eval()
    assert float(G.lod) == 0 and float(D.lod) == 0
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        full = G(z, noise_mode="const")
        G.lod.fill_(1.0)
        half = G(z, noise_mode="const")
        G.lod.fill_(0.25)
        mixed = G(z, noise_mode="const")
    # lod 1: the 8x8 output shown with nearest upsampling; lod 0.25: 75% of the 16x16 level, 25% of that.
    torch.testing.assert_close(half, half[..., ::2, ::2].repeat_interleave(2, 2).repeat_interleave(2, 3))
    torch.testing.assert_close(mixed, 0.75 * full + 0.25 * half, atol=1e-5, rtol=1e-5)
    img = torch.randn(2, 3, 16, 16)
    blocky = torch.nn.functional.avg_pool2d(img, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    with torch.no_grad():
        D.lod.fill_(1.0)
        torch.testing.assert_close(D(img), D(blocky), atol=1e-5, rtol=1e-5)  # only the 8x8 input matters


def test_progan_channels_and_training_defaults() -> None:
    spec = model_zoo.build("progan", 64)
    assert spec.G.b4.out_channels == 512 and spec.G.torgb64.in_channels == 256  # min(8192 / 2^stage, 512)
    assert spec.D.fromrgb64.out_channels == 256 and spec.D.fromrgb32.out_channels == 512
    assert spec.D.mbstd.group_size == 4
    t = spec.train
    assert (t["loss"], t["gp_lambda"], t["drift"], t["lr_g"], tuple(t["betas"])) == ("wgan-gp", 10, 1e-3, 1e-3,
                                                                                      (0, 0.99))
    assert t["progressive"]["start_res"] == 4 and t["progressive"]["kimg_per_phase"] == 600


def test_stylegan_training_defaults() -> None:
    spec = model_zoo.build("stylegan", 16, preset="tiny")
    t = spec.train
    assert (t["loss"], t["r1_gamma"], t["lr_g"], t["style_mixing"]) == ("ns-r1", 10, 0.003, 0.9)   # tiny: lr tuned
    assert t["progressive"]["start_res"] == 8
    assert spec.G.num_ws == 2 * 4 - 2


def test_stylegan2_training_defaults() -> None:
    t = model_zoo.build("stylegan2", 16, preset="tiny").train
    assert (t["loss"], t["r1_interval"], t["pl_weight"], t["pl_decay"], t["pl_batch_shrink"], t["pl_interval"],
            t["style_mixing"], t["augment"]) == ("stylegan2", 16, 2, 0.01, 2, 4, 0.9, None)
    assert math.isclose(t["ema_kimg"], t["batch"] * 10 / 32)


def test_stylegan2_ada_presets() -> None:
    with torch.device("meta"):
        auto = model_zoo.build("stylegan2-ada", 256)
        cifar = model_zoo.build("stylegan2-ada", 32, preset="cifar")
        paper256 = model_zoo.build("stylegan2-ada", 256, preset="paper256")
    # stylegan2-ada-pytorch 'auto' with 1 GPU at 256: mb 16, mbstd 4, fmaps 0.5, gamma 0.0002 * 256^2 / 16.
    t = auto.train
    assert (t["augment"], t["ada_target"], t["batch"], t["lr_g"]) == ("bgc", 0.6, 16, 0.0025)
    assert math.isclose(t["r1_gamma"], 0.8192) and math.isclose(t["ema_kimg"], 5.0)
    assert auto.config["channel_base"] == 16384 and auto.config["mapping_layers"] == 2
    assert auto.D.b4.mbstd.group_size == 4
    t = cifar.train
    assert (t["r1_gamma"], t["ema_kimg"], t["pl_weight"], t["style_mixing"], t["batch"]) == (0.01, 500, 0, 0, 64)
    assert cifar.D.b4.mbstd.group_size == 32 and not hasattr(cifar.D.b32, "skip")
    assert (paper256.train["r1_gamma"], paper256.config["channel_base"], paper256.D.b4.mbstd.group_size) == (1, 16384, 8)


@pytest.mark.parametrize("g_arch,d_arch", [("orig", "orig"), ("resnet", "skip"), ("skip", "resnet")])
def test_stylegan2_architecture_variants(g_arch: str, d_arch: str) -> None:
    spec = _build("stylegan2", 16, g_architecture=g_arch, d_architecture=d_arch, num_fp16_res=2)
    assert spec.G.synthesis.b16.conv1.conv_clamp == 256  # mixed precision implies clamping (fp16 itself: CUDA only)
    z = torch.randn(4, spec.G.z_dim, generator=torch.Generator().manual_seed(9))
    img = spec.G(z, noise_mode="random")
    out = spec.D(img)
    out.sum().backward()
    assert img.shape == (4, 3, 16, 16) and out.shape == (4, 1) and torch.isfinite(out).all()
    assert hasattr(spec.G.synthesis.b8, "torgb") == (g_arch == "skip")
    assert hasattr(spec.D.b16, "skip") == (d_arch == "resnet")


def test_stylegan2_train_and_eval_paths_agree() -> None:
    """Training runs the modulated convs unfused, evaluation fused; both must compute the same images."""
    G = _build("stylegan2", 16, c_dim=3).G
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(10))
    c = torch.eye(3)
    with torch.no_grad():
        G.train()
        a = G(z, c, noise_mode="const", update_emas=False)
        G.eval()
        b = G(z, c, noise_mode="const")
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert float(G.w_avg.abs().max()) == 0  # update_emas=False left w_avg alone


def test_explicit_overrides_beat_preset_and_reach_train() -> None:
    spec = model_zoo.build("stylegan2-ada", 16, preset="cifar", channel_max=32, r1_gamma=0.5, z_dim=16, w_dim=16,
                           channel_base=512)
    assert spec.train["r1_gamma"] == 0.5 and spec.config["r1_gamma"] == 0.5
    assert spec.G.synthesis.b16.conv1.weight.shape[0] == 32
    assert model_zoo.build(**spec.config).train == spec.train


# ---- CLI --------------------------------------------------------------------------------------------------------

def test_zoo_cli_list_and_info() -> None:
    import json

    from typer.testing import CliRunner

    from ganbench.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["zoo", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {row["name"]: row for row in json.loads(res.output)}
    assert set(rows) == set(model_zoo.list_models())  # other tests may register toy families process-wide
    assert {"auto", "cifar", "paper256", "tiny"} <= set(rows["stylegan2-ada"]["presets"])
    assert all("tiny" in rows[name]["presets"] for name in MODELS)
    res = runner.invoke(app, ["zoo", "info", "stylegan2-ada", "--resolution", "32", "--preset", "cifar", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["params"] == {"G": 19_947_539, "G.mapping": 525_312, "G.synthesis": 19_422_227, "D": 20_720_641}
    assert data["train"]["r1_gamma"] == 0.01 and data["train"]["augment"] == "bgc"
    # the family's published length is listed, but a run takes --kimg: the source says so (it read as train's default)
    assert "`ganbench train` runs --kimg, default 10" in data["sources"]["kimg"], data["sources"]["kimg"]
    res = runner.invoke(app, ["zoo", "info", "stylegan2", "-r", "32"])
    assert res.exit_code == 0 and "21,523,475" in res.output and "r1_interval" in res.output
    res = runner.invoke(app, ["zoo", "info", "progan", "-r", "16", "--set", "fmap_max=32", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["config"]["fmap_max"] == 32
    for args in (["zoo", "info", "nope", "-r", "32"], ["zoo", "info", "stylegan2", "-r", "30"],
                 ["zoo", "info", "stylegan2", "-r", "32", "--set", "bogus=1"],
                 ["zoo", "info", "stylegan2", "-r", "32", "--set", "novalue"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
