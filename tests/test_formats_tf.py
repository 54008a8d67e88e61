"""TF-era pickles (ProGAN, StyleGAN, StyleGAN2): read as data without TensorFlow, mapped by variable name.

ProGAN and StyleGAN networks are checked against a reference forward pass written here from the TF graphs'
definitions (He-gain weights, activations without gain, pixel/instance norm, the fused up/down convolutions as
conv2d_transpose / strided conv2d of the padded 4-tap-summed kernel), in float64, on random TF-layout variables.
StyleGAN2's mapping is checked weight by weight against the facts of NVlabs' legacy.py (Conv0_up and G's Skip
flipped, D's Conv1_down and Skip not, mod_bias stored minus 1, noise numbering, dlatent_avg).
"""

from __future__ import annotations

import math
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import model_zoo
from foreign_formats import armed_nvlabs_modules, assert_generate_refuses, tf_network, write_tf_pickle
from ganbench.errors import CheckpointError
from model_zoo.formats import tf_pickle
from model_zoo.formats.safe_pickle import TFNetworkRecord

SQRT2 = math.sqrt(2)


def _rand(shapes: dict[str, tuple], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(seed)
    out = {}
    for name, shape in shapes.items():
        out[name] = np.float32(rng.randn()) if shape == () else rng.randn(*shape).astype(np.float32)
    return out


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float64))


# -- TF graph semantics (float64) ------------------------------------------------------------------------

def lrelu(x):
    return torch.maximum(x, x * 0.2)


def pixel_norm(x):
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


def instance_norm(x):
    x = x - x.mean(dim=[2, 3], keepdim=True)
    return x * torch.rsqrt(x.square().mean(dim=[2, 3], keepdim=True) + 1e-8)


def he(w: np.ndarray, gain: float, lrmul: float = 1.0, fan_in: int | None = None) -> torch.Tensor:
    """Equalized-lr runtime weight: w * gain / sqrt(fan_in) * lrmul (fan_in = prod(shape[:-1]))."""
    fan = fan_in if fan_in is not None else int(np.prod(w.shape[:-1]))
    return _t(w) * (gain / math.sqrt(fan) * lrmul)


def tf_dense(x, w, gain, lrmul=1.0):
    return x.flatten(1) @ he(w, gain, lrmul)


def tf_conv(x, w, gain):
    """tf.nn.conv2d SAME, NCHW, weight [k, k, in, out] (a correlation)."""
    k = w.shape[0]
    return F.conv2d(x, he(w, gain).permute(3, 2, 0, 1), padding=k // 2)


def four_tap(w: torch.Tensor) -> torch.Tensor:
    """The fused ops' kernel: pad the [k, k, ., .] kernel by one and sum its four shifts."""
    w = F.pad(w.permute(2, 3, 0, 1), [1, 1, 1, 1]).permute(2, 3, 0, 1)
    return w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]


def tf_upscale_conv(x, w_out_in, fan_in):
    """Fused upscale2d_conv2d: conv2d_transpose (stride 2, SAME) with the 4-tap kernel [k+1, k+1, out, in]."""
    w = four_tap(he(w_out_in, SQRT2, fan_in=fan_in))
    return F.conv_transpose2d(x, w.permute(3, 2, 0, 1), stride=2, padding=1)


def tf_conv_downscale(x, w, gain=SQRT2):
    """Fused conv2d_downscale2d: stride-2 SAME conv2d with the 4-tap kernel times 0.25."""
    wk = four_tap(he(w, gain)) * 0.25
    return F.conv2d(x, wk.permute(3, 2, 0, 1), stride=2, padding=1)


def up(x):
    return x.repeat_interleave(2, 2).repeat_interleave(2, 3)


def down(x):
    return F.avg_pool2d(x, 2)


def blur(x):
    f = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype)
    f = (f[:, None] * f[None, :]) / 16
    return F.conv2d(x, f.expand(x.shape[1], 1, 3, 3), padding=1, groups=x.shape[1])


def lerp_clip(a, b, t):
    return a + (b - a) * min(max(t, 0.0), 1.0)


def mbstd(x, group, features=1):
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.reshape(g, -1, features, c // features, h, w)
    y = (y - y.mean(0, keepdim=True)).square().mean(0)
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4]).reshape(-1, features, 1, 1)
    return torch.cat([x, y.repeat(g, 1, h, w)], dim=1)


# -- ProGAN --------------------------------------------------------------------------------------------------

def nf(stage, base, fmax):
    return min(int(base / 2.0 ** stage), fmax)


