"""Presets reproduce the configs they name, value for value (issue 14 §2, issue 16 items 4-6, issue 15 item 16).

The expected values are written out here from the reference code (read, not copied):
  - NVlabs/stylegan2-ada-pytorch train.py `cfg_specs` and what train.py sets for every cfg (num_fp16_res 4,
    conv_clamp 256, channel_max 512, Adam betas/eps, ADA target 0.6 with the 'bgc' pipe);
  - NVlabs/stylegan3 train.py defaults for --cfg stylegan3-t / -r / stylegan2 and docs/configs.md's
    recommended --gamma per resolution at batch 32;
  - tkarras/progressive_growing_of_gans (ProGAN) and NVlabs/stylegan (StyleGAN) TF training code.
Networks are built on the meta device, so even the 1024px presets cost no memory or time.
"""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

import model_zoo
import model_zoo.layers
from ganbench.cli import app
from ganbench.errors import ConfigError

# ---- published values ------------------------------------------------------------------------------------------

# stylegan2-ada-pytorch train.py cfg_specs (ref_gpus, kimg, mb, mbstd, fmaps, lrate, gamma, ema, ramp, map).
ADA_CFG_SPECS = {
    "stylegan2": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=10, ema=10, ramp=None, map=8),
    "paper256": dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=0.5, lrate=0.0025, gamma=1, ema=20, ramp=None,
                     map=8),
    "paper512": dict(ref_gpus=8, kimg=25000, mb=64, mbstd=8, fmaps=1, lrate=0.0025, gamma=0.5, ema=20, ramp=None,
                     map=8),
    "paper1024": dict(ref_gpus=8, kimg=25000, mb=32, mbstd=4, fmaps=1, lrate=0.002, gamma=2, ema=10, ramp=None,
                      map=8),
    "cifar": dict(ref_gpus=2, kimg=100000, mb=64, mbstd=32, fmaps=1, lrate=0.0025, gamma=0.01, ema=500, ramp=0.05,
                  map=2),
}
# cfg 'auto' on one GPU, worked out by hand from train.py's heuristics (mb = min(4096 // res, 32) capped at 64,
# mbstd = min(mb, 4), fmaps 1 from 512 px else 0.5, lrate 0.002 from 1024 px else 0.0025,
# gamma = 0.0002 * res^2 / mb, ema = mb * 10 / 32, ramp 0.05, map 2).
ADA_AUTO_1GPU = {
    32: dict(ref_gpus=1, kimg=25000, mb=32, mbstd=4, fmaps=0.5, lrate=0.0025, gamma=0.0064, ema=10, ramp=0.05, map=2),
    256: dict(ref_gpus=1, kimg=25000, mb=16, mbstd=4, fmaps=0.5, lrate=0.0025, gamma=0.8192, ema=5, ramp=0.05, map=2),
    512: dict(ref_gpus=1, kimg=25000, mb=8, mbstd=4, fmaps=1, lrate=0.0025, gamma=6.5536, ema=2.5, ramp=0.05, map=2),
    1024: dict(ref_gpus=1, kimg=25000, mb=4, mbstd=4, fmaps=1, lrate=0.002, gamma=52.4288, ema=1.25, ramp=0.05,
               map=2),
}
ADAM = dict(betas=(0.0, 0.99), eps=1e-8)

# stylegan3 docs/configs.md: recommended --gamma at --batch=32 for StyleGAN3-T and -R.
SG3_GAMMA = {128: 0.5, 256: 2.0, 512: 8.0, 1024: 32.0}


def ada_expected(row: dict, cfg: str) -> dict:
    """One cfg_specs row in ganbench's option names, plus what train.py sets for every cfg."""
    cifar = cfg == "cifar"
    return dict(
        channel_base=int(row["fmaps"] * 32768), channel_max=512, mapping_layers=row["map"],
        mbstd_group_size=row["mbstd"], num_fp16_res=4, conv_clamp=256, w_avg_beta=0.995, z_dim=512, w_dim=512,
        g_architecture="skip", d_architecture="orig" if cifar else "resnet",
        ref_gpus=row["ref_gpus"], kimg=row["kimg"], batch=row["mb"], lr_g=row["lrate"], lr_d=row["lrate"],
        r1_gamma=row["gamma"], ema_kimg=row["ema"], ema_rampup=row["ramp"], r1_interval=16, pl_interval=4,
        pl_weight=0.0 if cifar else 2.0, style_mixing=0.0 if cifar else 0.9, pl_decay=0.01, pl_batch_shrink=2,
        augment="bgc", ada_target=0.6, ada_kimg=500, **ADAM,
    )


