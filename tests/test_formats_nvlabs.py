"""NVlabs PyTorch pickles (stylegan2-ada-pytorch, stylegan3): read as data, translated, strictly loaded.

Each test builds its pickle from a ganbench network wrapped in NVlabs' persistence layout (tests/foreign_formats)
and checks one format fact from NVIDIA's code; the loaded network must compute the original's function.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import model_zoo
from ganbench.errors import CheckpointError
from foreign_formats import (EasyDict, armed_nvlabs_modules, assert_generate_refuses, nvlabs_kwargs, nvlabs_modules,
                             persistent, snapshot, write_pickle)

RES = 16


def _perturbed(spec: model_zoo.ModelSpec, seed: int) -> model_zoo.ModelSpec:
    """Move every weight and float buffer off its initial value, so a fresh rebuild cannot pass for a load."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for net in (spec.G, spec.D):
            for name, t in list(net.named_parameters()) + list(net.named_buffers()):
                if t.is_floating_point() and not name.endswith(("filter", "blur_sigma_value", "transform")):
                    t.add_(torch.randn(t.shape, generator=gen) * 0.1)
    return spec


def _sg2(c_dim: int = 0, seed: int = 0, **kw) -> tuple[model_zoo.ModelSpec, torch.nn.Module]:
    torch.manual_seed(seed)
    spec = _perturbed(model_zoo.build("stylegan2", RES, preset="tiny", c_dim=c_dim, **kw), seed)
    G_ema = _perturbed(model_zoo.build("stylegan2", RES, preset="tiny", c_dim=c_dim, **kw), seed + 1).G
    for b, b_ref in zip(G_ema.buffers(), spec.G.buffers()):   # NVlabs copies G's buffers into G_ema
        b.copy_(b_ref)
    return spec, G_ema


def _dims(G: torch.nn.Module) -> dict:
    return dict(z_dim=G.z_dim, c_dim=G.c_dim, w_dim=G.w_dim, img_resolution=G.img_resolution,
                img_channels=G.img_channels)


def ada_kwargs(spec: model_zoo.ModelSpec, **synthesis) -> tuple[dict, dict]:
    """G and D kwargs as stylegan2-ada-pytorch's train.py records them (synthesis_kwargs nested)."""
    c = spec.config
    g = {**_dims(spec.G), "mapping_kwargs": EasyDict(num_layers=c["mapping_layers"]),
         "synthesis_kwargs": EasyDict(channel_base=c["channel_base"], channel_max=c["channel_max"], **synthesis)}
    d = {"c_dim": spec.D.c_dim, "img_resolution": RES, "img_channels": 3, "channel_base": c["channel_base"],
         "channel_max": c["channel_max"], "block_kwargs": EasyDict(), "mapping_kwargs": EasyDict(),
         "epilogue_kwargs": EasyDict(mbstd_group_size=c["mbstd_group_size"])}
    d.update({k: v for k, v in synthesis.items() if k in ("num_fp16_res", "conv_clamp")})
    return g, d