def progan_variables(res, base, fmax, channels=3, fused=True, d_fused=False, out_in_layout=True, seed=0):
    top = int(math.log2(res))
    latent = nf(0, base, fmax)
    g = {"4x4/Dense/weight": (latent, nf(1, base, fmax) * 16), "4x4/Dense/bias": (nf(1, base, fmax),),
         "4x4/Conv/weight": (3, 3, nf(1, base, fmax), nf(1, base, fmax)), "4x4/Conv/bias": (nf(1, base, fmax),),
         "lod": ()}
    for r in range(3, top + 1):
        s, cin, cout = 2 ** r, nf(r - 2, base, fmax), nf(r - 1, base, fmax)
        if fused:
            g[f"{s}x{s}/Conv0_up/weight"] = (3, 3, cout, cin) if out_in_layout else (3, 3, cin, cout)
            g[f"{s}x{s}/Conv0_up/bias"] = (cout,)
        else:
            g[f"{s}x{s}/Conv0/weight"], g[f"{s}x{s}/Conv0/bias"] = (3, 3, cin, cout), (cout,)
        g[f"{s}x{s}/Conv1/weight"], g[f"{s}x{s}/Conv1/bias"] = (3, 3, cout, cout), (cout,)
    for r in range(2, top + 1):
        g[f"ToRGB_lod{top - r}/weight"] = (1, 1, nf(r - 1, base, fmax), channels)
        g[f"ToRGB_lod{top - r}/bias"] = (channels,)
    d = {"lod": (), "4x4/Conv/weight": (3, 3, nf(1, base, fmax) + 1, nf(1, base, fmax)),
         "4x4/Conv/bias": (nf(1, base, fmax),), "4x4/Dense0/weight": (nf(1, base, fmax) * 16, nf(0, base, fmax)),
         "4x4/Dense0/bias": (nf(0, base, fmax),), "4x4/Dense1/weight": (nf(0, base, fmax), 1), "4x4/Dense1/bias": (1,)}
    for r in range(top, 1, -1):
        d[f"FromRGB_lod{top - r}/weight"] = (1, 1, channels, nf(r - 1, base, fmax))
        d[f"FromRGB_lod{top - r}/bias"] = (nf(r - 1, base, fmax),)
    for r in range(top, 2, -1):
        s = 2 ** r
        d[f"{s}x{s}/Conv0/weight"], d[f"{s}x{s}/Conv0/bias"] = (3, 3, nf(r - 1, base, fmax), nf(r - 1, base, fmax)), (
            nf(r - 1, base, fmax),)
        name = "Conv1_down" if d_fused else "Conv1"
        d[f"{s}x{s}/{name}/weight"] = (3, 3, nf(r - 1, base, fmax), nf(r - 2, base, fmax))
        d[f"{s}x{s}/{name}/bias"] = (nf(r - 2, base, fmax),)
    return _rand(g, seed), _rand(d, seed + 1)


def progan_g_ref(v, z, res, lod, pixelnorm=True, out_in_layout=True):
    top = int(math.log2(res))
    pn = pixel_norm if pixelnorm else (lambda x: x)
    x = pixel_norm(z)
    c1 = v["4x4/Conv/bias"].shape[0]
    x = tf_dense(x, v["4x4/Dense/weight"], SQRT2 / 4).reshape(-1, c1, 4, 4)
    x = pn(lrelu(x + _t(v["4x4/Dense/bias"]).reshape(1, -1, 1, 1)))
    x = pn(lrelu(tf_conv(x, v["4x4/Conv/weight"], SQRT2) + _t(v["4x4/Conv/bias"]).reshape(1, -1, 1, 1)))
    images = tf_conv(x, v[f"ToRGB_lod{top - 2}/weight"], 1) + _t(v[f"ToRGB_lod{top - 2}/bias"]).reshape(1, -1, 1, 1)
    for r in range(3, top + 1):
        s = 2 ** r
        if f"{s}x{s}/Conv0_up/weight" in v:
            w = v[f"{s}x{s}/Conv0_up/weight"]
            w = w if out_in_layout else w.transpose(0, 1, 3, 2)
            y = tf_upscale_conv(x, w, fan_in=9 * x.shape[1])
            x = pn(lrelu(y + _t(v[f"{s}x{s}/Conv0_up/bias"]).reshape(1, -1, 1, 1)))
        else:
            x = pn(lrelu(tf_conv(up(x), v[f"{s}x{s}/Conv0/weight"], SQRT2)
                         + _t(v[f"{s}x{s}/Conv0/bias"]).reshape(1, -1, 1, 1)))
        x = pn(lrelu(tf_conv(x, v[f"{s}x{s}/Conv1/weight"], SQRT2) + _t(v[f"{s}x{s}/Conv1/bias"]).reshape(1, -1, 1, 1)))
        img = tf_conv(x, v[f"ToRGB_lod{top - r}/weight"], 1) + _t(v[f"ToRGB_lod{top - r}/bias"]).reshape(1, -1, 1, 1)
        images = lerp_clip(img, up(images), lod - (top - r))
    return images


def progan_d_ref(v, img, res, lod, group=4):
    top = int(math.log2(res))

    def fromrgb(x, r):
        return lrelu(tf_conv(x, v[f"FromRGB_lod{top - r}/weight"], SQRT2)
                     + _t(v[f"FromRGB_lod{top - r}/bias"]).reshape(1, -1, 1, 1))

    x = fromrgb(img, top)
    for r in range(top, 2, -1):
        s = 2 ** r
        x = lrelu(tf_conv(x, v[f"{s}x{s}/Conv0/weight"], SQRT2) + _t(v[f"{s}x{s}/Conv0/bias"]).reshape(1, -1, 1, 1))
        if f"{s}x{s}/Conv1_down/weight" in v:       # fused: one 4-tap stride-2 conv, then bias and lrelu
            x = lrelu(tf_conv_downscale(x, v[f"{s}x{s}/Conv1_down/weight"])
                      + _t(v[f"{s}x{s}/Conv1_down/bias"]).reshape(1, -1, 1, 1))
        else:
            x = down(lrelu(tf_conv(x, v[f"{s}x{s}/Conv1/weight"], SQRT2)
                           + _t(v[f"{s}x{s}/Conv1/bias"]).reshape(1, -1, 1, 1)))
        img = down(img)
        x = lerp_clip(x, fromrgb(img, r - 1), lod - (top - r))
    x = mbstd(x, group)
    x = lrelu(tf_conv(x, v["4x4/Conv/weight"], SQRT2) + _t(v["4x4/Conv/bias"]).reshape(1, -1, 1, 1))
    x = lrelu(tf_dense(x, v["4x4/Dense0/weight"], SQRT2) + _t(v["4x4/Dense0/bias"]))
    return tf_dense(x, v["4x4/Dense1/weight"], 1) + _t(v["4x4/Dense1/bias"])