def sg3_expected(r_config: bool, batch: int = 32) -> dict:
    """stylegan3 train.py for --cfg=stylegan3-t / -r at `batch`, with the network classes' defaults."""
    return dict(
        channel_base=32768, channel_max=512, g_channel_mult=2 if r_config else 1, mapping_layers=2,
        mbstd_group_size=4, lr_g=0.0025, lr_d=0.002, w_avg_beta=0.998, z_dim=512, w_dim=512,
        num_fp16_res=4, conv_clamp=256, d_num_fp16_res=4, d_conv_clamp=256, d_architecture="resnet",
        num_layers=14, num_critical=2, first_cutoff=2.0, first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3,
        margin_size=10, output_scale=0.25, filter_size=6, lrelu_upsampling=2,
        conv_kernel=1 if r_config else 3, use_radial_filters=r_config,
        ema_kimg=batch * 10 / 32, ema_rampup=0.05, magnitude_ema_beta=0.5 ** (batch / (20 * 1e3)),
        blur_init_sigma=10.0 if r_config else 0.0, blur_sigma=10.0 if r_config else 0.0,
        blur_fade_kimg=batch * 200 / 32 if r_config else 0.0,
        pl_weight=0.0, pl_interval=1,  # G_reg_interval=None: ganbench spells "no lazy G phase" 1
        style_mixing=0.0, r1_interval=16, augment="bgc", ada_target=0.6,
        ada_kimg=500, kimg=25000, batch=batch, **ADAM,
    )


# stylegan3 train.py --cfg=stylegan2 (networks_stylegan2.py defaults), gamma from the README's FFHQ-1024 example.
SG2_EXPECTED = dict(
    channel_base=32768, channel_max=512, mapping_layers=8, mapping_lr_multiplier=0.01, mbstd_group_size=4,
    mbstd_num_channels=1, w_avg_beta=0.998, z_dim=512, w_dim=512, num_fp16_res=4, conv_clamp=256,
    g_architecture="skip", d_architecture="resnet", lr_g=0.002, lr_d=0.002, pl_weight=2.0, pl_interval=4,
    pl_decay=0.01, pl_batch_shrink=2, style_mixing=0.9, r1_gamma=10.0, r1_interval=16, ema_kimg=10.0,
    ema_rampup=0.05, batch=32, ref_gpus=8, kimg=25000,
    augment=None,   # deliberate: the README trains plain StyleGAN2 with --aug=noaug; ADA is its own family
    **ADAM,
)

# ProGAN's TF code: G_paper / D_paper defaults, WGAN-GP loss, TrainingSchedule defaults.
PROGAN_EXPECTED = dict(
    z_dim=512, fmap_base=8192, fmap_decay=1.0, fmap_max=512, normalize_latents=True, use_pixelnorm=True,
    mbstd_group_size=4, d_fused_scale=True, loss="wgan-gp", gp_lambda=10.0, drift=0.001, lr_g=0.001, lr_d=0.001,
    ema_rampup=None, progressive=dict(start_res=4, kimg_per_phase=600, fade_kimg=600), **ADAM,
    # config.py's enabled preset-v2-1gpu and train.py's train_progressive_gan defaults
    batch=4, batch_schedule={4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4},
    lr_schedule={1024: 0.0015}, sched_repeats=4, reset_adam_per_level=True, step_order="d_first",
    ema_step_beta=0.999,
)
PROGAN_G_SMOOTHING = 0.999   # per minibatch, whatever its size