def _outputs(G: torch.nn.Module, D: torch.nn.Module, psi: float = 0.7) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.from_numpy(np.random.RandomState(3).randn(4, G.z_dim))
    c = torch.eye(G.c_dim)[torch.arange(4) % G.c_dim] if G.c_dim else torch.zeros([4, 0])
    img = torch.randn(4, 3, RES, RES, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        return G.eval()(z, c, truncation_psi=psi, noise_mode="const"), D.eval()(img, c if G.c_dim else None)


def _assert_same_network(loaded: torch.nn.Module, original: torch.nn.Module) -> None:
    a, b = loaded.state_dict(), original.state_dict()
    assert list(a) == list(b)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("c_dim", [0, 3])
def test_ada_pickle_round_trip_equals_original(tmp_path, c_dim):
    spec, G_ema = _sg2(c_dim)
    g, d = ada_kwargs(spec, num_fp16_res=4, conv_clamp=256)   # what ADA's train.py records
    path = write_pickle(tmp_path / "network-snapshot-000120.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    info = model_zoo.describe(path)
    assert (info["format"], info["family"], info["resolution"], info["kimg"]) == ("nvlabs-pickle", "stylegan2-ada",
                                                                                    RES, 120.0)
    assert info["config"]["num_fp16_res"] == 4 and info["config"]["conv_clamp"] == 256
    assert info["networks"] == ["G_ema", "G", "D"] and info["recorded_data"] == "/no/such/data.zip"
    assert info["data"] is None                       # recorded path absent here: not offered as real data
    loaded_G, loaded_D = model_zoo.load(path), model_zoo.load(path, which="D")
    assert not loaded_G.training
    _assert_same_network(loaded_G, G_ema)
    _assert_same_network(loaded_D, spec.D)
    for got, want in zip(_outputs(loaded_G, loaded_D), _outputs(G_ema, spec.D)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_g_ema_and_g_are_read_separately_augment_pipe_tolerated(tmp_path):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    path = write_pickle(tmp_path / "a.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    G, E = model_zoo.load(path, which="G"), model_zoo.load(path, which="G_ema")
    _assert_same_network(G, spec.G)
    for (name, b), (_, b_ema) in zip(G.named_buffers(), E.named_buffers()):
        assert torch.equal(b, b_ema), name                # buffers equal ...
    assert any(not torch.equal(p, q) for p, q in zip(G.parameters(), E.parameters()))   # ... parameters differ


def test_family_comes_from_contents_not_class_name(tmp_path):
    spec, G_ema = _sg2()
    ada_g, d = ada_kwargs(spec)
    flat_g = {k: v for k, v in ada_g.items() if k != "synthesis_kwargs"}
    flat_g.update(ada_g["synthesis_kwargs"])
    cases = {
        "stylegan2-ada": (ada_g, "ada source"),                                    # nested synthesis_kwargs
        "stylegan2": ({**flat_g, "fused_modconv_default": "inference_only"}, "x"),  # stylegan3 repo, flat kwargs
    }
    for family, (g, src) in cases.items():
        path = write_pickle(tmp_path / f"{family}.pkl", snapshot(spec.G, spec.D, G_ema, g, d, module_src=src))
        assert model_zoo.describe(path)["family"] == family
    # Flat kwargs without the tell-tale kwarg: the module source, read as text, names it.
    src = "class SynthesisBlock:\n    def __init__(self, fused_modconv_default=True): pass\n"
    path = write_pickle(tmp_path / "src.pkl", snapshot(spec.G, spec.D, G_ema, flat_g, d, module_src=src))
    assert model_zoo.describe(path)["family"] == "stylegan2"


def test_missing_kwargs_take_the_writing_codes_defaults(tmp_path):
    spec, G_ema = _sg2()
    ada_g, ada_d = ada_kwargs(spec)                       # nothing about fp16 / clamping recorded
    flat_g = {k: v for k, v in ada_g.items() if k != "synthesis_kwargs"}
    flat_g.update(ada_g["synthesis_kwargs"], fused_modconv_default="inference_only")
    ada = model_zoo.describe(write_pickle(tmp_path / "ada.pkl", snapshot(spec.G, spec.D, G_ema, ada_g, ada_d)))
    sg3 = model_zoo.describe(write_pickle(tmp_path / "sg3.pkl", snapshot(spec.G, spec.D, G_ema, flat_g, ada_d)))
    assert (ada["config"]["num_fp16_res"], ada["config"]["conv_clamp"]) == (0, None)      # ADA's networks.py
    assert (sg3["config"]["num_fp16_res"], sg3["config"]["conv_clamp"]) == (4, 256)       # stylegan3's
    assert ada["config"]["w_avg_beta"] == 0.995 and sg3["config"]["w_avg_beta"] == 0.998
    assert ada["config"]["mbstd_group_size"] == spec.config["mbstd_group_size"]
    no_mbstd = {**ada_d, "epilogue_kwargs": EasyDict()}
    path = write_pickle(tmp_path / "d.pkl", snapshot(spec.G, spec.D, G_ema, ada_g, no_mbstd))
    assert model_zoo.describe(path)["config"]["mbstd_group_size"] == 4                    # the epilogue's default
    # fp16 without a clamp stays without a clamp (ADA's code does not couple them).
    g, d = ada_kwargs(spec, num_fp16_res=2)
    cfg = model_zoo.describe(write_pickle(tmp_path / "f.pkl", snapshot(spec.G, spec.D, G_ema, g, d)))["config"]
    assert (cfg["num_fp16_res"], cfg["conv_clamp"]) == (2, None)


def _clamps(G: torch.nn.Module) -> set:
    return {m.conv_clamp for m in G.modules() if hasattr(m, "conv_clamp")}


def test_fp16_without_a_clamp_computes_unclamped_as_adas_code(tmp_path):
    """ADA's networks take num_fp16_res and conv_clamp independently: fp16 with conv_clamp None never clamps."""
    spec, G_ema = _sg2(num_fp16_res=2, conv_clamp=None)
    with torch.no_grad():
        for net in (spec.G, G_ema):
            net.synthesis.__getattr__(f"b{RES}").torgb.weight.mul_(1e4)    # push the RGB outputs far beyond 256
    g, d = ada_kwargs(spec, num_fp16_res=2)
    path = write_pickle(tmp_path / "fp16.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    G = model_zoo.load(path)
    assert _clamps(G) == {None}
    img, _ = _outputs(G, spec.D)
    assert img.abs().max() > 256 * 1.5            # a clamp at 256 x gain would cap the skip output here


def test_version_1_ganbench_checkpoints_keep_the_clamp_they_were_trained_with(tmp_path):
    """Format 1's builder clamped at 256 whenever fp16 was on; such a file loads with that clamp."""
    from ganbench.checkpoint import FORMAT, FORMAT_VERSION, save_checkpoint

    spec = model_zoo.build("stylegan2", RES, preset="tiny", num_fp16_res=2, conv_clamp=None)
    meta = {"arch": "stylegan2", "config": {"name": "stylegan2", "resolution": RES, **spec.config},
            "resolution": RES, "kimg": 1.0}
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 1000}
    now = save_checkpoint(tmp_path / "now.pt", state, meta)
    assert FORMAT_VERSION >= 2 and _clamps(model_zoo.load(now)) == {None}
    old = tmp_path / "old.pt"
    payload = torch.load(now, weights_only=True)
    torch.save({**payload, "format": FORMAT, "format_version": 1}, old)
    assert _clamps(model_zoo.load(old)) == {256}


@pytest.mark.parametrize("config", ["t", "r"])
def test_stylegan3_round_trip_channels_and_d_blur(tmp_path, config):
    torch.manual_seed(0)
    family = f"stylegan3-{config}"
    spec = _perturbed(model_zoo.build(family, RES, preset="tiny", c_dim=2 if config == "r" else 0), 0)
    c, mult = spec.config, spec.config["g_channel_mult"]
    g = {**_dims(spec.G), "mapping_kwargs": EasyDict(num_layers=c["mapping_layers"]),
         "channel_base": c["channel_base"] * mult, "channel_max": c["channel_max"] * mult,   # R doubles G's only
         "num_layers": c["num_layers"], "filter_size": c["filter_size"], "margin_size": c["margin_size"],
         "magnitude_ema_beta": c["magnitude_ema_beta"]}
    if config == "r":
        g.update(conv_kernel=1, use_radial_filters=True)
    d = {"c_dim": spec.D.c_dim, "img_resolution": RES, "img_channels": 3, "channel_base": c["channel_base"],
         "channel_max": c["channel_max"], "block_kwargs": EasyDict(), "mapping_kwargs": EasyDict(),
         "epilogue_kwargs": EasyDict(mbstd_group_size=c["mbstd_group_size"])}
    path = write_pickle(tmp_path / "sg3.pkl", snapshot(spec.G, spec.D, spec.G, g, d), protocol=4)
    info = model_zoo.describe(path)
    assert info["family"] == family and info["config"]["g_channel_mult"] == (2 if config == "r" else 1)
    assert (info["config"]["num_fp16_res"], info["config"]["d_num_fp16_res"]) == (4, 4)   # not recorded: defaults
    loaded_G, loaded_D = model_zoo.load(path), model_zoo.load(path, which="D")
    assert loaded_D.blur_sigma == 0.0                   # NVIDIA's D never blurs (the blur lives in its loss)
    _assert_same_network(loaded_G, spec.G)
    spec.D.blur_sigma = 0.0
    for got, want in zip(_outputs(loaded_G, loaded_D, psi=1.0), _outputs(spec.G, spec.D, psi=1.0)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("core", ["numpy.core", "numpy._core"])
def test_numpy_scalars_and_arrays_in_both_spellings(tmp_path, core):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    extra = {"weight_gain": np.float32(0.5), "size": np.arange(2), "dtype": np.dtype("float32")}
    snap = snapshot(spec.G, spec.D, G_ema, g, d)
    snap["G_ema"] = persistent(G_ema, "Generator", g, extra=extra)
    path = write_pickle(tmp_path / "np.pkl", snap, protocol=3, numpy_core=core)
    assert f"{core}.multiarray\nscalar".encode() in path.read_bytes()
    _assert_same_network(model_zoo.load(path), G_ema)


def test_strict_names_a_missing_or_unexpected_weight(tmp_path):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    G_ema.synthesis.b8.conv1.register_buffer("stray", torch.zeros(2))
    del G_ema.synthesis.b16.torgb._parameters["bias"]
    path = write_pickle(tmp_path / "bad.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    with pytest.raises(CheckpointError, match=r"1 missing key\(s\): synthesis\.b16\.torgb\.bias; "
                                              r"1 unexpected key\(s\): synthesis\.b8\.conv1\.stray"):
        model_zoo.load(path)
    model_zoo.load(path, which="G")                       # the intact network still loads


@pytest.mark.parametrize("where,kwarg", [
    ("g", {"synthesis_kwargs": EasyDict(channel_base=1024, channel_max=32, resample_filter=[1, 2, 1])}),
    ("g", {"synthesis_kwargs": EasyDict(channel_base=1024, channel_max=32, activation="relu")}),
    ("g", {"mapping_kwargs": EasyDict(num_layers=2, layer_features=7)}),
    ("g", {"brand_new_option": 1}),
    ("d", {"cmap_dim": 5}),
    ("d", {"epilogue_kwargs": EasyDict(mbstd_group_size=4, activation="swish")}),
])
def test_a_kwarg_ganbench_cannot_express_is_one_clear_error(tmp_path, where, kwarg):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    (g if where == "g" else d).update(kwarg)
    path = write_pickle(tmp_path / "x.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    name = next(iter(kwarg)) if "kwargs" not in next(iter(kwarg)) else list(next(iter(kwarg.values())))[-1]
    with pytest.raises(CheckpointError, match=rf"x\.pkl: .*{name}.*cannot|x\.pkl: .*cannot.*{name}") as err:
        model_zoo.load(path)
    assert "\n" not in str(err.value)


def test_g_and_d_disagreeing_on_a_shared_option_is_refused(tmp_path):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec, num_fp16_res=4, conv_clamp=256)
    d["conv_clamp"] = None
    path = write_pickle(tmp_path / "x.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    with pytest.raises(CheckpointError, match=r"G and D differ in conv_clamp \(G 256, D None\)"):
        model_zoo.load(path)


def test_persistence_version_other_than_6_is_refused(tmp_path):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    snap = snapshot(spec.G, spec.D, G_ema, g, d)
    snap["G_ema"] = persistent(G_ema, "Generator", g, version=5)
    with pytest.raises(CheckpointError, match=r"persistence version 5"):
        model_zoo.load(write_pickle(tmp_path / "v5.pkl", snap))
    snap["G_ema"] = persistent(G_ema, "Generator", g, extra={"_init_args": (64,)})   # NVlabs passes kwargs only
    with pytest.raises(CheckpointError, match=r"G_ema was constructed with positional arguments"):
        model_zoo.load(write_pickle(tmp_path / "args.pkl", snap))


def test_refused_global_is_one_line_naming_it(tmp_path):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    snap = snapshot(spec.G, spec.D, G_ema, g, d, augment_pipe=torch.nn.Linear(2, 2))   # a plain torch module
    path = write_pickle(tmp_path / "plain_module.pkl", snap)
    with pytest.raises(CheckpointError, match=r"refusing to load .*plain_module\.pkl: it would import "
                                              r"torch\.nn\.modules\.linear\.Linear") as err:
        model_zoo.load(path)
    assert "\n" not in str(err.value)


class Payload:
    """Unpickling this runs `Path.touch(marker)`, what a malicious network file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_module_src_and_reduce_payloads_never_run(tmp_path):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    src_marker, reduce_marker = tmp_path / "module-src-ran", tmp_path / "reduce-ran"
    evil_src = f"open({str(src_marker)!r}, 'w').close()\n"
    snap = snapshot(spec.G, spec.D, G_ema, g, d, module_src=evil_src)
    src_path = write_pickle(tmp_path / "evil_src.pkl", snap)
    snap["training_set_kwargs"] = {"path": Payload(reduce_marker)}
    reduce_path = write_pickle(tmp_path / "evil_reduce.pkl", snap)
    # The test files are armed: a loader that trusts them, as NVlabs' does, runs both payloads.
    with armed_nvlabs_modules():
        pickle.loads(src_path.read_bytes())
        pickle.loads(reduce_path.read_bytes())
    assert src_marker.exists() and reduce_marker.exists()
    src_marker.unlink()
    reduce_marker.unlink()
    # ganbench reads the module source as a string and refuses the reduce payload by name.
    info = model_zoo.describe(src_path)
    assert info["family"] == "stylegan2-ada"
    model_zoo.load(src_path)
    with pytest.raises(CheckpointError, match=r"it would import builtins\.getattr"):   # protocol 3: getattr(Path, 'touch')
        model_zoo.load(reduce_path)
    assert not src_marker.exists() and not reduce_marker.exists()


class EvilStorage:
    """Pickles as torch.storage._load_from_bytes(bytes) whose bytes hold a code-running pickle."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self):
        return (torch.storage._load_from_bytes, (self.payload,))


def test_storage_bytes_are_read_weights_only(tmp_path):
    marker = tmp_path / "storage-ran"
    buf = io.BytesIO()
    torch.save(Payload(marker), buf, _use_new_zipfile_serialization=False)
    data = pickle.dumps({"G": EvilStorage(buf.getvalue())}, protocol=3)
    pickle.loads(data)                                  # torch's own _load_from_bytes runs it ...
    assert marker.exists()
    marker.unlink()
    (tmp_path / "evil_storage.pkl").write_bytes(data)
    with pytest.raises(CheckpointError, match=r"storage would need code to load"):
        model_zoo.load(tmp_path / "evil_storage.pkl")   # ... ganbench's weights-only read does not
    assert not marker.exists()


def test_not_a_network_pickle_and_damaged_pickles(tmp_path):
    path = tmp_path / "dict.pkl"
    with nvlabs_modules():
        path.write_bytes(pickle.dumps({"weights": torch.ones(2)}))
    with pytest.raises(CheckpointError, match=r"dict\.pkl is a pickle but not an NVlabs network pickle"):
        model_zoo.load(path)
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    good = write_pickle(tmp_path / "good.pkl", snapshot(spec.G, spec.D, G_ema, g, d)).read_bytes()
    (tmp_path / "cut.pkl").write_bytes(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pkl is truncated or corrupt"):
        model_zoo.load(tmp_path / "cut.pkl")
    (tmp_path / "text.pkl").write_text("not a pickle")
    with pytest.raises(CheckpointError, match=r"text\.pkl is not a network file ganbench can read"):
        model_zoo.load(tmp_path / "text.pkl")
    with pytest.raises(CheckpointError, match=r"holds no G_ema|does not exist"):
        model_zoo.load(tmp_path / "missing.pkl")
    no_ema = {k: v for k, v in snapshot(spec.G, spec.D, G_ema, g, d).items() if k != "G_ema"}
    path = write_pickle(tmp_path / "no_ema.pkl", no_ema)
    with pytest.raises(CheckpointError, match=re.escape("holds no G_ema (it has G, D)")):
        model_zoo.load(path)


def test_eval_scores_nvlabs_pickles_files_and_run_folders(tmp_path):
    from orchestrator_helpers import register_toys

    from ganbench.evaluate import EvalOptions, evaluate, find_checkpoints

    register_toys()
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    run = tmp_path / "00003-ada-run"
    run.mkdir()
    for kimg in (40, 120):
        write_pickle(run / f"network-snapshot-{kimg:06d}.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    single = write_pickle(tmp_path / "stylegan2-ffhq-16x16.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    assert [(r.run, r.path.name, r.kimg) for r in find_checkpoints([run, single])] == [
        ("00003-ada-run", "network-snapshot-000040.pkl", 40.0), ("00003-ada-run", "network-snapshot-000120.pkl", 120.0),
        ("stylegan2-ffhq-16x16", "stylegan2-ffhq-16x16.pkl", 0.0)]   # a model file of its own is its own run
    opts = EvalOptions(metrics=["toy-stat"], real="shapes:16", n=8, extractor="toy-pixels", batch_size=8)
    rows = evaluate([run], opts, out=tmp_path / "results.csv").added
    assert list(rows["checkpoint"]) == ["network-snapshot-000040.pkl"] * 2 + ["network-snapshot-000120.pkl"] * 2
    assert list(rows["kimg"]) == [40.0, 40.0, 120.0, 120.0] and rows["value"].notna().all()


def test_a_pickle_trained_with_xflip_warns_until_eval_mirrors_the_reals(tmp_path):
    """NVlabs' calc_metrics looks up the snapshot's training_set_kwargs.xflip: runs trained with --mirror=1 (the
    published FFHQ / AFHQ / MetFaces configs) are scored against the reals plus their x-flips. ganbench scored the
    reals as stored without a word; now eval says so, and --mirror scores 2N reals as NVlabs does."""
    from orchestrator_helpers import register_toys

    from ganbench.evaluate import EvalOptions, evaluate

    register_toys()
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    snap = snapshot(spec.G, spec.D, G_ema, g, d)
    snap["training_set_kwargs"] = {**snap["training_set_kwargs"], "xflip": True}
    pkl = write_pickle(tmp_path / "ffhq-mirror.pkl", snap)
    plain = write_pickle(tmp_path / "plain.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    opts = EvalOptions(metrics=["fid"], real="shapes:16", n=8, n_real=16, extractor="toy-pixels", batch_size=8)
    summary = evaluate([pkl, plain], opts, out=tmp_path / "a.csv")
    assert summary.warnings == ["ffhq-mirror was trained with x-flipped copies of its data (--mirror); NVlabs scores "
                                "such runs against the x-flipped real images too (its published FIDs): pass --mirror "
                                "to reproduce them"]
    mirrored = evaluate([pkl], EvalOptions(**{**opts.__dict__, "mirror": True, "n_real": None}),
                        out=tmp_path / "b.csv")
    assert mirrored.warnings == [] and set(mirrored.added["n_real"]) == {32}          # 16 reals + their 16 x-flips
    assert set(mirrored.added["dataset"]) != set(summary.added["dataset"])             # another real set, other rows
    from ganbench.errors import ConfigError

    np.savez(tmp_path / "st.npz", mu=np.zeros(4), sigma=np.eye(4))
    with pytest.raises(ConfigError, match="--mirror does not apply to .*st.npz"):   # it would be silently ignored
        evaluate([pkl], EvalOptions(metrics=["fid"], real_stats=tmp_path / "st.npz", mirror=True), out=tmp_path / "c.csv")


def _sg3_kwargs(config: str = "stylegan3-t", **g_extra) -> tuple[model_zoo.ModelSpec, dict, dict]:
    torch.manual_seed(0)
    spec = model_zoo.build(config, RES, preset="tiny")
    g, d = nvlabs_kwargs(spec)
    g.update(g_extra)
    return spec, g, d


# (family, where the bad value goes, key, bad value, what the error must say)
BAD_RECORDED_OPTIONS = [
    ("stylegan2", "mapping", "lr_multiplier", "abc", r"mapping lr_multiplier must be a finite number, got 'abc'"),
    ("stylegan2", "mapping", "lr_multiplier", True, r"mapping lr_multiplier must be a finite number, got True"),
    ("stylegan2", "mapping", "lr_multiplier", None, r"mapping lr_multiplier must be a finite number, got None"),
    ("stylegan2", "mapping", "lr_multiplier", float("nan"), r"mapping lr_multiplier must be a finite number"),
    ("stylegan2", "mapping", "w_avg_beta", "0.995", r"mapping w_avg_beta must be a finite number or None"),
    ("stylegan2", "mapping", "w_avg_beta", float("inf"), r"mapping w_avg_beta must be a finite number or None"),
    ("stylegan2", "synthesis", "conv_clamp", "256", r"conv_clamp must be a finite number or None, got '256'"),
    ("stylegan2", "synthesis", "architecture", "fancy", r"architecture must be one of 'orig', 'skip', 'resnet'"),
    ("stylegan2", "synthesis", "resample_filter", 3, r"resample_filter=3 cannot be expressed"),
    ("stylegan2", "d", "architecture", 7, r"D architecture must be one of 'orig', 'skip', 'resnet', got 7"),
    ("stylegan2", "d", "conv_clamp", float("nan"), r"D conv_clamp must be a finite number or None"),
    ("stylegan2", "g", "mapping_kwargs", "abc", r"G mapping_kwargs must be a dict of options, got 'abc'"),
    ("stylegan3-t", "g", "first_cutoff", "abc", r"first_cutoff must be a finite number, got 'abc'"),
    ("stylegan3-t", "g", "last_stopband_rel", float("nan"), r"last_stopband_rel must be a finite number"),
    ("stylegan3-t", "g", "magnitude_ema_beta", float("inf"), r"magnitude_ema_beta must be a finite number"),
    ("stylegan3-t", "g", "output_scale", False, r"output_scale must be a finite number, got False"),
    ("stylegan3-t", "g", "use_radial_filters", "False", r"use_radial_filters must be True or False, got 'False'"),
    ("stylegan3-t", "g", "conv_clamp", "abc", r"conv_clamp must be a finite number or None, got 'abc'"),
]


@pytest.mark.parametrize("family,where,key,value,message", BAD_RECORDED_OPTIONS,
                         ids=[f"{f}-{w}-{k}-{v!r}" for f, w, k, v, _ in BAD_RECORDED_OPTIONS])
def test_a_recorded_option_of_the_wrong_type_is_one_clear_error(tmp_path, family, where, key, value, message):
    """A float, bool or choice a pickle records is checked like the integers are: one line naming the option,
    never a raw ValueError / TypeError from float() (nor a string 'False' silently read as True)."""
    if family == "stylegan2":
        spec, G_ema = _sg2()
        g, d = ada_kwargs(spec)
    else:
        spec, g, d = _sg3_kwargs(family)
        G_ema = spec.G
    if where == "mapping":
        g["mapping_kwargs"] = EasyDict({**g["mapping_kwargs"], key: value})
    elif where == "synthesis":
        g["synthesis_kwargs"] = EasyDict({**g["synthesis_kwargs"], key: value})
    else:
        (g if where == "g" else d)[key] = value
    path = write_pickle(tmp_path / "bad.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    which = "D" if where == "d" else "G_ema"
    with pytest.raises(CheckpointError, match=rf"bad\.pkl: .*{message}") as err:
        model_zoo.load(path, which=which)
    assert "\n" not in str(err.value)


def test_cli_names_a_bad_float_option_in_one_line(tmp_path):
    spec, G_ema = _sg2()
    g, d = ada_kwargs(spec)
    g["mapping_kwargs"] = EasyDict({**g["mapping_kwargs"], "lr_multiplier": "abc"})
    path = write_pickle(tmp_path / "bad.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    assert_generate_refuses(path, tmp_path / "out", "lr_multiplier must be a finite number, got 'abc'")


def test_valid_numbers_of_any_kind_still_load(tmp_path):
    """Ints where floats are recorded, numpy scalars, and an int conv_clamp (kept an int) are all accepted."""
    spec, G_ema = _sg2(num_fp16_res=2, conv_clamp=256)
    g, d = ada_kwargs(spec, num_fp16_res=2, conv_clamp=256)
    g["mapping_kwargs"] = EasyDict({**g["mapping_kwargs"], "lr_multiplier": np.float32(0.01), "w_avg_beta": 0.995})
    path = write_pickle(tmp_path / "ok.pkl", snapshot(spec.G, spec.D, G_ema, g, d))
    info = model_zoo.describe(path)
    assert info["config"]["conv_clamp"] == 256 and isinstance(info["config"]["conv_clamp"], int)
    _assert_same_network(model_zoo.load(path), G_ema)