def _write_progan(tmp_path, g, d, kwargs, module="networks", name="progan.pkl", lod=0.0):
    g = {**g, "lod": np.float32(lod)}
    d = {**d, "lod": np.float32(lod)}
    version = 2 if module == "networks" else 3     # tfutil.Network in ProGAN's repository, dnnlib's in NVlabs/stylegan
    G = tf_network("G", f"{module}.G_paper", kwargs, g, version=version)
    Gs = tf_network("Gs", f"{module}.G_paper", kwargs, g, version=version)
    D = tf_network("D", f"{module}.D_paper", {k: v for k, v in kwargs.items() if k != "use_pixelnorm"}, d,
                   version=version)
    return write_tf_pickle(tmp_path / name, G, D, Gs)


def _close(got: torch.Tensor, want: torch.Tensor, rtol: float = 2e-5) -> None:
    err = (got.double() - want).abs().max() / want.abs().max()
    assert err < rtol, f"relative error {err:.2e}"


@pytest.mark.parametrize("module,out_in,pixelnorm,lod", [
    ("networks", True, True, 0.0),                      # ProGAN's repository (tfutil.Network), its fused layout
    ("training.networks_progan", False, True, 0.3),     # NVlabs/stylegan's copy: [k, k, in, out], mid-fade
    ("networks", True, False, 0.0),                     # -nopixelnorm: the sqrt(2) gain reaches ToRGB
])
def test_progan_loads_and_computes_the_tf_function(tmp_path, module, out_in, pixelnorm, lod):
    res, base, fmax = 16, 64, 16
    g, d = progan_variables(res, base, fmax, out_in_layout=out_in)
    kwargs = dict(num_channels=3, resolution=res, label_size=0, fmap_base=base, fmap_max=fmax, use_pixelnorm=pixelnorm)
    path = _write_progan(tmp_path, g, d, kwargs, module=module, lod=lod)
    info = model_zoo.describe(path)
    assert (info["format"], info["family"], info["resolution"]) == ("tf-pickle", "progan", res)
    assert info["config"]["z_dim"] == nf(0, base, fmax)       # latent_size None: nf(0)
    G = model_zoo.load(path)
    z = torch.from_numpy(np.random.RandomState(1).randn(4, G.z_dim))
    with torch.no_grad():
        got = G(z.float(), None)
    _close(got, progan_g_ref(g, z, res, lod, pixelnorm, out_in_layout=out_in))
    D = model_zoo.load(path, which="D")
    img = torch.from_numpy(np.random.RandomState(2).randn(4, 3, res, res))
    with torch.no_grad():
        _close(D(img.float()), progan_d_ref(d, img, res, lod))


@pytest.mark.parametrize("lod", [0.0, 0.4])
def test_progan_fused_discriminator_loads_and_computes_the_tf_function(tmp_path, lod):
    """ProGAN's fused `Conv1_down` pools before its bias and leaky ReLU (one 4-tap stride-2 conv in TF)."""
    res = 16
    g, d = progan_variables(res, 64, 16, d_fused=True)
    path = _write_progan(tmp_path, g, d, dict(num_channels=3, resolution=res, label_size=0, fmap_base=64,
                                              fmap_max=16), lod=lod)
    info = model_zoo.describe(path)
    assert info["networks"] == ["G_ema", "G", "D"] and info["config"]["d_fused_scale"] is True
    D = model_zoo.load(path, which="D")
    img = torch.from_numpy(np.random.RandomState(3).randn(4, 3, res, res))
    with torch.no_grad():
        _close(D(img.float()), progan_d_ref(d, img, res, lod))
    unfused = dict(d)   # the same weights read as the unfused layout give a different function
    for r in range(3, 5):
        s = 2 ** r
        unfused[f"{s}x{s}/Conv1/weight"] = unfused.pop(f"{s}x{s}/Conv1_down/weight")
        unfused[f"{s}x{s}/Conv1/bias"] = unfused.pop(f"{s}x{s}/Conv1_down/bias")
    with torch.no_grad():
        assert (D(img.float()).double() - progan_d_ref(unfused, img, res, lod)).abs().max() > 1e-3


# -- StyleGAN ------------------------------------------------------------------------------------------------