# StyleGAN's TF code (8-GPU config of train.py, G_style / D_basic defaults, training_loop defaults).
STYLEGAN_EXPECTED = dict(
    z_dim=512, w_dim=512, mapping_layers=8, mapping_lr_multiplier=0.01, w_avg_beta=0.995, fmap_base=8192,
    fmap_decay=1.0, fmap_max=512, use_noise=True, mbstd_group_size=4, mbstd_num_channels=1, loss="ns-r1",
    r1_gamma=10.0, r1_interval=None, lr_g=0.001, lr_d=0.001, batch=32, style_mixing=0.9, ema_kimg=10.0,
    ema_rampup=None, progressive=dict(start_res=8, kimg_per_phase=600, fade_kimg=600), **ADAM,
    # train.py's 8-GPU block and training_loop.py's defaults (minibatch_repeats 4, reset_opt_for_new_lod)
    batch_schedule={4: 512, 8: 256, 16: 128, 32: 64, 64: 32},
    lr_schedule={128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003}, sched_repeats=4, reset_adam_per_level=True,
    step_order="d_first",
)


def resolved(name: str, resolution: int, **kwargs) -> dict:
    """Every value a build resolves (network config and training defaults) in one dict."""
    with torch.device("meta"):
        spec = model_zoo.build(name, resolution, **kwargs)
    return {**spec.config, **spec.train}


def assert_matches(got: dict, expected: dict) -> None:
    wrong = {}
    for key, want in expected.items():
        have = got.get(key, "<missing>")
        if isinstance(want, tuple):
            have = tuple(have) if isinstance(have, (list, tuple)) else have
        same = have == pytest.approx(want, rel=1e-12) if isinstance(want, float) and isinstance(have, (int, float)) \
            else have == want
        if not same:
            wrong[key] = (have, want)
    assert not wrong, f"(ganbench, published): {wrong}"


# ---- every preset against its source ---------------------------------------------------------------------------

TABLE_CASES = (
    [("stylegan2-ada", cfg, 256, ada_expected(row, cfg)) for cfg, row in ADA_CFG_SPECS.items()]
    + [("stylegan2-ada", "auto", res, ada_expected(row, "auto")) for res, row in ADA_AUTO_1GPU.items()]
    + [(fam, "paper", res, {**sg3_expected(fam.endswith("-r")), "r1_gamma": gamma})
       for fam in ("stylegan3-t", "stylegan3-r") for res, gamma in SG3_GAMMA.items()]
    + [("stylegan2", None, 256, SG2_EXPECTED), ("progan", None, 256, PROGAN_EXPECTED),
       ("stylegan", None, 256, STYLEGAN_EXPECTED)]
)


@pytest.mark.parametrize("name,preset,resolution,expected", TABLE_CASES,
                         ids=[f"{c[0]}-{c[1] or 'default'}-{c[2]}" for c in TABLE_CASES])
def test_preset_matches_published_config(name, preset, resolution, expected):
    assert_matches(resolved(name, resolution, preset=preset), expected)


def test_every_published_preset_is_in_the_table():
    """A preset added later without a row here fails, so the table keeps covering every published config."""
    covered = {(c[0], c[1]) for c in TABLE_CASES}
    families = ("progan", "stylegan", "stylegan2", "stylegan2-ada", "stylegan3-t", "stylegan3-r")
    assert set(families) <= set(model_zoo.list_models())    # other tests may register toy families process-wide
    for name in families:
        family = model_zoo.MODELS.get(name).family
        presets = set(family.presets) - {"tiny"}          # tiny: ganbench's own CPU preset, labelled as such
        if not presets:
            presets = {None}
        for preset in presets:
            assert (name, preset) in covered or (name, None) in covered, (name, preset)
        if "tiny" in family.presets:
            assert "not published" in family.preset_sources["tiny"], name


def test_progan_ema_decays_by_0999_per_minibatch_at_any_batch():
    """ProGAN's TF code averages G with a fixed beta per step, whatever the level's minibatch."""
    for batch in (8, 16, 64):
        train = resolved("progan", 64, batch=batch)
        assert train["ema_step_beta"] == PROGAN_G_SMOOTHING and train["ema_kimg"] is None, batch


# ---- 16.4: values NVIDIA derives from the batch ----------------------------------------------------------------

@pytest.mark.parametrize("name", ["stylegan2", "stylegan3-t", "stylegan3-r"])
@pytest.mark.parametrize("batch", [16, 64])
def test_ema_kimg_follows_the_batch_as_in_stylegan3_train_py(name, batch):
    for preset in (None, "tiny"):
        assert resolved(name, 32, preset=preset, batch=batch)["ema_kimg"] == pytest.approx(batch * 10 / 32)


