"""NVlabs' PyTorch network pickles (stylegan2-ada-pytorch and stylegan3), read as data.

Such a file is a dict with `G`, `D`, `G_ema` (plus `augment_pipe`, `training_set_kwargs`); each network was
saved through `torch_utils.persistence`, whose record holds `type`, `version` (6), `module_src` (the source
of the module that defined the class), `class_name` and `state` (`_init_args`, `_init_kwargs` and the
nn.Module internals). `safe_pickle` turns those into `PersistentRecord`s; here the recorded constructor
kwargs become `model_zoo.build` overrides and the module tree becomes a state dict. NVlabs' parameter names
are ganbench's, so weights copy over unchanged.

`class_name` is just `Generator` for StyleGAN2, ADA and StyleGAN3, so the family comes from the contents:
`synthesis.input.*` weights mean StyleGAN3 (config R when its convolutions are 1x1); a nested
`synthesis_kwargs` means stylegan2-ada-pytorch, flat kwargs the stylegan3 repository. Kwargs a pickle does
not record take the defaults of the code that wrote it (the tables below, read from NVIDIA's code).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ganbench.errors import CheckpointError
from model_zoo.formats import (ARCHITECTURES, NETWORKS, Kwargs, NetworkFile, check_power_of_two, register,
                               require_bool, require_choice, require_conv_clamp, require_float, require_int,
                               safe_pickle)
from model_zoo.formats.safe_pickle import PersistentRecord

PERSISTENCE_VERSION = 6
LRELU_ONLY = "ganbench's StyleGAN2/3 layers use leaky ReLU"
SNAPSHOT = re.compile(r"^network-snapshot-(\d+)\.pkl$")   # NVlabs names snapshots by whole kimg

# -- defaults of the code that wrote the pickle ---------------------------------------------------------
# stylegan2-ada-pytorch training/networks.py
ADA_MAPPING = dict(num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01,
                   w_avg_beta=0.995)
ADA_SYNTHESIS = dict(channel_base=32768, channel_max=512, num_fp16_res=0, architecture="skip",
                     resample_filter=[1, 3, 3, 1], conv_clamp=None, fp16_channels_last=False, kernel_size=3,
                     use_noise=True, activation="lrelu", channels_last=False)
ADA_D = dict(architecture="resnet", channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None,
             cmap_dim=None, block_kwargs={}, mapping_kwargs={}, epilogue_kwargs={})
# stylegan3 training/networks_stylegan2.py: fp16 and clamping on by default, w_avg_beta 0.998
SG3REPO_MAPPING = {**ADA_MAPPING, "w_avg_beta": 0.998}
SG3REPO_SYNTHESIS = {**ADA_SYNTHESIS, "num_fp16_res": 4, "conv_clamp": 256, "fused_modconv_default": True}
SG3REPO_D = {**ADA_D, "num_fp16_res": 4, "conv_clamp": 256}
# both: DiscriminatorBlock, DiscriminatorEpilogue, and D's label mapping (MappingNetwork defaults)
D_BLOCK = dict(activation="lrelu", resample_filter=[1, 3, 3, 1], fp16_channels_last=False, freeze_layers=0)
D_EPILOGUE = dict(mbstd_group_size=4, mbstd_num_channels=1, activation="lrelu")
D_MAPPING = dict(num_layers=8, embed_features=None, layer_features=None, activation="lrelu", lr_multiplier=0.01)
# stylegan3 training/networks_stylegan3.py
SG3_MAPPING = dict(num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998)
SG3_SYNTHESIS = dict(channel_base=32768, channel_max=512, num_layers=14, num_critical=2, first_cutoff=2,
                     first_stopband=2 ** 2.1, last_stopband_rel=2 ** 0.3, margin_size=10, output_scale=0.25,
                     num_fp16_res=4, conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False,
                     conv_clamp=256, magnitude_ema_beta=0.999)


def _record(data: dict[str, Any], key: str, path: Path) -> PersistentRecord | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, PersistentRecord):
        raise CheckpointError(f"{path}: {key} is a {type(value).__name__}, not a network saved by NVlabs' "
                              "persistence layer")
    if value.version != PERSISTENCE_VERSION or value.kind != "class":
        raise CheckpointError(f"{path}: {key} was saved by persistence version {value.version!r} (type "
                              f"{value.kind!r}); only version {PERSISTENCE_VERSION} classes are known")
    if value.init_args:
        raise CheckpointError(f"{path}: {key} was constructed with positional arguments; only keyword "
                              "arguments can be translated")
    return value


def generator_kind(G: PersistentRecord) -> str:
    """'stylegan3', 'stylegan2-ada' (stylegan2-ada-pytorch) or 'stylegan2' (stylegan3 repository)."""
    synthesis = G.modules().get("synthesis")
    if synthesis is not None and "input" in synthesis.modules():
        return "stylegan3"
    kwargs = G.init_kwargs
    if "synthesis_kwargs" in kwargs:
        return "stylegan2-ada"
    if "fused_modconv_default" in kwargs or "fused_modconv_default" in G.module_src:
        return "stylegan2"
    return "stylegan2-ada" if "synthesis_kwargs" in G.module_src else "stylegan2"


def _dims(k: Kwargs, path: Path) -> dict[str, Any]:
    res = check_power_of_two(require_int(k.get("img_resolution"), "img_resolution", path), path)
    return {"resolution": res, "z_dim": require_int(k.get("z_dim"), "z_dim", path),
            "c_dim": require_int(k.get("c_dim"), "c_dim", path), "w_dim": require_int(k.get("w_dim"), "w_dim", path),
            "img_channels": require_int(k.get("img_channels"), "img_channels", path)}


def _mapping(kwargs: dict[str, Any], defaults: dict[str, Any], w_dim: int, path: Path) -> dict[str, Any]:
    m = Kwargs(kwargs, defaults, "G mapping_kwargs", path)
    out = {"mapping_layers": require_int(m.get("num_layers"), "mapping num_layers", path),
           "mapping_lr_multiplier": require_float(m.get("lr_multiplier"), "mapping lr_multiplier", path),
           "w_avg_beta": require_float(m.get("w_avg_beta"), "mapping w_avg_beta", path, optional=True)}
    if "embed_features" in defaults:
        m.expect("embed_features", lambda v: v in (None, w_dim), "the label embedding has w_dim features")
        m.expect("layer_features", lambda v: v in (None, w_dim), "mapping layers have w_dim features")
        m.expect("activation", lambda v: v == "lrelu", LRELU_ONLY)
    m.done()
    return out


def translate_stylegan2(G: PersistentRecord, kind: str, path: Path) -> tuple[int, dict[str, Any]]:
    """(resolution, stylegan2 build overrides) from a StyleGAN2 generator's recorded kwargs."""
    top = G.init_kwargs
    ada = kind == "stylegan2-ada"
    if ada:
        synthesis = dict(top.pop("synthesis_kwargs", None) or {})
    else:   # the stylegan3 repository passes synthesis kwargs flat
        keys = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
        synthesis = {k: top.pop(k) for k in list(top) if k not in keys}
    k = Kwargs(top, {"mapping_kwargs": {}}, "G", path)
    dims = _dims(k, path)
    mapping = _mapping(k.get("mapping_kwargs") or {}, ADA_MAPPING if ada else SG3REPO_MAPPING, dims["w_dim"], path)
    k.done()
    s = Kwargs(synthesis, ADA_SYNTHESIS if ada else SG3REPO_SYNTHESIS, "G synthesis_kwargs", path)
    s.ignore("fp16_channels_last", "channels_last", "fused_modconv_default")   # speed only, same function
    s.expect("resample_filter", lambda v: list(v) == [1, 3, 3, 1], "resampling uses the [1,3,3,1] filter")
    s.expect("kernel_size", lambda v: v == 3, "synthesis convolutions are 3x3")
    s.expect("use_noise", lambda v: v is True, "StyleGAN2 layers always have noise inputs")
    s.expect("activation", lambda v: v == "lrelu", LRELU_ONLY)
    out = {**{k_: v for k_, v in dims.items() if k_ != "resolution"}, **mapping,
           "channel_base": require_int(s.get("channel_base"), "channel_base", path),
           "channel_max": require_int(s.get("channel_max"), "channel_max", path),
           "num_fp16_res": require_int(s.get("num_fp16_res"), "num_fp16_res", path),
           "conv_clamp": require_conv_clamp(s.get("conv_clamp"), "conv_clamp", path),
           "g_architecture": require_choice(s.get("architecture"), "architecture", ARCHITECTURES, path)}
    s.done()
    return dims["resolution"], out