def stylegan_variables(res, base, fmax, zdim, wdim, layers, channels=3, seed=0):
    top = int(math.log2(res))
    m = {}
    for i in range(layers):
        m[f"mapping/Dense{i}/weight"], m[f"mapping/Dense{i}/bias"] = (zdim if i == 0 else wdim, wdim), (wdim,)
    s = {"synthesis/lod": (), "synthesis/4x4/Const/const": (1, nf(1, base, fmax), 4, 4),
         "synthesis/4x4/Conv/weight": (3, 3, nf(1, base, fmax), nf(1, base, fmax))}

    def epi(scope, c, layer, r):
        s[f"synthesis/{scope}/Noise/weight"], s[f"synthesis/{scope}/bias"] = (c,), (c,)
        s[f"synthesis/{scope}/StyleMod/weight"], s[f"synthesis/{scope}/StyleMod/bias"] = (wdim, 2 * c), (2 * c,)
        s[f"synthesis/noise{layer}"] = (1, 1, 2 ** r, 2 ** r)

    epi("4x4/Const", nf(1, base, fmax), 0, 2)
    epi("4x4/Conv", nf(1, base, fmax), 1, 2)
    for r in range(3, top + 1):
        q, cin, cout = 2 ** r, nf(r - 2, base, fmax), nf(r - 1, base, fmax)
        s[f"synthesis/{q}x{q}/Conv0_up/weight"] = (3, 3, cin, cout)
        epi(f"{q}x{q}/Conv0_up", cout, 2 * r - 4, r)
        s[f"synthesis/{q}x{q}/Conv1/weight"] = (3, 3, cout, cout)
        epi(f"{q}x{q}/Conv1", cout, 2 * r - 3, r)
    for r in range(2, top + 1):
        s[f"synthesis/ToRGB_lod{top - r}/weight"] = (1, 1, nf(r - 1, base, fmax), channels)
        s[f"synthesis/ToRGB_lod{top - r}/bias"] = (channels,)
    g = _rand({**m, **s, "dlatent_avg": (wdim,), "lod": ()}, seed)
    g["lod"] = np.float32(0.0)
    d = {"lod": (), "4x4/Conv/weight": (3, 3, nf(1, base, fmax) + 1, nf(1, base, fmax)),
         "4x4/Conv/bias": (nf(1, base, fmax),), "4x4/Dense0/weight": (nf(1, base, fmax) * 16, nf(0, base, fmax)),
         "4x4/Dense0/bias": (nf(0, base, fmax),), "4x4/Dense1/weight": (nf(0, base, fmax), 1), "4x4/Dense1/bias": (1,)}
    for r in range(top, 1, -1):
        d[f"FromRGB_lod{top - r}/weight"] = (1, 1, channels, nf(r - 1, base, fmax))
        d[f"FromRGB_lod{top - r}/bias"] = (nf(r - 1, base, fmax),)
    for r in range(top, 2, -1):
        q = 2 ** r
        d[f"{q}x{q}/Conv0/weight"], d[f"{q}x{q}/Conv0/bias"] = (3, 3, nf(r - 1, base, fmax), nf(r - 1, base, fmax)), (
            nf(r - 1, base, fmax),)
        d[f"{q}x{q}/Conv1_down/weight"] = (3, 3, nf(r - 1, base, fmax), nf(r - 2, base, fmax))
        d[f"{q}x{q}/Conv1_down/bias"] = (nf(r - 2, base, fmax),)
    d = _rand(d, seed + 1)
    d["lod"] = np.float32(0.0)
    return g, d


def stylegan_g_ref(v, z, res, layers, fused, psi=1.0):
    top = int(math.log2(res))
    x = pixel_norm(z)
    for i in range(layers):
        x = lrelu(x @ he(v[f"mapping/Dense{i}/weight"], SQRT2, 0.01) + _t(v[f"mapping/Dense{i}/bias"]) * 0.01)
    w = _t(v["dlatent_avg"]) + (x - _t(v["dlatent_avg"])) * psi

    def epi(x, scope, layer):
        x = x + _t(v[f"synthesis/noise{layer}"]) * _t(v[f"synthesis/{scope}/Noise/weight"]).reshape(1, -1, 1, 1)
        x = instance_norm(lrelu(x + _t(v[f"synthesis/{scope}/bias"]).reshape(1, -1, 1, 1)))
        st = w @ he(v[f"synthesis/{scope}/StyleMod/weight"], 1) + _t(v[f"synthesis/{scope}/StyleMod/bias"])
        st = st.reshape(-1, 2, x.shape[1], 1, 1)
        return x * (st[:, 0] + 1) + st[:, 1]

    x = _t(v["synthesis/4x4/Const/const"]).repeat(z.shape[0], 1, 1, 1)
    x = epi(x, "4x4/Const", 0)
    x = epi(tf_conv(x, v["synthesis/4x4/Conv/weight"], SQRT2), "4x4/Conv", 1)

    def torgb(x, r):
        return (tf_conv(x, v[f"synthesis/ToRGB_lod{top - r}/weight"], 1)
                + _t(v[f"synthesis/ToRGB_lod{top - r}/bias"]).reshape(1, -1, 1, 1))

    images = torgb(x, 2)
    for r in range(3, top + 1):
        q = 2 ** r
        wk = v[f"synthesis/{q}x{q}/Conv0_up/weight"]
        if fused:    # the [k, k, in, out] variable transposed to conv2d_transpose's [k, k, out, in]
            y = tf_upscale_conv(x, wk.transpose(0, 1, 3, 2), fan_in=9 * x.shape[1])
        else:
            y = tf_conv(up(x), wk, SQRT2)
        x = epi(blur(y), f"{q}x{q}/Conv0_up", 2 * r - 4)
        x = epi(tf_conv(x, v[f"synthesis/{q}x{q}/Conv1/weight"], SQRT2), f"{q}x{q}/Conv1", 2 * r - 3)
        images = lerp_clip(torgb(x, r), up(images), 0.0 - (top - r))
    return images


