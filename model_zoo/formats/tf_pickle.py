"""TF-era network pickles (ProGAN, StyleGAN, StyleGAN2 official releases), read as data without TensorFlow.

Such a file is a tuple `(G, D, Gs)` of `dnnlib.tflib.network.Network` objects (ProGAN's own repository:
`tfutil.Network`), pickled as NEWOBJ + BUILD(state) with state `version`, `name`, `static_kwargs`,
`components` (sub-networks such as `mapping`, `synthesis`), `build_module_src` (TensorFlow code, never run
here), `build_func_name` and `variables` (name, numpy array). The build function says which network it is;
`static_kwargs` hold only what the training script set (config F: `num_channels`, `resolution`, `label_size`),
so every other option takes the default of that function, listed below from NVIDIA's code.

Variables map to ganbench's parameters by name: dense weights [in, out] are transposed, conv weights
[kh, kw, in, out] become [out, in, kh, kw]. A fused upsampling conv (`Conv0_up`: `conv2d_transpose` of the
kernel) is a true convolution after nearest/zero upsampling, so its kernel is flipped in both spatial axes;
D's fused `Conv1_down` and StyleGAN2's D `Skip` are plain correlations and are not. ProGAN and StyleGAN put
the sqrt(2) activation gain into the weights (He init) where ganbench's layers apply it after the leaky ReLU,
so a bias feeding a leaky ReLU is divided by sqrt(2) (the leaky ReLU is positively homogeneous); StyleGAN2
already uses ganbench's convention. StyleGAN2 stores `mod_bias` minus 1; `dlatent_avg` is `w_avg`; noise
inputs are `synthesis/noise{i}` numbered by layer.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ganbench.errors import CheckpointError
from model_zoo.formats import (ARCHITECTURES, Kwargs, NetworkFile, check_power_of_two, register, require_bool,
                               require_choice, require_float, require_int, safe_pickle)
from model_zoo.formats.safe_pickle import TFNetworkRecord

TF_NETWORK_CLASSES = ("dnnlib.tflib.network.Network", "tfutil.Network")
SQRT2 = math.sqrt(2)

# -- defaults of the functions that built the networks (their full signatures) ------------------------
# tkarras/progressive_growing_of_gans networks.py (and NVlabs/stylegan training/networks_progan.py)
PROGAN_G = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
                latent_size=None, normalize_latents=True, use_wscale=True, use_pixelnorm=True, pixelnorm_epsilon=1e-8,
                use_leakyrelu=True, dtype="float32", fused_scale=True, structure=None, is_template_graph=False)
PROGAN_D = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
                use_wscale=True, mbstd_group_size=4, dtype="float32", fused_scale=True, structure=None,
                is_template_graph=False)
# NVlabs/stylegan training/networks_stylegan.py: G_style passes its kwargs to G_mapping and G_synthesis
STYLEGAN_G = dict(
    truncation_psi=0.7, truncation_cutoff=8, truncation_psi_val=None, truncation_cutoff_val=None,
    dlatent_avg_beta=0.995, style_mixing_prob=0.9, is_training=False, is_validation=False, is_template_graph=False,
    latent_size=512, label_size=0, dlatent_size=512, dlatent_broadcast=None, mapping_layers=8, mapping_fmaps=512,
    mapping_lrmul=0.01, mapping_nonlinearity="lrelu", use_wscale=True, normalize_latents=True, dtype="float32",
    num_channels=3, resolution=1024, fmap_base=8192, fmap_decay=1.0, fmap_max=512, use_styles=True,
    const_input_layer=True, use_noise=True, randomize_noise=True, nonlinearity="lrelu", use_pixel_norm=False,
    use_instance_norm=True, fused_scale="auto", blur_filter=[1, 2, 1], structure="auto", force_clean_graph=False)
STYLEGAN_D = dict(num_channels=1, resolution=32, label_size=0, fmap_base=8192, fmap_decay=1.0, fmap_max=512,
                  nonlinearity="lrelu", use_wscale=True, mbstd_group_size=4, mbstd_num_features=1, dtype="float32",
                  fused_scale="auto", blur_filter=[1, 2, 1], structure="auto", is_template_graph=False)
# NVlabs/stylegan2 training/networks_stylegan2.py: G_main -> G_mapping + G_synthesis_stylegan2, D_stylegan2
STYLEGAN2_G = dict(
    truncation_psi=0.5, truncation_cutoff=None, truncation_psi_val=None, truncation_cutoff_val=None,
    dlatent_avg_beta=0.995, style_mixing_prob=0.9, is_training=False, is_validation=False, return_dlatents=False,
    is_template_graph=False, mapping_func="G_mapping", synthesis_func="G_synthesis_stylegan2",
    latent_size=512, label_size=0, dlatent_size=512, dlatent_broadcast=None, mapping_layers=8, mapping_fmaps=512,
    mapping_lrmul=0.01, mapping_nonlinearity="lrelu", normalize_latents=True, dtype="float32",
    num_channels=3, resolution=1024, fmap_base=16 << 10, fmap_decay=1.0, fmap_min=1, fmap_max=512,
    randomize_noise=True, architecture="skip", nonlinearity="lrelu", resample_kernel=[1, 3, 3, 1], fused_modconv=True)
STYLEGAN2_D = dict(num_channels=3, resolution=1024, label_size=0, fmap_base=16 << 10, fmap_decay=1.0, fmap_min=1,
                   fmap_max=512, architecture="resnet", nonlinearity="lrelu", mbstd_group_size=4, mbstd_num_features=1,
                   dtype="float32", resample_kernel=[1, 3, 3, 1])
# Runtime-only options (they change no weight and no function of a trained network).
RUNTIME = ("dtype", "structure", "is_template_graph", "is_training", "is_validation", "truncation_psi_val",
           "truncation_cutoff_val", "style_mixing_prob", "randomize_noise", "force_clean_graph", "return_dlatents",
           "components", "dlatent_broadcast", "fused_modconv")


def _f32(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.float32, order="C"))   # a copy; 0-d stays 0-d


def dense(w: np.ndarray) -> np.ndarray:
    """[in, out] -> [out, in]."""
    return w.T


def conv(w: np.ndarray) -> np.ndarray:
    """[kh, kw, in, out] -> [out, in, kh, kw]."""
    return w.transpose(3, 2, 0, 1)


def flip(w: np.ndarray) -> np.ndarray:
    """A [out, in, kh, kw] kernel flipped in both spatial axes (conv2d_transpose is a true convolution)."""
    return w[:, :, ::-1, ::-1]


class Variables:
    """A network's TF variables, consumed by name; `done()` names any that no ganbench parameter took."""

    def __init__(self, values: dict[str, np.ndarray], path: Path, what: str, ignore: tuple[str, ...] = ()) -> None:
        self.values, self.path, self.what = values, path, what
        self.used = {name for name in values if name in ignore}
        self.state: dict[str, torch.Tensor] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def take(self, name: str) -> np.ndarray:
        if name not in self.values:
            raise CheckpointError(f"{self.path}: {self.what} has no TensorFlow variable {name!r}")
        self.used.add(name)
        return np.asarray(self.values[name])

    def put(self, key: str, name: str, fn: Callable[[np.ndarray], np.ndarray] = lambda x: x) -> None:
        """state[key] = fn(variable `name`)."""
        self.state[key] = _f32(fn(self.take(name)))

    def done(self) -> dict[str, torch.Tensor]:
        unused = sorted(set(self.values) - self.used)
        if unused:
            shown = ", ".join(unused[:5]) + (f", ... ({len(unused) - 5} more)" if len(unused) > 5 else "")
            raise CheckpointError(f"{self.path}: {self.what} has {len(unused)} TensorFlow variable(s) ganbench's "
                                  f"network has no place for: {shown}")
        return self.state