@pytest.mark.parametrize("batch", [16, 64])
def test_ada_presets_keep_their_published_ema_whatever_the_batch(batch):
    """stylegan2-ada-pytorch fixes ema per cfg and does not rescale it when --batch overrides mb."""
    for cfg, row in ADA_CFG_SPECS.items():
        got = resolved("stylegan2-ada", 256, preset=cfg, batch=batch)
        assert got["ema_kimg"] == row["ema"] and got["batch"] == batch, cfg
    tiny = model_zoo.default_batch("stylegan2-ada", 32, "tiny")      # the preset's batch, whatever --batch says
    assert resolved("stylegan2-ada", 32, preset="tiny", batch=batch)["ema_kimg"] == tiny * 10 / 32


@pytest.mark.parametrize("batch", [16, 64])
def test_stylegan3_magnitude_ema_and_blur_fade_follow_the_batch(batch):
    for name, r_config in (("stylegan3-t", False), ("stylegan3-r", True)):
        got = resolved(name, 256, batch=batch)
        assert_matches(got, {k: sg3_expected(r_config, batch)[k]
                             for k in ("magnitude_ema_beta", "blur_fade_kimg", "ema_kimg")})
        assert got["magnitude_ema_beta"] == pytest.approx(0.5 ** (batch / 20000), rel=1e-12)
    spec = model_zoo.build("stylegan3-t", 16, preset="tiny", batch=batch)
    betas = {layer.magnitude_ema_beta for layer in spec.G.synthesis.modules() if hasattr(layer, "magnitude_ema_beta")}
    assert betas == {0.5 ** (batch / (20 * 1e3))}      # the networks use the derived value, not just the config


def test_explicit_values_win_over_batch_rules_and_configs_rebuild_without_the_batch():
    got = resolved("stylegan3-r", 64, batch=64, ema_kimg=3.0, blur_fade_kimg=7.0, magnitude_ema_beta=0.99)
    assert (got["ema_kimg"], got["blur_fade_kimg"], got["magnitude_ema_beta"]) == (3.0, 7.0, 0.99)
    spec = model_zoo.build("stylegan3-t", 16, preset="tiny", batch=64)
    assert "batch" not in spec.config                      # a run setting, not a network one
    with torch.device("meta"):
        again = model_zoo.build(**spec.config)             # a checkpoint rebuilds with the batch it was trained at
    assert again.config["magnitude_ema_beta"] == spec.config["magnitude_ema_beta"] == 0.5 ** (64 / 20e3)


def test_training_run_derives_them_from_its_own_batch(tmp_path):
    """`ganbench train --batch 8` gets NVIDIA's values for batch 8, not the preset's batch-16 ones."""
    from ganbench.train import Trainer, TrainOptions

    trainer = Trainer(TrainOptions(model="stylegan3-t", data="shapes:16", resolution=16, kimg=0.008, batch=8, seed=0,
                                   out=tmp_path, preset="tiny", snapshot_kimg=1, device="cpu"))
    assert trainer.train_cfg["ema_kimg"] == pytest.approx(8 * 10 / 32)
    betas = {m.magnitude_ema_beta for m in trainer.G.synthesis.modules() if hasattr(m, "magnitude_ema_beta")}
    assert betas == {0.5 ** (8 / (20 * 1e3))}


# ---- 16.5: mixed precision as NVIDIA, fp32 on CPU ----------------------------------------------------------------

FP16_FAMILIES = ["stylegan2", "stylegan2-ada", "stylegan3-t", "stylegan3-r"]


@pytest.mark.parametrize("name", FP16_FAMILIES)
def test_every_preset_carries_nvidia_mixed_precision(name):
    family = model_zoo.MODELS.get(name).family
    for preset in [None, *family.presets]:
        got = resolved(name, 64, preset=preset)
        assert (got["num_fp16_res"], got["conv_clamp"]) == (4, 256), preset
        if "d_num_fp16_res" in got:
            assert (got["d_num_fp16_res"], got["d_conv_clamp"]) == (4, 256), preset