def stylegan_d_ref(v, img, res, fused, group=4):
    top = int(math.log2(res))

    def fromrgb(x, r):
        return lrelu(tf_conv(x, v[f"FromRGB_lod{top - r}/weight"], SQRT2)
                     + _t(v[f"FromRGB_lod{top - r}/bias"]).reshape(1, -1, 1, 1))

    x = fromrgb(img, top)
    for r in range(top, 2, -1):
        q = 2 ** r
        x = lrelu(tf_conv(x, v[f"{q}x{q}/Conv0/weight"], SQRT2) + _t(v[f"{q}x{q}/Conv0/bias"]).reshape(1, -1, 1, 1))
        wk = v[f"{q}x{q}/Conv1_down/weight"]
        y = tf_conv_downscale(blur(x), wk) if fused else down(tf_conv(blur(x), wk, SQRT2))
        x = lrelu(y + _t(v[f"{q}x{q}/Conv1_down/bias"]).reshape(1, -1, 1, 1))
        img = down(img)
        x = lerp_clip(x, fromrgb(img, r - 1), 0.0 - (top - r))
    x = mbstd(x, group)
    x = lrelu(tf_conv(x, v["4x4/Conv/weight"], SQRT2) + _t(v["4x4/Conv/bias"]).reshape(1, -1, 1, 1))
    x = lrelu(tf_dense(x, v["4x4/Dense0/weight"], SQRT2) + _t(v["4x4/Dense0/bias"]))
    return tf_dense(x, v["4x4/Dense1/weight"], 1) + _t(v["4x4/Dense1/bias"])


def _split(g: dict) -> tuple[dict, dict, dict]:
    own = {k: v for k, v in g.items() if "/" not in k}
    mapping = {k.split("/", 1)[1]: v for k, v in g.items() if k.startswith("mapping/")}
    synthesis = {k.split("/", 1)[1]: v for k, v in g.items() if k.startswith("synthesis/")}
    return own, mapping, synthesis


def _write_stylegan(tmp_path, g, d, kwargs, name="stylegan.pkl"):
    def gen(label):
        own, mapping, synthesis = _split(g)
        comps = {"mapping": tf_network("G_mapping", "G_mapping", kwargs, mapping, version=3),
                 "synthesis": tf_network("G_synthesis", "G_synthesis", kwargs, synthesis, version=3)}
        return tf_network(label, "training.networks_stylegan.G_style", kwargs, own, comps, version=3)

    dk = {k: v for k, v in kwargs.items() if k in tf_pickle.STYLEGAN_D}
    D = tf_network("D", "training.networks_stylegan.D_basic", dk, d, version=3)
    return write_tf_pickle(tmp_path / name, gen("G"), D, gen("Gs"))


@pytest.mark.parametrize("fused", [True, False])
def test_stylegan_loads_and_computes_the_tf_function(tmp_path, fused):
    res, base, fmax, dim, layers = 16, 64, 16, 16, 2
    g, d = stylegan_variables(res, base, fmax, dim, dim, layers)
    kwargs = dict(num_channels=3, resolution=res, label_size=0, fmap_base=base, fmap_max=fmax, latent_size=dim,
                  dlatent_size=dim, mapping_fmaps=dim, mapping_layers=layers, fused_scale=fused)
    path = _write_stylegan(tmp_path, g, d, kwargs)
    info = model_zoo.describe(path)
    assert (info["family"], info["truncation_psi"], info["truncation_cutoff"]) == ("stylegan", 0.7, 8)
    G = model_zoo.load(path)
    z = torch.from_numpy(np.random.RandomState(1).randn(4, dim))
    for psi in (1.0, 0.7):
        with torch.no_grad():
            got = G(z.float(), None, truncation_psi=psi, noise_mode="const")
        _close(got, stylegan_g_ref(g, z, res, layers, fused, psi))
    D = model_zoo.load(path, which="D")
    img = torch.from_numpy(np.random.RandomState(2).randn(4, 3, res, res))
    with torch.no_grad():
        _close(D(img.float()), stylegan_d_ref(d, img, res, fused))


def test_auto_fused_scale_flips_only_outputs_of_128_px_and_up():
    assert [tf_pickle._fused("auto", r) for r in (8, 64, 128, 1024)] == [False, False, True, True]
    assert tf_pickle._fused(True, 8) and not tf_pickle._fused(False, 1024)


# -- StyleGAN2 -----------------------------------------------------------------------------------------------

