"""PPL and its perceptual distances: LPIPS equals the lpips package on the same weights; PPL properties."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from ganbench.errors import AssetError, ConfigError
from ganbench.features.lpips_distance import LPIPSDistance, perceptual_distance, resolve_distance_name
from ganbench.metrics import get_metric
from ganbench.metrics.context import MetricContext
from ganbench.metrics.ppl import crop_and_downsample, filtered_mean, path_lengths, slerp

RES = 32


class _Mapping(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int) -> None:
        super().__init__()
        self.num_ws = num_ws
        self.fc = nn.Linear(z_dim, w_dim)

    def forward(self, z, c=None, truncation_psi=1.0):
        z = z * z.square().mean(dim=1, keepdim=True).add(1e-8).rsqrt()  # pixel norm, as StyleGAN's mapping
        return self.fc(z).unsqueeze(1).repeat(1, self.num_ws, 1)


class _Synthesis(nn.Module):
    """Smooth images tanh(scale * (w @ basis)) plus per-pixel noise when noise_mode='random'."""

    def __init__(self, w_dim: int, scale: float, uses_latent: bool, noise_strength: float) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        basis = torch.randn(w_dim, 3, 8, 8, generator=g)
        self.register_buffer("basis", nn.functional.interpolate(basis, size=(RES, RES), mode="bilinear").flatten(1))
        self.register_buffer("const", torch.randn(3 * RES * RES, generator=g) * 0.5)
        self.scale, self.uses_latent, self.noise_strength = scale, uses_latent, noise_strength

    def forward(self, ws, noise_mode="const"):
        w = ws[:, 0] if self.uses_latent else torch.zeros_like(ws[:, 0])
        x = self.scale * (w @ self.basis) + self.const
        if noise_mode == "random":
            x = x + self.noise_strength * torch.randn_like(x)
        return torch.tanh(x).reshape(-1, 3, RES, RES)


class StyleStandIn(nn.Module):
    """A tiny style-based generator following the Generator interface."""

    def __init__(self, scale: float = 0.3, uses_latent: bool = True, noise_strength: float = 0.3) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.c_dim, self.num_ws = 8, 8, 0, 2
        self.img_resolution, self.img_channels = RES, 3
        self.mapping = _Mapping(self.z_dim, self.w_dim, self.num_ws)
        self.synthesis = _Synthesis(self.w_dim, scale, uses_latent, noise_strength)

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        return self.synthesis(self.mapping(z, c, truncation_psi), noise_mode=noise_mode)


class NoWStandIn(nn.Module):
    """A ProGAN-like generator: no mapping/synthesis split."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 8, 0, RES, 3
        self.inner = StyleStandIn()

    def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
        return self.inner(z, c, truncation_psi, noise_mode)


def _mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).square().mean(dim=(1, 2, 3))


@pytest.fixture(scope="module")
def lpips_file(tmp_path_factory):
    """A random-backbone lpips model and its VGG16 trunk saved as a torchvision-format state dict."""
    import lpips

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net="vgg", pnet_rand=True, verbose=False).eval()
    state = {}
    for name, tensor in ref.net.state_dict().items():
        _slice, index, kind = name.split(".")
        state[f"features.{index}.{kind}"] = tensor.clone()
    path = tmp_path_factory.mktemp("lpips") / "vgg16-random.pth"
    torch.save(state, path)
    return ref, path


def test_lpips_distance_equals_lpips_package(lpips_file):
    ref, path = lpips_file
    ours = LPIPSDistance(weights=path)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 48, 48, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    with torch.no_grad():
        expected = ref(x, y).reshape(-1)
        got = ours(x, y)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert float(ours(x, x).abs().max()) < 1e-9
    assert ours.weights_sha256 and ours.lin_sha256
    with pytest.raises(ConfigError, match="at least 16 px"):
        ours(x[:, :, :8, :8], y[:, :, :8, :8])


def test_lpips_bad_file_is_one_line_error(tmp_path):
    bad = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(AssetError, match="missing features.0.bias"):
        LPIPSDistance(weights=bad)
    with pytest.raises(AssetError, match="does not exist"):
        LPIPSDistance(weights=tmp_path / "absent.pth")


def test_auto_falls_back_to_shapes_net_offline(tmp_path, monkeypatch, lpips_file):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANBENCH_ASSETS", raising=False)
    assert resolve_distance_name("auto") == "shapes-net"
    assert resolve_distance_name("auto", lpips_file[1]) == "lpips-vgg16"
    assert get_metric("ppl_wend").params()["distance"] == "shapes-net"
    with pytest.raises(ConfigError, match="unknown perceptual distance"):
        resolve_distance_name("lpips-alex")
    with pytest.raises(ConfigError, match="unknown perceptual distance"):
        get_metric("ppl_zend", distance="lpips-alex")


