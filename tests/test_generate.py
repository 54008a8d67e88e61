"""`ganbench generate`: NVlabs gen_images.py semantics (seed -> float64 z, labels, SG3 transform, uint8), all families."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import model_zoo
from ganbench.checkpoint import save_checkpoint
from ganbench.cli import app
from ganbench.errors import ConfigError
from ganbench.generate import (class_label, generate, generate_files, parse_seeds, parse_vec2, seed_latent,
                               to_uint8)

RES = 16


class SpyG(torch.nn.Module):
    """Records what generate() passes in; outputs a fixed ramp so the uint8 conversion can be checked by hand."""

    def __init__(self, z_dim: int = 5, c_dim: int = 0) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = z_dim, c_dim, 2, 3
        self.w = torch.nn.Parameter(torch.zeros([]))
        self.mapping = object()   # has a W space: truncation allowed
        self.calls: list[dict] = []

    def forward(self, z, c, truncation_psi=1.0, noise_mode="random"):
        self.calls.append(dict(z=z.clone(), c=c.clone(), psi=truncation_psi, noise_mode=noise_mode))
        return torch.tensor([-2.0, -1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 2.0, 0.25, -0.25, 0.7, 1e-3],
                            dtype=z.dtype).reshape(1, 3, 2, 2)


def test_parse_seeds_and_vectors_like_gen_images():
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("1,2,5-7") == [1, 2, 5, 6, 7]
    assert parse_vec2("0.3,1") == (0.3, 1.0)
    for bad in ("a", "3-1", "1,,2", str(2 ** 32)):
        with pytest.raises(ConfigError):
            parse_seeds(bad)
    with pytest.raises(ConfigError, match="two numbers"):
        parse_vec2("1")


def test_seed_s_uses_randomstate_s_randn_as_float64():
    G = SpyG(z_dim=7)
    out = dict(generate(G, [0, 42], truncation_psi=0.7, noise_mode="none"))
    assert list(out) == [0, 42]
    for seed, call in zip((0, 42), G.calls):
        expected = np.random.RandomState(seed).randn(1, 7)
        assert call["z"].dtype == torch.float64 and np.array_equal(call["z"].numpy(), expected)
        assert call["psi"] == 0.7 and call["noise_mode"] == "none"
        assert call["c"].shape == (1, 0)                       # zeros([1, 0]) for an unconditional network
    assert torch.equal(seed_latent(3, 4), torch.from_numpy(np.random.RandomState(3).randn(1, 4)))


def test_uint8_conversion_clamps_then_truncates():
    img = dict(generate(SpyG(), [0]))[0]
    # x*127.5+128, clamped to [0, 255], truncated towards zero, pixel by pixel (channel-last).
    x = np.array([-2.0, -1.0, -0.999, 0.0, 0.5, 0.999, 1.0, 2.0, 0.25, -0.25, 0.7, 1e-3]).reshape(3, 2, 2)
    by_hand = np.array([0, 0, 0, 128, 191, 255, 255, 255, 159, 96, 217, 128]).reshape(3, 2, 2)
    assert np.array_equal(np.floor(np.clip(x * 127.5 + 128, 0, 255)), by_hand)
    assert img.dtype == np.uint8 and img.shape == (2, 2, 3)
    assert np.array_equal(img, by_hand.transpose(1, 2, 0))
    assert to_uint8(torch.zeros(1, 1, 1, 1)).item() == 128


def test_labels_like_gen_images():
    assert class_label(SpyG(c_dim=0), None).shape == (1, 0)
    with pytest.raises(ConfigError, match=r"conditional \(4 classes\): pass --class"):
        class_label(SpyG(c_dim=4), None)
    with pytest.raises(ConfigError, match="out of range"):
        class_label(SpyG(c_dim=4), 4)
    assert class_label(SpyG(c_dim=4), 2).tolist() == [[0, 0, 1, 0]]
    with pytest.warns(UserWarning, match="--class 3 ignored"):
        assert class_label(SpyG(c_dim=0), 3).shape == (1, 0)


def _gen_images_transform(translate, angle):
    """gen_images.py's make_transform, written out: rotation by `angle` degrees, then translation."""
    s, c = np.sin(angle / 360.0 * np.pi * 2), np.cos(angle / 360.0 * np.pi * 2)
    return np.array([[c, s, translate[0]], [-s, c, translate[1]], [0, 0, 1]])


def test_stylegan3_gets_the_inverse_transform_identity_by_default():
    torch.manual_seed(0)
    G = model_zoo.build("stylegan3-t", RES, preset="tiny").G.eval()
    list(generate(G, [0], translate=(0.125, -0.25), rotate=30.0))
    expected = np.linalg.inv(_gen_images_transform((0.125, -0.25), 30.0))
    np.testing.assert_allclose(G.synthesis.input.transform.numpy(), expected, rtol=0, atol=1e-7)
    moved = dict(generate(G, [0]))[0]
    np.testing.assert_array_equal(G.synthesis.input.transform.numpy(), np.eye(3))   # reset to identity
    assert not np.array_equal(moved, dict(generate(G, [0], rotate=30.0))[0])
    with pytest.warns(UserWarning, match="only StyleGAN3"):
        list(generate(SpyG(), [0], rotate=5.0))