def stylegan2_variables(res, base, fmax, dim, layers, g_arch="skip", d_arch="resnet", seed=0):
    top = int(math.log2(res))

    def ch(r):
        return min(2 * base // 2 ** r, fmax)

    g = {"dlatent_avg": (dim,), "lod": ()}
    for i in range(layers):
        g[f"mapping/Dense{i}/weight"], g[f"mapping/Dense{i}/bias"] = (dim, dim), (dim,)
    g["synthesis/4x4/Const/const"] = (1, ch(2), 4, 4)

    def layer(scope, cin, cout, noise, r):
        g[f"synthesis/{scope}/weight"], g[f"synthesis/{scope}/bias"] = (3, 3, cin, cout), (cout,)
        g[f"synthesis/{scope}/noise_strength"] = ()
        g[f"synthesis/{scope}/mod_weight"], g[f"synthesis/{scope}/mod_bias"] = (dim, cin), (cin,)
        g[f"synthesis/noise{noise}"] = (1, 1, 2 ** r, 2 ** r)

    def torgb(scope, cin):
        g[f"synthesis/{scope}/weight"], g[f"synthesis/{scope}/bias"] = (1, 1, cin, 3), (3,)
        g[f"synthesis/{scope}/mod_weight"], g[f"synthesis/{scope}/mod_bias"] = (dim, cin), (cin,)

    layer("4x4/Conv", ch(2), ch(2), 0, 2)
    if g_arch == "skip" or top == 2:
        torgb("4x4/ToRGB", ch(2))
    for r in range(3, top + 1):
        q = 2 ** r
        layer(f"{q}x{q}/Conv0_up", ch(r - 1), ch(r), 2 * r - 5, r)
        layer(f"{q}x{q}/Conv1", ch(r), ch(r), 2 * r - 4, r)
        if g_arch == "skip" or r == top:
            torgb(f"{q}x{q}/ToRGB", ch(r))
        if g_arch == "resnet":
            g[f"synthesis/{q}x{q}/Skip/weight"] = (1, 1, ch(r - 1), ch(r))
    d = {"4x4/Conv/weight": (3, 3, ch(2) + 1, ch(2)), "4x4/Conv/bias": (ch(2),),
         "4x4/Dense0/weight": (ch(2) * 16, ch(1)), "4x4/Dense0/bias": (ch(1),), "Output/weight": (ch(1), 1),
         "Output/bias": (1,)}
    for r in range(top, 2, -1):
        q = 2 ** r
        if r == top:
            d[f"{q}x{q}/FromRGB/weight"], d[f"{q}x{q}/FromRGB/bias"] = (1, 1, 3, ch(r)), (ch(r),)
        d[f"{q}x{q}/Conv0/weight"], d[f"{q}x{q}/Conv0/bias"] = (3, 3, ch(r), ch(r)), (ch(r),)
        d[f"{q}x{q}/Conv1_down/weight"], d[f"{q}x{q}/Conv1_down/bias"] = (3, 3, ch(r), ch(r - 1)), (ch(r - 1),)
        d[f"{q}x{q}/Skip/weight"] = (1, 1, ch(r), ch(r - 1))
    # Asymmetric kernels, so a missing or extra flip cannot go unnoticed.
    return _rand(g, seed), _rand(d, seed + 1)


def _write_stylegan2(tmp_path, g, d, kwargs, name="stylegan2.pkl", d_kwargs=None):
    def gen(label):
        own, mapping, synthesis = _split(g)
        comps = {"mapping": tf_network("G_mapping", "G_mapping", kwargs, mapping),
                 "synthesis": tf_network("G_synthesis", "G_synthesis_stylegan2", kwargs, synthesis)}
        return tf_network(label, "training.networks_stylegan2.G_main", kwargs, own, comps)

    dk = d_kwargs if d_kwargs is not None else {k: v for k, v in kwargs.items() if k in tf_pickle.STYLEGAN2_D}
    D = tf_network("D", "training.networks_stylegan2.D_stylegan2", dk, d)
    return write_tf_pickle(tmp_path / name, gen("G"), D, gen("Gs"))


def _sg2_kwargs(res=8, base=32, fmax=16, dim=16, layers=2, **kw):
    return {**dict(num_channels=3, resolution=res, label_size=0, fmap_base=base, fmap_max=fmax, latent_size=dim,
                   dlatent_size=dim, mapping_fmaps=dim, mapping_layers=layers), **kw}


def test_stylegan2_weights_follow_legacy_facts(tmp_path):
    g, d = stylegan2_variables(8, 32, 16, 16, 2)
    path = _write_stylegan2(tmp_path, g, d, _sg2_kwargs())
    info = model_zoo.describe(path)
    assert info["family"] == "stylegan2" and info["config"]["channel_base"] == 64     # 2 x fmap_base
    G, D = model_zoo.load(path), model_zoo.load(path, which="D")
    sg, sd = G.state_dict(), D.state_dict()

    def conv(w):
        return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))

    assert torch.equal(sg["synthesis.b8.conv0.weight"], conv(g["synthesis/8x8/Conv0_up/weight"]).flip([2, 3]))
    assert torch.equal(sg["synthesis.b8.conv1.weight"], conv(g["synthesis/8x8/Conv1/weight"]))
    assert torch.equal(sg["synthesis.b8.conv0.affine.bias"], torch.from_numpy(g["synthesis/8x8/Conv0_up/mod_bias"] + 1))
    assert torch.equal(sg["synthesis.b8.torgb.affine.bias"], torch.from_numpy(g["synthesis/8x8/ToRGB/mod_bias"] + 1))
    assert torch.equal(sg["synthesis.b8.conv0.affine.weight"], torch.from_numpy(g["synthesis/8x8/Conv0_up/mod_weight"].T))
    for key, layer in (("b4.conv1", 0), ("b8.conv0", 1), ("b8.conv1", 2)):
        assert torch.equal(sg[f"synthesis.{key}.noise_const"], torch.from_numpy(g[f"synthesis/noise{layer}"][0, 0]))
    assert sg["synthesis.b8.conv0.noise_strength"].item() == g["synthesis/8x8/Conv0_up/noise_strength"]
    assert torch.equal(sg["mapping.w_avg"], torch.from_numpy(g["dlatent_avg"]))
    assert torch.equal(sg["synthesis.b4.const"], torch.from_numpy(g["synthesis/4x4/Const/const"][0]))
    assert torch.equal(sd["b8.conv1.weight"], conv(d["8x8/Conv1_down/weight"]))           # not flipped
    assert torch.equal(sd["b8.skip.weight"], conv(d["8x8/Skip/weight"]))                  # not flipped
    assert torch.equal(sd["b4.out.weight"], torch.from_numpy(d["Output/weight"].T))
    g2, _ = stylegan2_variables(8, 32, 16, 16, 2, g_arch="resnet")
    path = _write_stylegan2(tmp_path, g2, d, _sg2_kwargs(architecture="resnet"), name="resnet.pkl")
    skip = model_zoo.load(path).state_dict()["synthesis.b8.skip.weight"]
    assert torch.equal(skip, conv(g2["synthesis/8x8/Skip/weight"]).flip([2, 3]))             # G's Skip flipped