def _kwargs(net: TFNetworkRecord, defaults: dict[str, Any], path: Path, what: str) -> Kwargs:
    k = Kwargs(net.static_kwargs, defaults, what, path)
    k.ignore(*RUNTIME)
    return k


def _lrelu_only(k: Kwargs, *names: str) -> None:
    for name in names:
        k.expect(name, lambda v: v == "lrelu", "ganbench's layers use leaky ReLU")


def _res_log2(resolution: int) -> int:
    return int(math.log2(resolution))


# -- ProGAN ------------------------------------------------------------------------------------------------

def progan(G: TFNetworkRecord, D: TFNetworkRecord, path: Path) -> tuple[dict, dict, Callable, Callable]:
    """(G overrides, D overrides, G state fn, D state fn) for ProGAN's G_paper / D_paper."""
    k = _kwargs(G, PROGAN_G, path, "G")
    res = check_power_of_two(require_int(k.get("resolution"), "resolution", path), path)
    k.expect("label_size", lambda v: v == 0, "ganbench's ProGAN is unconditional")
    k.expect("use_wscale", lambda v: v is True, "ganbench's layers use the equalized learning rate")
    k.expect("use_leakyrelu", lambda v: v is True, "ganbench's ProGAN uses leaky ReLU")
    k.expect("pixelnorm_epsilon", lambda v: v == 1e-8, "pixel norm uses epsilon 1e-8")
    fmaps = dict(fmap_base=require_int(k.get("fmap_base"), "fmap_base", path),
                 fmap_decay=require_float(k.get("fmap_decay"), "fmap_decay", path),
                 fmap_max=require_int(k.get("fmap_max"), "fmap_max", path))
    nf0 = min(int(fmaps["fmap_base"]), fmaps["fmap_max"])
    latent = k.get("latent_size")
    pixelnorm = require_bool(k.get("use_pixelnorm"), "use_pixelnorm", path)
    g_over = {"img_channels": require_int(k.get("num_channels"), "num_channels", path), "c_dim": 0,
              "z_dim": nf0 if latent is None else require_int(latent, "latent_size", path), **fmaps,
              "normalize_latents": require_bool(k.get("normalize_latents"), "normalize_latents", path),
              "use_pixelnorm": pixelnorm}
    k.ignore("fused_scale")   # read from the variable names (Conv0_up / Conv0)
    k.done()
    # The repository's own networks.py stores the fused up-conv kernel as [k, k, out, in]; NVlabs/stylegan's
    # networks_progan.py as [k, k, in, out].
    up_layout = conv if G.build_func_name.startswith("training.") else (lambda w: w.transpose(2, 3, 0, 1))
    # With pixel norm after every layer the sqrt(2) gain cancels; without it every activation is sqrt(2) x TF's.
    bias_scale = 1 / SQRT2 if pixelnorm else 1.0
    rgb_scale = 1.0 if pixelnorm else 1 / SQRT2

    def g_state(net: TFNetworkRecord, what: str) -> dict[str, torch.Tensor]:
        v = Variables(net.variables(), path, what)
        v.put("fc.weight", "4x4/Dense/weight", dense)
        v.put("fc_bias", "4x4/Dense/bias")
        v.put("b4.weight", "4x4/Conv/weight", conv)
        v.put("b4.bias", "4x4/Conv/bias", lambda b: b * bias_scale)
        for r in range(3, _res_log2(res) + 1):
            s = 2 ** r
            if f"{s}x{s}/Conv0_up/weight" in v:
                v.put(f"b{s}_conv0.weight", f"{s}x{s}/Conv0_up/weight", lambda w: flip(up_layout(w)))
                v.put(f"b{s}_conv0.bias", f"{s}x{s}/Conv0_up/bias", lambda b: b * bias_scale)
            else:
                v.put(f"b{s}_conv0.weight", f"{s}x{s}/Conv0/weight", conv)
                v.put(f"b{s}_conv0.bias", f"{s}x{s}/Conv0/bias", lambda b: b * bias_scale)
            v.put(f"b{s}_conv1.weight", f"{s}x{s}/Conv1/weight", conv)
            v.put(f"b{s}_conv1.bias", f"{s}x{s}/Conv1/bias", lambda b: b * bias_scale)
        for r in range(2, _res_log2(res) + 1):
            lod = _res_log2(res) - r
            v.put(f"torgb{2 ** r}.weight", f"ToRGB_lod{lod}/weight", lambda w: conv(w) * rgb_scale)
            v.put(f"torgb{2 ** r}.bias", f"ToRGB_lod{lod}/bias")
        v.put("lod", "lod")
        return v.done()

    kd = _kwargs(D, PROGAN_D, path, "D")
    kd.expect("label_size", lambda v: v == 0, "ganbench's ProGAN is unconditional")
    kd.expect("use_wscale", lambda v: v is True, "ganbench's layers use the equalized learning rate")
    kd.ignore("num_channels", "resolution", "fmap_base", "fmap_decay", "fmap_max", "fused_scale")
    # Fused or not is read from the variable names (Conv1_down / Conv1), as for G's Conv0_up.
    d_fused = res > 4 and any(name.endswith("/Conv1_down/weight") for name in D.variables())
    d_over = {"mbstd_group_size": require_int(kd.get("mbstd_group_size"), "mbstd_group_size", path),
              "d_fused_scale": d_fused}
    kd.done()

    def d_state(net: TFNetworkRecord, what: str) -> dict[str, torch.Tensor]:
        v = Variables(net.variables(), path, what)
        top = _res_log2(res)
        conv1 = "Conv1_down" if d_fused else "Conv1"
        for r in range(top, 1, -1):
            v.put(f"fromrgb{2 ** r}.weight", f"FromRGB_lod{top - r}/weight", conv)
            v.put(f"fromrgb{2 ** r}.bias", f"FromRGB_lod{top - r}/bias", lambda b: b / SQRT2)
        for r in range(top, 2, -1):
            s = 2 ** r
            for i, scope in ((0, "Conv0"), (1, conv1)):
                v.put(f"b{s}_conv{i}.weight", f"{s}x{s}/{scope}/weight", conv)
                v.put(f"b{s}_conv{i}.bias", f"{s}x{s}/{scope}/bias", lambda b: b / SQRT2)
        v.put("b4_conv.weight", "4x4/Conv/weight", conv)
        v.put("b4_conv.bias", "4x4/Conv/bias", lambda b: b / SQRT2)
        v.put("b4_fc0.weight", "4x4/Dense0/weight", dense)
        v.put("b4_fc0.bias", "4x4/Dense0/bias", lambda b: b / SQRT2)
        v.put("b4_fc1.weight", "4x4/Dense1/weight", dense)
        v.put("b4_fc1.bias", "4x4/Dense1/bias")
        v.put("lod", "lod")
        return v.done()

    return {"resolution": res, **g_over}, d_over, g_state, d_state