def test_slerp_endpoints_and_constant_speed():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    unit = lambda v: v / v.norm(dim=1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(slerp(a, b, torch.zeros(5, 1)), unit(a))
    torch.testing.assert_close(slerp(a, b, torch.ones(5, 1)), unit(b), atol=1e-6, rtol=0)
    angle = torch.acos((unit(a) * unit(b)).sum(1))
    mid = slerp(a, b, torch.full((5, 1), 0.25))
    torch.testing.assert_close(torch.acos((mid * unit(a)).sum(1).clamp(-1, 1)), 0.25 * angle, atol=1e-5, rtol=0)


def test_percentile_filter_matches_hand_count():
    values = np.arange(1, 201, dtype=np.float64)  # 1st pct 'lower' = 2, 99th 'higher' = 199
    assert filtered_mean(values) == pytest.approx(np.mean(np.arange(2, 200)))
    values[-1] = 1e9  # an outlier is dropped
    assert filtered_mean(values) == pytest.approx(np.mean(np.arange(2, 200)))


def test_crop_and_downsample():
    img = torch.arange(2 * 3 * 512 * 512, dtype=torch.float32).reshape(2, 3, 512, 512)
    out = crop_and_downsample(img, 512, crop=False)
    assert out.shape == (2, 3, 256, 256)
    assert float(out[0, 0, 0, 0]) == pytest.approx(float(img[0, 0, :2, :2].mean()))
    assert crop_and_downsample(img[:, :, :64, :64], 64, crop=True).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("space", ["z", "w"])
def test_latent_ignoring_generator_has_zero_ppl_despite_noise(space):
    G = StyleStandIn(uses_latent=False, noise_strength=0.5).eval()
    d = path_lengths(G, _mse, 24, space=space, sampling="full", batch_size=8, seed=0)
    assert d.shape == (24,)
    assert np.all(d == 0.0)  # identical noise within a pair, no latent dependence


@pytest.mark.parametrize("space,sampling", [("z", "full"), ("w", "full"), ("z", "end"), ("w", "end")])
def test_jumpier_generator_scores_higher(space, sampling):
    calm = filtered_mean(path_lengths(StyleStandIn(scale=0.2), _mse, 64, space, sampling, batch_size=32, seed=1))
    jumpy = filtered_mean(path_lengths(StyleStandIn(scale=0.8), _mse, 64, space, sampling, batch_size=32, seed=1))
    assert 0 < calm < jumpy


def test_w_lerp_matches_finite_difference_by_hand():
    """For a linear synthesis the per-sample value is |d img/dt|^2 eps^2 / eps^2, known in closed form."""
    G = StyleStandIn(scale=1.0, noise_strength=0.0)
    G.synthesis.forward = lambda ws, noise_mode="const": (ws[:, 0] @ G.synthesis.basis).reshape(-1, 3, RES, RES)
    d = path_lengths(G, _mse, 8, "w", "full", epsilon=1e-2, batch_size=8, seed=3)
    gen = torch.Generator().manual_seed(3)
    torch.rand([8, 1], generator=gen)
    z0, z1 = torch.randn([16, G.z_dim], generator=gen).chunk(2)
    with torch.no_grad():
        w0, w1 = G.mapping(z0)[:, 0], G.mapping(z1)[:, 0]
        step = ((w1 - w0) @ G.synthesis.basis) * 1e-2
    expected = step.square().mean(dim=1) / 1e-4
    np.testing.assert_allclose(d, expected.double().numpy(), rtol=1e-3)


def test_w_space_needs_a_style_generator():
    with pytest.raises(ConfigError, match="no W space"):
        path_lengths(NoWStandIn(), _mse, 4, space="w")
    ctx = MetricContext(generator=NoWStandIn(), n_gen=4, cache_dir=False)
    with pytest.raises(ConfigError, match="W space"):
        get_metric("ppl_wend").compute(ctx)
    with pytest.raises(ConfigError, match="generator network"):
        get_metric("ppl_zend").compute(MetricContext(generator=torch.zeros(4, 3, RES, RES, dtype=torch.uint8),
                                                     n_gen=4, cache_dir=False))


def test_metric_with_lpips_through_context(lpips_file):
    _, path = lpips_file
    torch.manual_seed(0)
    ctx = MetricContext(generator=StyleStandIn(scale=0.4).eval(), n_gen=16, cache_dir=False)
    m = get_metric("ppl_wend", distance="lpips-vgg16", distance_weights=str(path), batch_size=8)
    out = m.compute(ctx)
    assert set(out) == {"ppl_wend"} and math.isfinite(out["ppl_wend"]) and out["ppl_wend"] > 0
    assert m.params()["distance"] == "lpips-vgg16"
    alias = get_metric("ppl2_wend", distance="lpips-vgg16", distance_weights=str(path), batch_size=8, n_gen=16)
    assert alias.compute(ctx) == {"ppl2_wend": out["ppl_wend"]}  # NVlabs' name for the same measurement
    flat = MetricContext(generator=StyleStandIn(uses_latent=False).eval(), n_gen=8, cache_dir=False)
    assert m.compute(flat)["ppl_wend"] == 0.0


def test_shapes_net_distance_is_the_unweighted_lpips_recipe(tmp_path, monkeypatch):
    from ganbench.data.shapes import ShapesDataset
    from ganbench.features import get_extractor

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("GANBENCH_ASSETS", raising=False)
    dist = perceptual_distance("auto")
    assert dist.name == "shapes-net"
    data = ShapesDataset(n=6, resolution=32, seed=0)
    imgs = torch.stack([data[i][0] for i in range(6)]).float() / 127.5 - 1
    x, y = imgs[:3], imgs[3:]
    got = dist(x, y)
    maps = get_extractor("shapes-net").feature_maps((torch.cat([x, y]) + 1) * 127.5)
    expected = torch.zeros(3)
    for m in maps:  # per layer: channel-normalise, squared difference, sum channels, mean over space
        a, b = m[:3], m[3:]
        a = a / (a.norm(dim=1, keepdim=True) + 1e-10)
        b = b / (b.norm(dim=1, keepdim=True) + 1e-10)
        expected += ((a - b) ** 2).sum(1).mean((1, 2))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert float(dist(x, x).abs().max()) == 0.0 and bool((got > 0).all())


def test_default_metric_uses_shapes_net_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("GANBENCH_ASSETS", raising=False)
    ctx = MetricContext(generator=StyleStandIn(scale=0.4).eval(), n_gen=16, cache_dir=False)
    m = get_metric("ppl_zfull", batch_size=8)
    out = m.compute(ctx)
    assert out["ppl_zfull"] > 0 and m.params()["distance"] == "shapes-net"


def test_deterministic_in_seed():
    G = StyleStandIn(scale=0.5, noise_strength=0.3)
    a = path_lengths(G, _mse, 16, "z", "full", batch_size=8, seed=5)
    b = path_lengths(G, _mse, 16, "z", "full", batch_size=8, seed=5)
    c = path_lengths(G, _mse, 16, "z", "full", batch_size=8, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_conditional_generator_gets_dataset_labels_and_progress_is_reported():
    from ganbench.data.shapes import ShapesDataset

    seen, calls = [], []

    class Conditional(StyleStandIn):
        def __init__(self):
            super().__init__()
            self.c_dim = 4

        def forward(self, z, c=None, truncation_psi=1.0, noise_mode="const"):
            seen.append(c)
            return super().forward(z, c, truncation_psi, noise_mode)

    ctx = MetricContext(generator=Conditional(), real=ShapesDataset(n=20, resolution=RES), n_gen=6, cache_dir=False,
                        progress=lambda stage, done, total: calls.append((stage, done, total)))
    get_metric("ppl_zend", batch_size=4, distance="shapes-net").compute(ctx)
    assert all(c is not None and c.shape[1] == 4 and torch.all(c.sum(1) == 1) for c in seen)
    assert calls[-1] == ("ppl_zend", 6, 6)
    with pytest.raises(ConfigError, match="real dataset"):
        get_metric("ppl_zend").compute(MetricContext(generator=Conditional(), n_gen=2, cache_dir=False))


def test_auto_does_not_hide_a_wrong_lpips_file(tmp_path, monkeypatch):
    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GANBENCH_ASSETS", str(tmp_path / "assets"))
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "vgg16-397923af.pth").write_bytes(b"not the torchvision file")
    with pytest.raises(AssetError, match="sha256"):
        resolve_distance_name("auto")


@pytest.mark.parametrize("family,space", [("stylegan2", "w"), ("stylegan2", "z"), ("stylegan3-t", "w")])
def test_ppl_runs_fp16_layers_with_force_fp32(family, space):
    """NVlabs' PPL calls the synthesis with force_fp32=True; every fp16-capable layer must receive it.

    (On CPU fp16 is never used, so the keyword itself is checked: on CUDA it decides the precision.)
    """
    import model_zoo

    torch.manual_seed(0)
    G = model_zoo.build(family, 16, preset="tiny", num_fp16_res=4).G.eval()
    fp16 = [m for m in G.modules() if getattr(m, "use_fp16", False)]
    assert fp16, "the test needs a network with fp16 layers"
    seen = []
    hooks = [m.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs.get("force_fp32")),
                                         with_kwargs=True) for m in fp16]
    try:
        values = path_lengths(G, _mse, 4, space=space, sampling="end", batch_size=4)
    finally:
        for h in hooks:
            h.remove()
    assert np.isfinite(values).all() and seen and all(flag is True for flag in seen), seen


def test_ppl_leaves_fp16_free_networks_alone():
    """ProGAN / StyleGAN have no fp16 layers: nothing extra is passed (their forward would ignore it anyway)."""
    from ganbench.metrics._generator import fp32_kwargs

    G = StyleStandIn()
    assert fp32_kwargs(G, G.synthesis) == {} and fp32_kwargs(G, G) == {}


def test_ppl_on_a_nan_generator_is_an_error_not_a_number():
    from ganbench.errors import NonFiniteError

    G = StyleStandIn()
    with torch.no_grad():
        G.mapping.fc.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="generator output"):
        path_lengths(G, _mse, 4, space="w", sampling="end", batch_size=4)