def translate_stylegan3(G: PersistentRecord, path: Path) -> tuple[int, dict[str, Any], int]:
    """(resolution, stylegan3 build overrides, conv_kernel) from a StyleGAN3 generator's recorded kwargs."""
    top = G.init_kwargs
    keys = ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs")
    k = Kwargs({key: top[key] for key in keys if key in top}, {"mapping_kwargs": {}}, "G", path)
    dims = _dims(k, path)
    mapping = _mapping(k.get("mapping_kwargs") or {}, SG3_MAPPING, dims["w_dim"], path)
    k.done()
    s = Kwargs({key: v for key, v in top.items() if key not in keys}, SG3_SYNTHESIS, "G synthesis kwargs", path)
    out = {**{k_: v for k_, v in dims.items() if k_ != "resolution"}, **mapping}
    for name in ("num_layers", "num_critical", "margin_size", "num_fp16_res", "conv_kernel", "filter_size",
                 "lrelu_upsampling", "channel_base", "channel_max"):
        out[name] = require_int(s.get(name), name, path)
    for name in ("first_cutoff", "first_stopband", "last_stopband_rel", "output_scale", "magnitude_ema_beta"):
        out[name] = require_float(s.get(name), name, path)
    out["use_radial_filters"] = require_bool(s.get("use_radial_filters"), "use_radial_filters", path)
    out["conv_clamp"] = require_conv_clamp(s.get("conv_clamp"), "conv_clamp", path)
    s.done()
    return dims["resolution"], out, out["conv_kernel"]