# -- StyleGAN ----------------------------------------------------------------------------------------------

def _fused_scale(value: Any, path: Path) -> bool | str:
    """StyleGAN's recorded fused_scale: True, False or 'auto'."""
    if isinstance(value, str) and value == "auto":
        return "auto"
    if not isinstance(value, (bool, np.bool_)):
        raise CheckpointError(f"{path}: fused_scale must be True, False or 'auto', got {value!r}")
    return bool(value)


def _truncation(k: Kwargs, path: Path) -> dict[str, Any]:
    """The truncation a G_style / G_main records for its Gs (notes for describe; None where none)."""
    cutoff = k.get("truncation_cutoff")
    return {"truncation_psi": require_float(k.get("truncation_psi"), "truncation_psi", path, optional=True),
            "truncation_cutoff": None if cutoff is None else require_int(cutoff, "truncation_cutoff", path)}


def _fused(fused_scale: Any, out_res: int) -> bool:
    """Whether StyleGAN's upsampling conv to `out_res` ran fused ('auto': outputs of 128 px and up)."""
    return out_res >= 128 if fused_scale == "auto" else bool(fused_scale)


def stylegan(G: TFNetworkRecord, D: TFNetworkRecord, path: Path) -> tuple[dict, dict, Callable, Callable]:
    """(G overrides, D overrides, G state fn, D state fn) for StyleGAN's G_style / D_basic."""
    k = _kwargs(G, STYLEGAN_G, path, "G")
    res = check_power_of_two(require_int(k.get("resolution"), "resolution", path), path)
    k.expect("label_size", lambda v: v == 0, "StyleGAN's label concatenation is normalised with the latent; "
                                             "ganbench normalises the label embedding separately")
    for name, value, why in (("use_wscale", True, "equalized learning rate"), ("use_styles", True, "styles"),
                             ("const_input_layer", True, "a learned constant input"),
                             ("use_pixel_norm", False, "no pixel norm in the synthesis"),
                             ("use_instance_norm", True, "instance norm"), ("normalize_latents", True,
                                                                             "normalised latents")):
        k.expect(name, lambda v, want=value: v is want, f"ganbench's StyleGAN uses {why}")
    _lrelu_only(k, "nonlinearity", "mapping_nonlinearity")
    k.expect("blur_filter", lambda v: v is not None and list(v) == [1, 2, 1], "resampling blurs with [1,2,1]")
    w_dim = require_int(k.get("dlatent_size"), "dlatent_size", path)
    k.expect("mapping_fmaps", lambda v: v == w_dim, "mapping layers have dlatent_size features")
    fused_scale = _fused_scale(k.get("fused_scale"), path)
    use_noise = require_bool(k.get("use_noise"), "use_noise", path)
    beta = require_float(k.get("dlatent_avg_beta"), "dlatent_avg_beta", path, optional=True)
    g_over = {"img_channels": require_int(k.get("num_channels"), "num_channels", path), "c_dim": 0,
              "z_dim": require_int(k.get("latent_size"), "latent_size", path), "w_dim": w_dim,
              "mapping_layers": require_int(k.get("mapping_layers"), "mapping_layers", path),
              "mapping_lr_multiplier": require_float(k.get("mapping_lrmul"), "mapping_lrmul", path), "w_avg_beta": beta,
              "fmap_base": require_int(k.get("fmap_base"), "fmap_base", path),
              "fmap_decay": require_float(k.get("fmap_decay"), "fmap_decay", path),
              "fmap_max": require_int(k.get("fmap_max"), "fmap_max", path), "use_noise": use_noise}
    notes = _truncation(k, path)
    k.done()
    top = _res_log2(res)

    def epilogue(v: Variables, key: str, scope: str, layer: int, after_conv: bool) -> None:
        scale = 1 / SQRT2 if after_conv else 1.0   # TF's conv output carries the sqrt(2) He gain
        if use_noise:
            v.put(f"synthesis.{key}.noise.weight", f"synthesis/{scope}/Noise/weight", lambda w: w * scale)
            v.put(f"synthesis.{key}.noise.noise_const", f"synthesis/noise{layer}", lambda n: n[0, 0])
        v.put(f"synthesis.{key}.bias", f"synthesis/{scope}/bias", lambda b: b * scale)
        v.put(f"synthesis.{key}.style.weight", f"synthesis/{scope}/StyleMod/weight", dense)
        v.put(f"synthesis.{key}.style.bias", f"synthesis/{scope}/StyleMod/bias")

    def g_state(net: TFNetworkRecord, what: str) -> dict[str, torch.Tensor]:
        v = Variables(net.variables(), path, what, ignore=("synthesis/lod",))   # G_style's own lod drives it
        for i in range(g_over["mapping_layers"]):
            v.put(f"mapping.fc{i}.weight", f"mapping/Dense{i}/weight", dense)
            v.put(f"mapping.fc{i}.bias", f"mapping/Dense{i}/bias", lambda b: b / SQRT2)
        v.put("mapping.w_avg", "dlatent_avg")
        v.put("synthesis.lod", "lod")
        v.put("synthesis.const", "synthesis/4x4/Const/const", lambda c: c[0])
        epilogue(v, "b4_epi0", "4x4/Const", 0, after_conv=False)
        v.put("synthesis.b4_conv.weight", "synthesis/4x4/Conv/weight", conv)
        epilogue(v, "b4_epi1", "4x4/Conv", 1, after_conv=True)
        for r in range(3, top + 1):
            s = 2 ** r
            up = (lambda w: flip(conv(w))) if _fused(fused_scale, s) else conv
            v.put(f"synthesis.b{s}_conv0.weight", f"synthesis/{s}x{s}/Conv0_up/weight", up)
            epilogue(v, f"b{s}_epi0", f"{s}x{s}/Conv0_up", 2 * r - 4, after_conv=True)
            v.put(f"synthesis.b{s}_conv1.weight", f"synthesis/{s}x{s}/Conv1/weight", conv)
            epilogue(v, f"b{s}_epi1", f"{s}x{s}/Conv1", 2 * r - 3, after_conv=True)
        for r in range(2, top + 1):
            v.put(f"synthesis.torgb{2 ** r}.weight", f"synthesis/ToRGB_lod{top - r}/weight", conv)
            v.put(f"synthesis.torgb{2 ** r}.bias", f"synthesis/ToRGB_lod{top - r}/bias")
        return v.done()

    kd = _kwargs(D, STYLEGAN_D, path, "D")
    kd.expect("use_wscale", lambda v: v is True, "ganbench's layers use the equalized learning rate")
    kd.expect("blur_filter", lambda v: v is not None and list(v) == [1, 2, 1], "resampling blurs with [1,2,1]")
    _lrelu_only(kd, "nonlinearity")
    kd.ignore("num_channels", "resolution", "fmap_base", "fmap_decay", "fmap_max", "fused_scale")
    d_over = {"c_dim": require_int(kd.get("label_size"), "label_size", path),
              "mbstd_group_size": require_int(kd.get("mbstd_group_size"), "mbstd_group_size", path),
              "mbstd_num_channels": require_int(kd.get("mbstd_num_features"), "mbstd_num_features", path)}
    kd.done()

    def d_state(net: TFNetworkRecord, what: str) -> dict[str, torch.Tensor]:
        v = Variables(net.variables(), path, what)
        for r in range(top, 1, -1):
            v.put(f"fromrgb{2 ** r}.weight", f"FromRGB_lod{top - r}/weight", conv)
            v.put(f"fromrgb{2 ** r}.bias", f"FromRGB_lod{top - r}/bias", lambda b: b / SQRT2)
        for r in range(top, 2, -1):
            s = 2 ** r
            v.put(f"b{s}_conv0.weight", f"{s}x{s}/Conv0/weight", conv)
            v.put(f"b{s}_conv0.bias", f"{s}x{s}/Conv0/bias", lambda b: b / SQRT2)
            v.put(f"b{s}_conv1.weight", f"{s}x{s}/Conv1_down/weight", conv)     # fused or not: a correlation
            v.put(f"b{s}_bias1", f"{s}x{s}/Conv1_down/bias", lambda b: b / SQRT2)
        v.put("b4_conv.weight", "4x4/Conv/weight", conv)
        v.put("b4_conv.bias", "4x4/Conv/bias", lambda b: b / SQRT2)
        v.put("b4_fc0.weight", "4x4/Dense0/weight", dense)
        v.put("b4_fc0.bias", "4x4/Dense0/bias", lambda b: b / SQRT2)
        v.put("b4_fc1.weight", "4x4/Dense1/weight", dense)
        v.put("b4_fc1.bias", "4x4/Dense1/bias")
        v.put("lod", "lod")
        return v.done()

    return {"resolution": res, **g_over, "_notes": notes}, d_over, g_state, d_state