def test_stylegan2_config_f_defaults_decide_what_static_kwargs_leave_out():
    config_f = {"num_channels": 3, "resolution": 1024, "label_size": 0}   # all an official pickle records
    Gs = TFNetworkRecord({"static_kwargs": config_f, "build_func_name": "training.networks_stylegan2.G_main"})
    D = TFNetworkRecord({"static_kwargs": config_f, "build_func_name": "training.networks_stylegan2.D_stylegan2"})
    g_over, d_over, _, _ = tf_pickle.stylegan2(Gs, D, Path("ffhq.pkl"))
    assert (g_over["channel_base"], g_over["channel_max"]) == (2 * 16384, 512)
    assert (g_over["z_dim"], g_over["w_dim"], g_over["mapping_layers"]) == (512, 512, 8)
    assert (g_over["mapping_lr_multiplier"], g_over["w_avg_beta"], g_over["g_architecture"]) == (0.01, 0.995, "skip")
    assert (d_over["d_architecture"], d_over["mbstd_group_size"], d_over["mbstd_num_channels"]) == ("resnet", 4, 1)
    assert g_over["_notes"]["truncation_psi"] == 0.5


def test_strict_variable_names(tmp_path):
    g, d = stylegan2_variables(8, 32, 16, 16, 2)
    extra = {**g, "synthesis/8x8/Conv1/stray": np.zeros(2, np.float32)}
    path = _write_stylegan2(tmp_path, extra, d, _sg2_kwargs(), name="extra.pkl")
    with pytest.raises(CheckpointError, match=r"1 TensorFlow variable\(s\) ganbench's network has no place for: "
                                              r"synthesis/8x8/Conv1/stray"):
        model_zoo.load(path)
    missing = {k: v for k, v in g.items() if k != "synthesis/8x8/Conv1/noise_strength"}
    path = _write_stylegan2(tmp_path, missing, d, _sg2_kwargs(), name="missing.pkl")
    with pytest.raises(CheckpointError, match=r"has no TensorFlow variable 'synthesis/8x8/Conv1/noise_strength'"):
        model_zoo.load(path)
    path = _write_stylegan2(tmp_path, g, d, _sg2_kwargs(use_spectral_norm=True), name="unknown.pkl")
    with pytest.raises(CheckpointError, match=r"G has option\(s\) ganbench cannot express: use_spectral_norm=True"):
        model_zoo.load(path)
    path = _write_stylegan2(tmp_path, g, d, _sg2_kwargs(label_size=3), name="cond.pkl")
    with pytest.raises(CheckpointError, match=r"label_size=3 cannot be expressed"):
        model_zoo.load(path)


def test_tf_pickle_layout_and_build_module_src_never_runs(tmp_path):
    g, d = stylegan2_variables(8, 32, 16, 16, 2)
    marker = tmp_path / "tensorflow-code-ran"
    src = f"open({str(marker)!r}, 'w').close()\nimport tensorflow as tf\n"
    own, mapping, synthesis = _split(g)
    kw = _sg2_kwargs()
    comps = {"mapping": tf_network("G_mapping", "G_mapping", kw, mapping, build_module_src=src),
             "synthesis": tf_network("G_synthesis", "G_synthesis_stylegan2", kw, synthesis, build_module_src=src)}
    G = tf_network("G", "training.networks_stylegan2.G_main", kw, own, comps, build_module_src=src)
    D = tf_network("D", "training.networks_stylegan2.D_stylegan2",
                   {k: v for k, v in kw.items() if k in tf_pickle.STYLEGAN2_D}, d, build_module_src=src)
    path = write_tf_pickle(tmp_path / "armed.pkl", G, D, G)
    raw = path.read_bytes()
    ops = [op.name for op, _, _ in pickletools.genops(raw)]
    assert raw[:2] == b"\x80\x04" and "NEWOBJ" in ops and "BUILD" in ops       # protocol 4, NEWOBJ + BUILD(state)
    with armed_nvlabs_modules(), pytest.raises(ModuleNotFoundError):              # TF's own __setstate__ runs it
        pickle.loads(raw)
    assert marker.exists()
    marker.unlink()
    info = model_zoo.describe(path)
    assert info["format"] == "tf-pickle" and info["build_func_name"] == "training.networks_stylegan2.G_main"
    model_zoo.load(path)
    model_zoo.load(path, which="D")
    assert not marker.exists()