@pytest.mark.parametrize("name", model_zoo.list_models())
def test_generate_files_from_a_checkpoint_every_family(tmp_path, name):
    torch.manual_seed(0)
    spec = model_zoo.build(name, RES, preset="tiny")
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 0}
    path = save_checkpoint(tmp_path / "net.pt", state, {"arch": name, "config": spec.config, "resolution": RES})
    style = hasattr(spec.G, "mapping")
    files = generate_files(path, [0, 3], outdir=tmp_path / "out", grid=tmp_path / "grid.png", device="cpu",
                           truncation_psi=0.7 if style else 1.0)
    assert [f.name for f in files] == ["seed0000.png", "seed0003.png", "grid.png"]
    G = spec.G.eval()
    with torch.no_grad():
        direct = to_uint8(G(seed_latent(3, G.z_dim), torch.zeros([1, 0]), truncation_psi=0.7 if style else 1.0,
                            noise_mode="const"))[0].numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "seed0003.png")), direct)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert grid.shape == (RES, RES * 2, 3) and np.array_equal(grid[:, RES:], direct)   # 2 images: one row
    if not style:
        with pytest.raises(ConfigError, match="needs a W space"):
            generate_files(path, [0], outdir=tmp_path / "x", truncation_psi=0.7, device="cpu")


def test_cli_generate_writes_pngs_and_refuses_bad_input_with_one_line(tmp_path):
    torch.manual_seed(0)
    spec = model_zoo.build("stylegan2", RES, preset="tiny", c_dim=3)
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 0}
    path = save_checkpoint(tmp_path / "cond.pt", state, {"arch": "stylegan2", "config": spec.config,
                                                         "resolution": RES})
    runner = CliRunner()
    ok = runner.invoke(app, ["generate", str(path), "--seeds", "0-2", "--trunc", "0.7", "--class", "1",
                             "--outdir", str(tmp_path / "out"), "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".ganbench-generate.json",   # hidden: eval
                                                                     "seed0000.png", "seed0001.png", "seed0002.png"]
    for args, message in ((["--seeds", "0"], "pass --class"), (["--seeds", "x", "--class", "1"], "--seeds"),
                          (["--seeds", "0", "--class", "1", "--noise-mode", "loud"], "--noise-mode"),
                          (["--seeds", "0", "--class", "1", "--trunc", "nan"], "--trunc must be a finite"),
                          (["--seeds", "0", "--class", "1", "--trunc", "inf"], "--trunc must be a finite")):
        bad = runner.invoke(app, ["generate", str(path), *args, "--outdir", str(tmp_path / "bad")])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    assert not (tmp_path / "bad").exists()
    none = runner.invoke(app, ["generate", str(path), "--seeds", "0", "--class", "1"])
    assert none.exit_code == 2 and "--outdir" in none.output


def test_generate_files_from_an_nvlabs_pickle_match_the_network(tmp_path):
    path, spec = _tiny_nvlabs_pickle(tmp_path)
    c = spec.config
    generate_files(path, [7], outdir=tmp_path / "out", truncation_psi=0.5, device="cpu")
    with torch.no_grad():
        direct = to_uint8(spec.G.eval()(seed_latent(7, c["z_dim"]), torch.zeros([1, 0]), truncation_psi=0.5,
                                        noise_mode="const"))[0].numpy()
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out" / "seed0007.png")), direct)


def _tiny_checkpoint(tmp_path, name="stylegan2", **overrides):
    torch.manual_seed(0)
    spec = model_zoo.build(name, RES, preset="tiny", **overrides)
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": spec.G.state_dict(), "cur_nimg": 0}
    return save_checkpoint(tmp_path / f"{name}.pt", state, {"arch": name, "config": spec.config, "resolution": RES})


def _tiny_nvlabs_pickle(tmp_path):
    """A tiny StyleGAN2 written as an NVlabs snapshot pickle, and the ganbench build it holds."""
    from foreign_formats import nvlabs_kwargs, snapshot, write_pickle

    torch.manual_seed(1)
    spec = model_zoo.build("stylegan2", RES, preset="tiny")
    g, d = nvlabs_kwargs(spec)
    return write_pickle(tmp_path / "stylegan2-tiny.pkl", snapshot(spec.G, spec.D, spec.G, g, d)), spec


def _one_error_line(result, *needles):
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], result.output