# -- StyleGAN2 ---------------------------------------------------------------------------------------------

def _channels(k: Kwargs, path: Path) -> tuple[int, int]:
    k.expect("fmap_decay", lambda v: v == 1, "channels halve with each doubling of the resolution")
    k.expect("fmap_min", lambda v: v == 1, "no minimum channel count")
    k.expect("resample_kernel", lambda v: v is not None and list(v) == [1, 3, 3, 1], "resampling uses [1,3,3,1]")
    return (2 * require_int(k.get("fmap_base"), "fmap_base", path),   # channel_base = 2 x fmap_base
            require_int(k.get("fmap_max"), "fmap_max", path))


def stylegan2(G: TFNetworkRecord, D: TFNetworkRecord, path: Path) -> tuple[dict, dict, Callable, Callable]:
    """(G overrides, D overrides, G state fn, D state fn) for StyleGAN2's G_main / D_stylegan2 (config F)."""
    k = _kwargs(G, STYLEGAN2_G, path, "G")
    res = check_power_of_two(require_int(k.get("resolution"), "resolution", path), path)
    k.expect("label_size", lambda v: v == 0, "StyleGAN2's label concatenation is normalised with the latent; "
                                             "ganbench normalises the label embedding separately")
    k.expect("synthesis_func", lambda v: v == "G_synthesis_stylegan2", "only config E/F synthesis networks")
    k.expect("mapping_func", lambda v: v == "G_mapping", "the standard mapping network")
    k.expect("normalize_latents", lambda v: v is True, "latents are normalised")
    _lrelu_only(k, "nonlinearity", "mapping_nonlinearity")
    w_dim = require_int(k.get("dlatent_size"), "dlatent_size", path)
    k.expect("mapping_fmaps", lambda v: v == w_dim, "mapping layers have dlatent_size features")
    channel_base, channel_max = _channels(k, path)
    architecture = require_choice(k.get("architecture"), "architecture", ARCHITECTURES, path)
    g_over = {"img_channels": require_int(k.get("num_channels"), "num_channels", path), "c_dim": 0,
              "z_dim": require_int(k.get("latent_size"), "latent_size", path), "w_dim": w_dim,
              "mapping_layers": require_int(k.get("mapping_layers"), "mapping_layers", path),
              "mapping_lr_multiplier": require_float(k.get("mapping_lrmul"), "mapping_lrmul", path),
              "w_avg_beta": require_float(k.get("dlatent_avg_beta"), "dlatent_avg_beta", path, optional=True),
              "channel_base": channel_base, "channel_max": channel_max, "g_architecture": architecture,
              "num_fp16_res": 0, "conv_clamp": None}
    notes = _truncation(k, path)
    k.done()
    top = _res_log2(res)

    def layer(v: Variables, key: str, scope: str, noise: int, up: bool) -> None:
        v.put(f"{key}.weight", f"{scope}/weight", (lambda w: flip(conv(w))) if up else conv)
        v.put(f"{key}.bias", f"{scope}/bias")
        v.put(f"{key}.noise_const", f"synthesis/noise{noise}", lambda n: n[0, 0])
        v.put(f"{key}.noise_strength", f"{scope}/noise_strength")
        v.put(f"{key}.affine.weight", f"{scope}/mod_weight", dense)
        v.put(f"{key}.affine.bias", f"{scope}/mod_bias", lambda b: b + 1)   # stored minus 1

    def torgb(v: Variables, key: str, scope: str) -> None:
        v.put(f"{key}.weight", f"{scope}/weight", conv)
        v.put(f"{key}.bias", f"{scope}/bias")
        v.put(f"{key}.affine.weight", f"{scope}/mod_weight", dense)
        v.put(f"{key}.affine.bias", f"{scope}/mod_bias", lambda b: b + 1)

    def g_state(net: TFNetworkRecord, what: str) -> dict[str, torch.Tensor]:
        v = Variables(net.variables(), path, what, ignore=("lod",))   # progressive-growing leftover, unused
        for i in range(g_over["mapping_layers"]):
            v.put(f"mapping.fc{i}.weight", f"mapping/Dense{i}/weight", dense)
            v.put(f"mapping.fc{i}.bias", f"mapping/Dense{i}/bias")
        v.put("mapping.w_avg", "dlatent_avg")
        v.put("synthesis.b4.const", "synthesis/4x4/Const/const", lambda c: c[0])
        layer(v, "synthesis.b4.conv1", "synthesis/4x4/Conv", 0, up=False)
        if architecture == "skip" or top == 2:
            torgb(v, "synthesis.b4.torgb", "synthesis/4x4/ToRGB")
        for r in range(3, top + 1):
            s = 2 ** r
            layer(v, f"synthesis.b{s}.conv0", f"synthesis/{s}x{s}/Conv0_up", 2 * r - 5, up=True)
            layer(v, f"synthesis.b{s}.conv1", f"synthesis/{s}x{s}/Conv1", 2 * r - 4, up=False)
            if architecture == "skip" or r == top:
                torgb(v, f"synthesis.b{s}.torgb", f"synthesis/{s}x{s}/ToRGB")
            if architecture == "resnet":
                v.put(f"synthesis.b{s}.skip.weight", f"synthesis/{s}x{s}/Skip/weight", lambda w: flip(conv(w)))
        return v.done()

    kd = _kwargs(D, STYLEGAN2_D, path, "D")
    kd.expect("label_size", lambda v: v == 0, "StyleGAN2's TF D switches on the label; ganbench's D projects it")
    _lrelu_only(kd, "nonlinearity")
    d_base, d_max = _channels(kd, path)
    kd.ignore("num_channels", "resolution")
    d_arch = require_choice(kd.get("architecture"), "D architecture", ARCHITECTURES, path)
    group = kd.get("mbstd_group_size")
    d_over = {"channel_base": d_base, "channel_max": d_max, "d_architecture": d_arch,
              "mbstd_group_size": require_int(group, "mbstd_group_size", path),
              "mbstd_num_channels": require_int(kd.get("mbstd_num_features"), "mbstd_num_features", path)}
    kd.done()

    def d_state(net: TFNetworkRecord, what: str) -> dict[str, torch.Tensor]:
        v = Variables(net.variables(), path, what)
        for r in range(top, 2, -1):
            s = 2 ** r
            if r == top or d_arch == "skip":
                v.put(f"b{s}.fromrgb.weight", f"{s}x{s}/FromRGB/weight", conv)
                v.put(f"b{s}.fromrgb.bias", f"{s}x{s}/FromRGB/bias")
            v.put(f"b{s}.conv0.weight", f"{s}x{s}/Conv0/weight", conv)
            v.put(f"b{s}.conv0.bias", f"{s}x{s}/Conv0/bias")
            v.put(f"b{s}.conv1.weight", f"{s}x{s}/Conv1_down/weight", conv)     # not flipped
            v.put(f"b{s}.conv1.bias", f"{s}x{s}/Conv1_down/bias")
            if d_arch == "resnet":
                v.put(f"b{s}.skip.weight", f"{s}x{s}/Skip/weight", conv)         # not flipped
        if d_arch == "skip":
            v.put("b4.fromrgb.weight", "4x4/FromRGB/weight", conv)
            v.put("b4.fromrgb.bias", "4x4/FromRGB/bias")
        v.put("b4.conv.weight", "4x4/Conv/weight", conv)
        v.put("b4.conv.bias", "4x4/Conv/bias")
        v.put("b4.fc.weight", "4x4/Dense0/weight", dense)
        v.put("b4.fc.bias", "4x4/Dense0/bias")
        v.put("b4.out.weight", "Output/weight", dense)
        v.put("b4.out.bias", "Output/bias")
        return v.done()

    return {"resolution": res, **g_over, "_notes": notes}, d_over, g_state, d_state


