"""`ganbench generate` refuses what would leave a wrong image set behind: a diverged network's NaN output (black
PNGs that eval scores), an --outdir that already holds another set's images (a mixed set), duplicate seeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import model_zoo
from ganbench.checkpoint import save_checkpoint
from ganbench.cli import app
from ganbench.errors import ConfigError, NonFiniteError
from ganbench.generate import generate, generate_files, parse_seeds

RES = 16
runner = CliRunner()


def _checkpoint(path: Path, seed: int = 0, nan: bool = False) -> Path:
    torch.manual_seed(seed)
    spec = model_zoo.build("stylegan2", RES, preset="tiny")
    g = spec.G.state_dict()
    if nan:     # what a diverged run's snapshot holds
        g = {k: torch.full_like(v, math.nan) if v.is_floating_point() else v for k, v in g.items()}
    state = {"G": g, "D": spec.D.state_dict(), "G_ema": g, "cur_nimg": 0}
    return save_checkpoint(path, state, {"arch": "stylegan2", "config": spec.config, "resolution": RES})


def _one_error_line(result, *needles: str) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), result.output
    for needle in needles:
        assert needle in lines[0], result.output
    return lines[0]


def _files(folder: Path) -> dict[str, bytes]:
    """Every visible file under `folder` (what eval would read), by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


def _gen(path: Path, seeds: str, outdir: Path, *more: str):
    return runner.invoke(app, ["generate", str(path), "--seeds", seeds, "--outdir", str(outdir), "--device", "cpu",
                               *more])


# -- 1. a diverged network --------------------------------------------------------------------------

def test_a_diverged_network_is_refused_naming_checkpoint_and_seed_and_nothing_is_written(tmp_path):
    bad = _checkpoint(tmp_path / "network-snapshot-000000.020.pt", nan=True)
    out, grid = tmp_path / "g", tmp_path / "grid.png"
    line = _one_error_line(_gen(bad, "0-49", out, "--grid", str(grid)), str(bad), "seed 0", "NaN", "diverged")
    assert "Traceback" not in line
    assert not out.exists() and not grid.exists()           # no black PNG that eval would score
    with pytest.raises(NonFiniteError, match="seed 0"):
        generate_files(bad, [0, 1], outdir=out, device="cpu")
    with pytest.raises(NonFiniteError, match="seed 3"):     # the iterator API refuses too
        list(generate(model_zoo.load(bad), [3]))
    assert not out.exists()


class NanAtThirdSeed(torch.nn.Module):
    """Finite images for the first two seeds drawn, then NaN: a network that overflows for some latents only."""

    def __init__(self) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.img_resolution, self.img_channels = 4, 0, 2, 3
        self.w = torch.nn.Parameter(torch.zeros([]))
        self.calls = 0

    def forward(self, z, c, truncation_psi=1.0, noise_mode="const"):
        self.calls += 1
        value = math.nan if self.calls == 3 else 0.5
        return torch.full([1, 3, 2, 2], value, dtype=z.dtype)


def test_nan_at_a_later_seed_leaves_the_outdir_exactly_as_it_was(tmp_path, monkeypatch):
    import ganbench.generate as gen

    monkeypatch.setattr(gen, "load_generator", lambda *a, **k: NanAtThirdSeed())
    path = tmp_path / "net.pt"
    path.write_bytes(b"not read: load_generator is replaced")
    out = tmp_path / "imgs"
    out.mkdir()
    (out / "seed0000.png").write_bytes(b"an earlier run's image")    # overwritten only by a finished run
    before = _files(out)
    with pytest.raises(NonFiniteError, match=r"seed 7\b") as err:
        generate_files(path, [0, 5, 7, 9], outdir=out, grid=tmp_path / "grid.png", device="cpu")
    assert str(path) in str(err.value)
    assert _files(out) == before and sorted(p.name for p in out.iterdir()) == ["seed0000.png"]   # no temp left
    assert not (tmp_path / "grid.png").exists()
    result = _gen(path, "0,5,7", tmp_path / "new")
    _one_error_line(result, str(path), "seed 7")
    assert not (tmp_path / "new").exists()


# -- 2. an outdir holding another image set ------------------------------------------------------------

def test_images_of_another_set_in_the_outdir_are_refused_not_mixed(tmp_path):
    a, b = _checkpoint(tmp_path / "a.pt", seed=0), _checkpoint(tmp_path / "b.pt", seed=1)
    out = tmp_path / "imgs"
    assert _gen(a, "0-3", out).exit_code == 0
    before = _files(out)
    assert sorted(before) == [f"seed000{i}.png" for i in range(4)]
    line = _one_error_line(_gen(b, "0-1", out), str(out), "seed0002.png", "--overwrite")
    assert "2 image" in line
    assert _files(out) == before                                         # nothing written, nothing lost
    # images the user put there (any extension, also in subfolders, which eval reads too) count as another set
    (out / "more").mkdir()
    (out / "more" / "cat.jpg").write_bytes(b"jpeg")
    _one_error_line(_gen(a, "0-3", out), str(out), "cat.jpg")
    (out / "more" / "cat.jpg").unlink()
    # --overwrite: the folder ends up holding exactly this run's images
    ok = _gen(b, "0-1", out, "--overwrite")
    assert ok.exit_code == 0, ok.output
    assert sorted(_files(out)) == ["seed0000.png", "seed0001.png"]
    direct = generate_files(b, [0], grid=tmp_path / "b0.png", device="cpu")
    assert np.array_equal(np.asarray(Image.open(out / "seed0000.png")), np.asarray(Image.open(direct[0])))