def _dtypes(module: torch.nn.Module, prefix: str) -> dict[str, list[torch.dtype]]:
    """Forward hooks recording the dtype of each named child block's outputs."""
    seen: dict[str, list[torch.dtype]] = {}

    def hook(name):
        def record(_mod, _inputs, output):
            outs = output if isinstance(output, tuple) else (output,)
            seen[name] = [o.dtype for o in outs if isinstance(o, torch.Tensor)]
        return record

    for name, child in module.named_children():
        if name.startswith(prefix):
            child.register_forward_hook(hook(name))
    return seen


def test_cpu_runs_fp32_in_the_fp16_blocks_and_keeps_conv_clamp():
    torch.manual_seed(0)
    spec = model_zoo.build("stylegan2", 32, preset="tiny")
    G, D = spec.G.eval(), spec.D.eval()
    # NVIDIA: fp16 from max(2 ** (log2(res) + 1 - num_fp16_res), 8) up, i.e. blocks 8, 16 and 32 at 32 px.
    assert {n: b.use_fp16 for n, b in G.synthesis.named_children() if n.startswith("b")} == \
        {"b4": False, "b8": True, "b16": True, "b32": True}
    g_seen, d_seen = _dtypes(G.synthesis, "b"), _dtypes(D, "b")
    with torch.no_grad():
        img = G(torch.randn(4, G.z_dim))
        logits = D(img)
    assert img.dtype == logits.dtype == torch.float32
    assert {d for dts in (*g_seen.values(), *d_seen.values()) for d in dts} == {torch.float32}
    # conv_clamp 256 acts on CPU too: a layer driven far past it is clipped at +-256.
    layer = G.synthesis.b32.conv1
    assert layer.conv_clamp == 256
    out = {}
    layer.register_forward_hook(lambda _m, _i, o: out.__setitem__("x", o))
    with torch.no_grad():
        layer.bias.fill_(1e4)
        G(torch.randn(2, G.z_dim))
    assert out["x"].abs().max().item() == pytest.approx(256.0)


def test_stylegan3_cpu_path_is_fp32_with_nvidia_fp16_layers_and_clamp():
    torch.manual_seed(0)
    spec = model_zoo.build("stylegan3-t", 16, preset="tiny")
    G = spec.G.eval()
    layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names]
    # NVIDIA: a layer runs in fp16 when sampling_rate * 2 ** num_fp16_res > img_resolution.
    assert [layer.use_fp16 for layer in layers] == [bool(layer.out_sampling_rate * 16 > 16) for layer in layers]
    assert any(layer.use_fp16 for layer in layers) and all(layer.conv_clamp == 256 for layer in layers)
    out = {}
    layers[-2].register_forward_hook(lambda _m, _i, o: out.__setitem__("x", o))
    with torch.no_grad():
        layers[-2].bias.fill_(1e4)
        img = G(torch.randn(2, G.z_dim))
    assert img.dtype == out["x"].dtype == torch.float32
    assert out["x"].abs().max().item() <= 256.0 + 1e-3


def _cpu_half_conv_works() -> bool:
    try:
        x = torch.ones(1, 2, 4, 4, dtype=torch.float16)
        return torch.nn.functional.conv2d(x, torch.ones(2, 2, 3, 3, dtype=torch.float16)).dtype == torch.float16
    except RuntimeError:
        return False


@pytest.mark.skipif(not _cpu_half_conv_works(), reason="this torch has no float16 convolutions on CPU")
@pytest.mark.parametrize("name", ["stylegan2", "stylegan2-ada", "stylegan3-t"])
def test_fp16_path_dtypes_when_forced_on_cpu(name, monkeypatch):
    """With the CUDA-only switch forced on, the top num_fp16_res blocks compute in float16 and hand float32 images
    and logits back; force_fp32 turns it off again (PPL, equivariance metrics)."""
    monkeypatch.setattr(model_zoo.layers, "HALF_PRECISION_DEVICES", {"cuda", "cpu"})
    torch.manual_seed(0)
    res = 32
    spec = model_zoo.build(name, res, preset="tiny")
    D = spec.D.eval()
    d_seen = _dtypes(D, "b")
    img = torch.rand(4, 3, res, res) * 2 - 1
    with torch.no_grad():
        logits = D(img)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert d_seen["b4"] == [torch.float32]
    assert all(d_seen[f"b{r}"][0] == torch.float16 for r in (8, 16, 32)), d_seen
    with torch.no_grad():
        D(img, force_fp32=True)
    assert all(dts[0] == torch.float32 for dts in d_seen.values())
    if name.startswith("stylegan2"):
        G = spec.G.eval()
        g_seen = _dtypes(G.synthesis, "b")
        with torch.no_grad():
            out = G(torch.randn(4, G.z_dim))
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
        # (x, img) per block: features in the block's dtype, the skip image always float32 as in NVIDIA's code
        assert g_seen["b4"] == [torch.float32, torch.float32]
        assert all(g_seen[f"b{r}"] == [torch.float16, torch.float32] for r in (8, 16, 32)), g_seen