# Build function -> (ganbench family, translator); the key is the function's name without its module.
TRANSLATORS: dict[str, tuple[str, Callable]] = {
    "G_paper": ("progan", progan),
    "G_style": ("stylegan", stylegan),
    "G_main": ("stylegan2", stylegan2),
}
D_FUNCTIONS = {"progan": "D_paper", "stylegan": "D_basic", "stylegan2": "D_stylegan2"}
UNSUPPORTED = {"training.networks.G_main": "StyleGAN2-ADA's TensorFlow networks (convert the pickle with "
                                           "stylegan2-ada-pytorch's legacy.py, then load the result)"}


def translate(data: Any, path: Path) -> NetworkFile:
    """The NetworkFile of an unpickled (G, D, Gs) tuple."""
    if not (isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, TFNetworkRecord) for n in data)):
        raise CheckpointError(f"{path} is a TensorFlow-era pickle but not a (G, D, Gs) network tuple")
    G, D, Gs = data
    func = Gs.build_func_name
    if func in UNSUPPORTED:
        raise CheckpointError(f"{path}: {UNSUPPORTED[func]} are not supported")
    short = func.rsplit(".", 1)[-1]
    if short not in TRANSLATORS:
        raise CheckpointError(f"{path}: unknown TensorFlow network {func!r} (known: ProGAN G_paper, StyleGAN G_style, "
                              "StyleGAN2 G_main)")
    family, fn = TRANSLATORS[short]
    d_func = D.build_func_name.rsplit(".", 1)[-1]
    if d_func != D_FUNCTIONS[family]:
        raise CheckpointError(f"{path}: D is {D.build_func_name!r}, not the {D_FUNCTIONS[family]} of a {family} pickle")
    for net in (G, D, Gs):
        if family == "stylegan2" and net.version < 4 or net.version < 2:
            raise CheckpointError(f"{path}: Network pickle version {net.version} is too old")
    g_over, d_over, g_state, d_state = fn(Gs, D, path)
    notes = g_over.pop("_notes", {})
    resolution = g_over.pop("resolution")
    clash = {k: (g_over[k], d_over[k]) for k in g_over.keys() & d_over.keys() if g_over[k] != d_over[k]}
    if clash:
        what = ", ".join(f"{k} (G {a!r}, D {b!r})" for k, (a, b) in sorted(clash.items()))
        raise CheckpointError(f"{path}: G and D differ in {what}, which ganbench's {family} shares between them")
    states = {"G_ema": g_state(Gs, "Gs"), "G": g_state(G, "G")}
    unavailable = {}
    try:
        states["D"] = d_state(D, "D")
    except CheckpointError as exc:
        unavailable["D"] = str(exc)
    return NetworkFile(path=path, format="tf-pickle", family=family, resolution=resolution,
                       overrides={**g_over, **d_over}, states=states, unavailable=unavailable,
                       fixed_buffers=("resample_filter", "blur_filter"),   # filters the config fixes; TF stores none
                       notes={"build_func_name": func, **notes})


@register("tf-pickle")
class TFPickle:
    """A (G, D, Gs) tuple of TF-era Network objects."""

    def sniff(self, path: Path) -> bool:
        return safe_pickle.first_global(path) in TF_NETWORK_CLASSES

    def snapshot_kimg(self, name: str) -> float | None:
        from model_zoo.formats.nvlabs_pickle import SNAPSHOT   # the TF-era loops named snapshots alike

        m = SNAPSHOT.match(name)
        return float(m.group(1)) if m else None

    def read(self, path: Path) -> NetworkFile:
        return translate(safe_pickle.load(path), path)