def test_the_same_network_and_options_may_add_seeds_in_chunks_and_rerun(tmp_path):
    a, b = _checkpoint(tmp_path / "a.pt", seed=0), _checkpoint(tmp_path / "b.pt", seed=1)
    out = tmp_path / "imgs"
    assert _gen(a, "0-1", out).exit_code == 0
    chunk = _gen(a, "2-3", out)                      # NVlabs' way of making a big set: seed ranges in parts
    assert chunk.exit_code == 0, chunk.output
    again = _gen(a, "0-3", out)                      # the same command again replaces the same pictures
    assert again.exit_code == 0, again.output
    assert sorted(_files(out)) == [f"seed000{i}.png" for i in range(4)]
    before = _files(out)
    # another network, or other options of the same one, is another set
    _one_error_line(_gen(b, "4-5", out), str(out), "seed0000.png")
    _one_error_line(_gen(a, "4-5", out, "--trunc", "0.5"), str(out), "seed0000.png")
    assert _files(out) == before
    # a full replacement (every image there is rewritten) leaves one set: allowed, as gen_images.py
    full = _gen(b, "0-3", out)
    assert full.exit_code == 0, full.output
    assert _files(out) != before and sorted(_files(out)) == sorted(before)


def test_duplicate_seeds_are_refused_rather_than_miscounted(tmp_path):
    a = _checkpoint(tmp_path / "a.pt")
    with pytest.raises(ConfigError, match="seed 0 twice"):
        parse_seeds("0,0,1")
    with pytest.raises(ConfigError, match="seed 5 twice"):
        parse_seeds("0-9,5")
    _one_error_line(_gen(a, "0,0,1", tmp_path / "dup"), "--seeds", "seed 0 twice")
    assert not (tmp_path / "dup").exists()
    with pytest.raises(ConfigError, match="seed 1 twice"):
        generate_files(a, [1, 2, 1], outdir=tmp_path / "dup", device="cpu")
    ok = _gen(a, "0,1,2", tmp_path / "ok")
    assert ok.exit_code == 0 and "wrote 3 image(s)" in ok.output and len(_files(tmp_path / "ok")) == 3


def test_a_killed_runs_hidden_staging_folder_is_removed_by_the_next_run(tmp_path):
    import os

    from ganbench.generate import _host

    a = _checkpoint(tmp_path / "a.pt")
    out = tmp_path / "imgs"
    dead = out / f".ganbench-generate-{_host()}-{2 ** 22 + 12345}-abc123.tmp"   # above Linux's pid_max default
    alive = out / f".ganbench-generate-{_host()}-{os.getpid()}-def456.tmp"
    elsewhere = out / ".ganbench-generate-otherhost-12-ghi789.tmp"
    for folder in (dead, alive, elsewhere):
        folder.mkdir(parents=True)
        (folder / "seed0000.png").write_bytes(b"half a run")
    ok = _gen(a, "0", out)
    assert ok.exit_code == 0, ok.output
    assert not dead.exists() and alive.is_dir() and elsewhere.is_dir()
    assert sorted(_files(out)) == ["seed0000.png"]
    # a failed run into a new nested folder leaves none of the folders it made
    bad = _checkpoint(tmp_path / "bad.pt", nan=True)
    _one_error_line(_gen(bad, "0", tmp_path / "x" / "y" / "z"), "seed 0")
    assert not (tmp_path / "x").exists()


def test_overwrite_leaves_exactly_this_runs_seeds_also_after_parts_of_the_same_set(tmp_path):
    """`--seeds 0-19` then `--seeds 0-4 --overwrite` with the same network kept all 20 (the manifest counted them as
    this set's), though the help says --overwrite deletes the images this run would not replace."""
    a = _checkpoint(tmp_path / "a.pt")
    out = tmp_path / "imgs"
    assert _gen(a, "0-5", out).exit_code == 0
    r = _gen(a, "0-1", out, "--overwrite")
    assert r.exit_code == 0, r.output
    assert sorted(_files(out)) == ["seed0000.png", "seed0001.png"]
    assert _gen(a, "2-3", out).exit_code == 0                     # and parts may be added again afterwards
    assert sorted(_files(out)) == [f"seed000{i}.png" for i in range(4)]