# ---- 16.6: w_avg_beta per reference ----------------------------------------------------------------------------

def test_w_avg_beta_follows_each_familys_reference():
    """stylegan3's networks_stylegan2.py (--cfg=stylegan2) tracks w_avg with 0.998; stylegan2-ada-pytorch with 0.995."""
    for name, beta in (("stylegan2", 0.998), ("stylegan2-ada", 0.995), ("stylegan3-t", 0.998)):
        spec = model_zoo.build(name, 32, preset="tiny")
        assert spec.config["w_avg_beta"] == beta and spec.G.mapping.w_avg_beta == beta, name
        with torch.device("meta"):
            assert model_zoo.build(name, 256).G.mapping.w_avg_beta == beta, name


# ---- 15.16: resolution limits ----------------------------------------------------------------------------------

runner = CliRunner()


def _one_line_error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1, result.output
    return result.output


def test_zoo_info_huge_resolution_is_a_clear_error():
    line = _one_line_error(["zoo", "info", "stylegan2", "-r", "1048576"])
    assert "1048576" in line and "1024" in line and "stylegan2" in line


def test_zoo_info_non_power_of_two_resolution_names_the_value_and_the_range():
    line = _one_line_error(["zoo", "info", "stylegan2", "-r", "48"])
    assert "48" in line and "power of two" in line and "4 to 1024" in line


def test_zoo_info_too_small_resolution_names_the_familys_minimum():
    line = _one_line_error(["zoo", "info", "stylegan3-t", "-r", "4"])
    assert "got 4" in line and "8 to 1024" in line


@pytest.mark.parametrize("name", ["progan", "stylegan", "stylegan2-ada", "stylegan3-r"])
def test_build_rejects_resolutions_beyond_the_family_range(name):
    for resolution in (2048, 1 << 20, 0, -32, 96):
        with pytest.raises(ConfigError, match=f"got {resolution}"):
            model_zoo.build(name, resolution)


# ---- zoo info shows where each value comes from ----------------------------------------------------------------

def test_zoo_info_shows_each_value_with_its_source():
    result = runner.invoke(app, ["zoo", "info", "stylegan3-t", "-r", "256"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()

    def row(key):
        return next(line for line in lines if line.split("│")[1:2] and line.split("│")[1].strip() == key)

    assert "32768" in row("channel_base") and "--cbase 32768" in row("channel_base")
    assert "0.0025" in row("lr_g") and "--glr 0.0025" in row("lr_g")
    assert "batch * 10 / 32" in row("ema_kimg")
    assert "2.0" in row("r1_gamma") and "configs.md" in row("r1_gamma")


@pytest.mark.parametrize("name,preset", [("stylegan2", None), ("stylegan2-ada", "paper256"),
                                         ("stylegan3-r", None), ("progan", None), ("stylegan", None),
                                         ("stylegan2", "tiny")])
def test_zoo_info_json_names_a_source_for_every_value(name, preset):
    import json

    args = ["zoo", "info", name, "-r", "256", "--json", "--set", "kimg=5" if name.startswith("stylegan2") else
            "batch=8"] + (["--preset", preset] if preset else [])
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    keys = [k for k in (*data["config"], *data["train"]) if k not in ("name", "resolution", "preset")]
    assert set(keys) <= set(data["sources"])
    assert not [k for k in keys if data["sources"][k] == "ganbench default"]
    overridden = "kimg" if name.startswith("stylegan2") else "batch"
    assert data["sources"][overridden] == "override"
    if preset == "paper256":
        assert "cfg_specs['paper256']" in data["sources"]["r1_gamma"]
        assert "stylegan2-ada-pytorch" in data["sources"]["num_fp16_res"]
    if preset == "tiny":
        assert "not published" in data["sources"]["channel_base"]