def translate_discriminator(D: PersistentRecord, kind: str, path: Path) -> dict[str, Any]:
    """D's recorded kwargs as build overrides (ganbench's names; channel_base etc. still D's own)."""
    k = Kwargs(D.init_kwargs, {**(ADA_D if kind == "stylegan2-ada" else SG3REPO_D), "img_resolution": None,
                               "img_channels": None, "c_dim": 0}, "D", path)
    k.ignore("img_resolution", "img_channels", "c_dim")          # checked against G by the strict load
    k.expect("cmap_dim", lambda v: v is None, "the label projection has as many features as D's 4x4 block")
    block = Kwargs(k.get("block_kwargs") or {}, D_BLOCK, "D block_kwargs", path)
    block.ignore("fp16_channels_last", "freeze_layers")          # speed / training only
    block.expect("activation", lambda v: v == "lrelu", LRELU_ONLY)
    block.expect("resample_filter", lambda v: list(v) == [1, 3, 3, 1], "resampling uses the [1,3,3,1] filter")
    block.done()
    mapping = Kwargs(k.get("mapping_kwargs") or {}, D_MAPPING, "D mapping_kwargs", path)
    for name, default in D_MAPPING.items():
        mapping.expect(name, lambda v, d=default: v == d, f"D's label mapping uses the default {name}={default!r}")
    mapping.done()
    epi = Kwargs(k.get("epilogue_kwargs") or {}, D_EPILOGUE, "D epilogue_kwargs", path)
    epi.expect("activation", lambda v: v == "lrelu", LRELU_ONLY)
    group = epi.get("mbstd_group_size")
    out = {"d_architecture": require_choice(k.get("architecture"), "D architecture", ARCHITECTURES, path),
           "channel_base": require_int(k.get("channel_base"), "D channel_base", path),
           "channel_max": require_int(k.get("channel_max"), "D channel_max", path),
           "num_fp16_res": require_int(k.get("num_fp16_res"), "D num_fp16_res", path),
           "conv_clamp": require_conv_clamp(k.get("conv_clamp"), "D conv_clamp", path),
           "mbstd_group_size": None if group is None else require_int(group, "mbstd_group_size", path),
           "mbstd_num_channels": require_int(epi.get("mbstd_num_channels"), "mbstd_num_channels", path)}
    epi.done()
    k.done()
    return out


def _merge(g: dict[str, Any], d: dict[str, Any], family: str, path: Path) -> dict[str, Any]:
    """One set of overrides for G and D; a key both set differently cannot be expressed (ganbench shares it)."""
    clash = {k: (g[k], d[k]) for k in g.keys() & d.keys() if g[k] != d[k]}
    if clash:
        what = ", ".join(f"{k} (G {a!r}, D {b!r})" for k, (a, b) in sorted(clash.items()))
        raise CheckpointError(f"{path}: G and D differ in {what}, which ganbench's {family} shares between them")
    return {**g, **d}