def test_unsupported_tf_networks_are_named(tmp_path):
    g, d = stylegan2_variables(8, 32, 16, 16, 2)
    Gs = tf_network("Gs", "training.networks.G_main", _sg2_kwargs(), g)
    path = write_tf_pickle(tmp_path / "ada_tf.pkl", Gs, tf_network("D", "training.networks.D_main", {}, d), Gs)
    with pytest.raises(CheckpointError, match=r"StyleGAN2-ADA's TensorFlow networks .*legacy\.py"):
        model_zoo.load(path)
    odd = tf_network("Gs", "training.networks_mystery.G_new", {}, {})
    path = write_tf_pickle(tmp_path / "odd.pkl", odd, odd, odd)
    with pytest.raises(CheckpointError, match=r"unknown TensorFlow network 'training\.networks_mystery\.G_new'"):
        model_zoo.load(path)


# -- recorded options of the wrong type ------------------------------------------------------------------------

def _write_bad(tmp_path, family, **bad):
    """A small TF-era pickle of `family` whose G static_kwargs (or D's, for keys starting 'D_') hold `bad`."""
    g_bad = {k: v for k, v in bad.items() if not k.startswith("D_")}
    d_bad = {k[2:]: v for k, v in bad.items() if k.startswith("D_")}
    if family == "progan":
        g, d = progan_variables(8, 32, 16)
        kwargs = dict(num_channels=3, resolution=8, label_size=0, fmap_base=32, fmap_max=16, **g_bad)
        return _write_progan(tmp_path, g, d, kwargs, name="bad.pkl")
    if family == "stylegan":
        g, d = stylegan_variables(8, 32, 16, 16, 16, 2)
        kwargs = dict(num_channels=3, resolution=8, label_size=0, fmap_base=32, fmap_max=16, latent_size=16,
                      dlatent_size=16, mapping_fmaps=16, mapping_layers=2, **g_bad)
        return _write_stylegan(tmp_path, g, d, kwargs, name="bad.pkl")
    g, d = stylegan2_variables(8, 32, 16, 16, 2)
    kwargs = _sg2_kwargs(**g_bad)
    dk = {**{k: v for k, v in kwargs.items() if k in tf_pickle.STYLEGAN2_D}, **d_bad}
    return _write_stylegan2(tmp_path, g, d, kwargs, name="bad.pkl", d_kwargs=dk)


BAD_STATIC_KWARGS = [
    ("stylegan2", "mapping_lrmul", "abc", r"mapping_lrmul must be a finite number, got 'abc'"),
    ("stylegan2", "mapping_lrmul", None, r"mapping_lrmul must be a finite number, got None"),
    ("stylegan2", "mapping_lrmul", float("inf"), r"mapping_lrmul must be a finite number, got inf"),
    ("stylegan2", "dlatent_avg_beta", True, r"dlatent_avg_beta must be a finite number or None, got True"),
    ("stylegan2", "truncation_psi", "0.5", r"truncation_psi must be a finite number or None, got '0.5'"),
    ("stylegan2", "architecture", "fancy", r"architecture must be one of 'orig', 'skip', 'resnet'"),
    ("stylegan2", "D_architecture", None, r"D architecture must be one of 'orig', 'skip', 'resnet', got None"),
    ("stylegan2", "resample_kernel", 3, r"resample_kernel=3 cannot be expressed"),
    ("stylegan", "mapping_lrmul", "abc", r"mapping_lrmul must be a finite number, got 'abc'"),
    ("stylegan", "fmap_decay", float("nan"), r"fmap_decay must be a finite number, got nan"),
    ("stylegan", "dlatent_avg_beta", "abc", r"dlatent_avg_beta must be a finite number or None, got 'abc'"),
    ("stylegan", "use_noise", "False", r"use_noise must be True or False, got 'False'"),
    ("stylegan", "fused_scale", "yes", r"fused_scale must be True, False or 'auto', got 'yes'"),
    ("progan", "fmap_decay", "abc", r"fmap_decay must be a finite number, got 'abc'"),
    ("progan", "use_pixelnorm", "False", r"use_pixelnorm must be True or False, got 'False'"),
    ("progan", "normalize_latents", 1.0, r"normalize_latents must be True or False, got 1.0"),
]


@pytest.mark.parametrize("family,key,value,message", BAD_STATIC_KWARGS,
                         ids=[f"{f}-{k}-{v!r}" for f, k, v, _ in BAD_STATIC_KWARGS])
def test_a_static_kwarg_of_the_wrong_type_is_one_clear_error(tmp_path, family, key, value, message):
    """Float, bool and choice options are checked like the integers: one line naming the option, never a raw
    ValueError / TypeError from float() (nor a string 'False' silently read as True)."""
    path = _write_bad(tmp_path, family, **{key: value})
    with pytest.raises(CheckpointError, match=rf"bad\.pkl: .*{message}") as err:
        model_zoo.load(path)
    assert "\n" not in str(err.value)


def test_cli_names_a_bad_tf_float_option_in_one_line(tmp_path):
    path = _write_bad(tmp_path, "stylegan2", mapping_lrmul="abc")
    assert_generate_refuses(path, tmp_path / "out", "mapping_lrmul must be a finite number, got 'abc'")


def test_numbers_of_any_kind_and_auto_fused_scale_still_load(tmp_path):
    path = _write_bad(tmp_path, "stylegan", mapping_lrmul=1, fmap_decay=np.float32(1.0), fused_scale="auto",
                      dlatent_avg_beta=np.float64(0.99), use_noise=np.bool_(True))
    info = model_zoo.describe(path)
    assert info["config"]["mapping_lr_multiplier"] == 1.0 and info["config"]["w_avg_beta"] == 0.99
    model_zoo.load(path)