def test_network_must_be_a_generator_ganbench_checkpoint_and_nvlabs_pickle(tmp_path):
    runner = CliRunner()
    for path in (_tiny_checkpoint(tmp_path), _tiny_nvlabs_pickle(tmp_path)[0]):
        for network in ("D", "foo"):
            out = tmp_path / f"out-{path.suffix[1:]}-{network}"
            bad = runner.invoke(app, ["generate", str(path), "--seeds", "0-1", "--network", network,
                                      "--outdir", str(out), "--device", "cpu"])
            _one_error_line(bad, f"--network {network!r}", "G_ema or G")
            assert ", D" not in bad.output and "Traceback" not in bad.output and not out.exists()
            with pytest.raises(ConfigError, match="G_ema or G"):
                generate_files(path, [0], outdir=out, which=network, device="cpu")
            assert not out.exists()
        assert "discriminator" in runner.invoke(app, ["generate", str(path), "--seeds", "0", "--network", "D",
                                                      "--outdir", str(tmp_path / "x")]).output
        ok = runner.invoke(app, ["generate", str(path), "--seeds", "0", "--network", "G",
                                 "--outdir", str(tmp_path / "g"), "--device", "cpu"])
        assert ok.exit_code == 0 and (tmp_path / "g" / "seed0000.png").is_file(), ok.output
    with pytest.raises(ConfigError, match="not a generator"):
        list(generate(torch.nn.Linear(2, 2), [0]))


def test_grid_cols_must_be_positive_checked_before_any_image(tmp_path, monkeypatch):
    import ganbench.generate as gen

    path = _tiny_checkpoint(tmp_path)
    runner = CliRunner()
    grid = tmp_path / "g.png"
    grid.write_bytes(b"already here")
    drawn = []
    real_draw = gen._draw
    monkeypatch.setattr(gen, "_draw", lambda *a, **k: drawn.append(1) or real_draw(*a, **k))
    for cols in ("-2", "0"):
        bad = runner.invoke(app, ["generate", str(path), "--seeds", "0-1", "--grid-cols", cols, "--grid", str(grid),
                                  "--outdir", str(tmp_path / "out"), "--device", "cpu"])
        _one_error_line(bad, f"--grid-cols", cols)
        with pytest.raises(ConfigError, match="--grid-cols"):
            generate_files(path, [0, 1], grid=grid, grid_cols=int(cols), device="cpu")
    assert not drawn and grid.read_bytes() == b"already here" and not (tmp_path / "out").exists()
    ok = runner.invoke(app, ["generate", str(path), "--seeds", "0-2", "--grid-cols", "1", "--grid", str(grid),
                             "--device", "cpu"])
    assert ok.exit_code == 0, ok.output
    assert np.asarray(Image.open(grid)).shape == (RES * 3, RES, 3)      # one image per row


def test_no_progress_bar_off_a_terminal(tmp_path):
    from ganbench.cli.common import progress_bar

    path = _tiny_checkpoint(tmp_path)
    result = CliRunner().invoke(app, ["generate", str(path), "--seeds", "0-2", "--outdir", str(tmp_path / "out"),
                                      "--device", "cpu"])      # CliRunner's streams are not terminals
    assert result.exit_code == 0, result.output
    assert "━" not in result.output and "0/3" not in result.output and "3/3" not in result.output, result.output
    assert "wrote 3 image(s)" in result.output
    with progress_bar("datasets", 2) as advance:      # the helper `datasets` uses too: a no-op off a terminal
        advance(2)


def test_bad_options_are_refused_before_the_progress_bar_starts(tmp_path, monkeypatch):
    from contextlib import contextmanager

    import ganbench.cli.generate_cmd as generate_cmd

    started = []

    @contextmanager
    def recording_bar(description, total):
        started.append(total)
        yield lambda k=1: None

    monkeypatch.setattr(generate_cmd, "progress_bar", recording_bar)
    path = _tiny_checkpoint(tmp_path, c_dim=3)
    runner = CliRunner()
    out = tmp_path / "out"
    for args, message in ((["--seeds", "x", "--class", "1"], "--seeds"),
                          (["--seeds", "0"], "pass --class"),
                          (["--seeds", "0", "--class", "7"], "--class 7"),
                          (["--seeds", "0", "--class", "1", "--grid-cols", "-1", "--grid", str(tmp_path / "g.png")],
                           "--grid-cols"),
                          (["--seeds", "0", "--class", "1", "--network", "D"], "--network"),
                          (["--seeds", "0", "--class", "1", "--noise-mode", "loud"], "--noise-mode"),
                          (["--seeds", "0", "--class", "1", "--translate", "1"], "--translate")):
        bad = runner.invoke(app, ["generate", str(path), *args, "--outdir", str(out), "--device", "cpu"])
        _one_error_line(bad, message)
        assert not started, (args, bad.output)
    assert not out.exists()
    ok = runner.invoke(app, ["generate", str(path), "--seeds", "0-1", "--class", "1", "--outdir", str(out),
                             "--device", "cpu"])
    assert ok.exit_code == 0 and started == [2], ok.output