def translate(G: PersistentRecord, D: PersistentRecord | None, path: Path) -> tuple[str, int, dict[str, Any]]:
    """(family, resolution, build overrides) of the networks in an NVlabs pickle."""
    for name, record in (("G", G), ("D", D)):
        if record is not None and not isinstance(record.init_kwargs, dict):
            raise CheckpointError(f"{path}: {name}'s recorded init kwargs must be a dict, got {record.init_kwargs!r}")
    kind = generator_kind(G)
    if kind == "stylegan3":
        resolution, g, conv_kernel = translate_stylegan3(G, path)
        family = "stylegan3-r" if conv_kernel == 1 else "stylegan3-t"
        out = {**g, "g_channel_mult": 1, "blur_init_sigma": 0.0}   # NVIDIA's D has no blur (it is in the loss)
        if D is not None:
            d = translate_discriminator(D, "stylegan3", path)
            # G's channels are channel_base/max x g_channel_mult (NVlabs doubles G's, not D's, for config R).
            mult = g["channel_base"] // d["channel_base"] if d["channel_base"] else 0
            if mult < 1 or (g["channel_base"], g["channel_max"]) != (d["channel_base"] * mult, d["channel_max"] * mult):
                raise CheckpointError(f"{path}: G's channels (base {g['channel_base']}, max {g['channel_max']}) are "
                                      f"not one multiple of D's ({d['channel_base']}, {d['channel_max']})")
            out.update(g_channel_mult=mult, channel_base=d["channel_base"], channel_max=d["channel_max"],
                       d_architecture=d["d_architecture"], d_num_fp16_res=d["num_fp16_res"],
                       d_conv_clamp=d["conv_clamp"], mbstd_group_size=d["mbstd_group_size"],
                       mbstd_num_channels=d["mbstd_num_channels"])
        return family, resolution, out
    resolution, g = translate_stylegan2(G, kind, path)
    out = _merge(g, translate_discriminator(D, kind, path), kind, path) if D is not None else g
    return kind, resolution, out


def _training_data(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """(spec usable here, recorded path): the dataset path a snapshot records, if it exists on this machine."""
    kwargs = data.get("training_set_kwargs")
    recorded = kwargs.get("path") if isinstance(kwargs, dict) else None
    if not isinstance(recorded, str) or not recorded:
        return None, None
    return (recorded if Path(recorded).expanduser().exists() else None), recorded


@register("nvlabs-pickle")
class NVlabsPickle:
    """A dict of persistent networks, as NVlabs' training loops and legacy.py write them."""

    def sniff(self, path: Path) -> bool:
        from model_zoo.formats.tf_pickle import TF_NETWORK_CLASSES

        first = safe_pickle.first_global(path)
        return first is not None and first not in TF_NETWORK_CLASSES

    def snapshot_kimg(self, name: str) -> float | None:
        m = SNAPSHOT.match(name)
        return float(m.group(1)) if m else None

    def read(self, path: Path) -> NetworkFile:
        data = safe_pickle.load(path)
        if not isinstance(data, dict) or not any(k in data for k in NETWORKS):
            raise CheckpointError(f"{path} is a pickle but not an NVlabs network pickle (expected a dict with "
                                  "G, D and G_ema)")
        records = {k: _record(data, k, path) for k in NETWORKS}
        G = records["G_ema"] or records["G"]
        if G is None:
            raise CheckpointError(f"{path} holds no generator (G_ema or G)")
        family, resolution, overrides = translate(G, records["D"], path)
        states = {k: r.state_dict() for k, r in records.items() if r is not None}
        if family.startswith("stylegan3") and "D" in states:
            states["D"]["blur_sigma_value"] = torch.tensor(0.0)   # ganbench's D blurs by this buffer; NVIDIA's never
        usable, recorded = _training_data(data)
        notes: dict[str, Any] = {"recorded_data": recorded}
        if records["D"] is not None:
            notes["freeze_layers"] = (records["D"].init_kwargs.get("block_kwargs") or {}).get("freeze_layers", 0)
        kwargs = data.get("training_set_kwargs")
        xflip = {"mirror": True} if isinstance(kwargs, dict) and kwargs.get("xflip") is True else {}
        return NetworkFile(path=path, format="nvlabs-pickle", family=family, resolution=resolution,
                           overrides=overrides, states=states, kimg=self.snapshot_kimg(path.name),
                           data=usable, data_options=xflip, notes=notes)
