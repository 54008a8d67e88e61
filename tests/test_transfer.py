"""`ganbench train --resume-from PATH --freeze-d N`: a new run from pretrained weights (NVlabs --resume / --freezed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import model_zoo
from foreign_formats import EasyDict, snapshot, write_pickle
from ganbench.checkpoint import load_checkpoint, save_checkpoint
from ganbench.cli import app
from ganbench.errors import CheckpointError, ConfigError
from ganbench.train import Trainer, TrainOptions
from ganbench.train.loop import latest_snapshot
from ganbench.train.transfer import discriminator_layers, freeze_d

RES = 16


def _pretrained(tmp_path: Path, name: str = "stylegan2", **overrides) -> tuple[Path, model_zoo.ModelSpec]:
    """A ganbench checkpoint of perturbed tiny networks (so a fresh build cannot pass for the loaded weights)."""
    torch.manual_seed(7)
    spec = model_zoo.build(name, RES, preset="tiny", **overrides)
    with torch.no_grad():
        for p in list(spec.G.parameters()) + list(spec.D.parameters()):
            p.add_(torch.randn_like(p) * 0.1)
    G_ema = model_zoo.build(name, RES, preset="tiny", **overrides).G
    state = {"G": spec.G.state_dict(), "D": spec.D.state_dict(), "G_ema": G_ema.state_dict(), "cur_nimg": 5000}
    path = save_checkpoint(tmp_path / "pretrained.pt", state, {"arch": name, "config": spec.config,
                                                               "resolution": RES, "kimg": 5.0})
    spec.G_ema = G_ema
    return path, spec


def _opts(tmp_path: Path, resume_from: Path | None, model: str = "stylegan2", **kw) -> TrainOptions:
    base = dict(model=model, data="shapes:32", resolution=RES, kimg=0.008, batch=4, seed=0, out=tmp_path / "run",
                snapshot_kimg=0.008, device="cpu", resume_from=resume_from)
    return TrainOptions(**{**base, **kw})


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_from_checkpoint_starts_a_new_run_from_its_weights(tmp_path):
    path, spec = _pretrained(tmp_path)
    trainer = Trainer(_opts(tmp_path, path))              # no --preset: the network config comes from the file
    assert _same(trainer.G, spec.G) and _same(trainer.D, spec.D) and _same(trainer.G_ema, spec.G_ema)
    assert trainer.cur_nimg == 0 and trainer.config["channel_base"] == spec.config["channel_base"]
    # NVlabs' resume settings: no EMA ramp-up, faster ADA, no D blur.
    assert trainer.train_cfg["ema_rampup"] is None and trainer.train_cfg["ada_kimg"] == 100
    trainer.run()
    ckpt = load_checkpoint(latest_snapshot(tmp_path / "run"))
    assert ckpt.state["cur_nimg"] == 8 and ckpt.metadata["train"]["resume_from"] == str(path)
    assert not _same(model_zoo.load(ckpt.path, which="G"), spec.G)        # and it trained on
    explicit = Trainer(_opts(tmp_path, path, out=tmp_path / "run2", train={"ema_rampup": 0.05}))
    assert explicit.train_cfg["ema_rampup"] == 0.05                        # the user's setting wins


def test_resume_from_nvlabs_pickle(tmp_path):
    _, spec = _pretrained(tmp_path, "stylegan2-ada")
    c = spec.config
    g = dict(z_dim=c["z_dim"], c_dim=0, w_dim=c["w_dim"], img_resolution=RES, img_channels=3,
             mapping_kwargs=EasyDict(num_layers=c["mapping_layers"]),
             synthesis_kwargs=EasyDict(channel_base=c["channel_base"], channel_max=c["channel_max"]))
    d = dict(c_dim=0, img_resolution=RES, img_channels=3, channel_base=c["channel_base"],
             channel_max=c["channel_max"], epilogue_kwargs=EasyDict(mbstd_group_size=c["mbstd_group_size"]))
    pkl = write_pickle(tmp_path / "network-snapshot-000200.pkl", snapshot(spec.G, spec.D, spec.G_ema, g, d))
    for model in ("stylegan2-ada", "stylegan2"):          # same networks, different training defaults
        trainer = Trainer(_opts(tmp_path, pkl, model=model, out=tmp_path / model))
        assert _same(trainer.G, spec.G) and _same(trainer.G_ema, spec.G_ema) and _same(trainer.D, spec.D)


@pytest.mark.parametrize("case", ["resolution", "family", "architecture", "conditional", "channels"])
def test_mismatches_stop_with_one_clear_line(tmp_path, case):
    if case == "conditional":
        path, _ = _pretrained(tmp_path, c_dim=3)
    else:
        path, _ = _pretrained(tmp_path)
    kw, error, message = {
        "resolution": ({"resolution": 32}, ConfigError, r"is a 16px network, not 32px"),
        "family": ({"model": "stylegan3-t"}, ConfigError, r"holds a stylegan2 network; a stylegan3-t run cannot"),
        "architecture": ({"network": {"channel_max": 16}}, CheckpointError,
                         r"\(G\) for a stylegan2 run does not fit .*shape mismatch"),
        "conditional": ({}, ConfigError, r"is conditional \(3 classes\): pass --cond"),
        "channels": ({"network": {"img_channels": 1}}, ConfigError, r"makes 3-channel images; the dataset has 1"),
    }[case]
    with pytest.raises(error, match=message) as err:
        Trainer(_opts(tmp_path, path, **kw))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()                 # nothing written


def _freezable_by_hand(architecture: str) -> list[str]:
    """NVlabs' freeze order for a 16px D: b16 (first block: fromrgb), then b8; skip only when residual."""
    per_block = ["conv0", "conv1"] + (["skip"] if architecture == "resnet" else [])
    return ["b16.fromrgb"] + [f"b16.{n}" for n in per_block] + [f"b8.{n}" for n in per_block]


@pytest.mark.parametrize("architecture", ["resnet", "orig"])
def test_freeze_d_freezes_the_first_layers_in_nvlabs_order(architecture):
    torch.manual_seed(0)
    D = model_zoo.build("stylegan2", RES, preset="tiny", d_architecture=architecture).D
    assert [name for name, _ in discriminator_layers(D)] == _freezable_by_hand(architecture)
    keys = list(D.state_dict())
    frozen = freeze_d(D, 4)
    assert frozen == _freezable_by_hand(architecture)[:4]
    assert sorted(D.state_dict()) == sorted(keys)           # names unchanged: checkpoints load either way
    trainable = {n for n, _ in D.named_parameters()}
    for name in frozen:
        assert not any(n.startswith(name + ".") for n in trainable)
    assert any(n.startswith(_freezable_by_hand(architecture)[4]) for n in trainable) and "b4.fc.weight" in trainable
    D.requires_grad_(True)                                   # what the loop does each phase: frozen stay frozen
    assert {n for n, p in D.named_parameters() if p.requires_grad} == trainable
    with pytest.raises(ConfigError, match="freezable layers"):
        freeze_d(model_zoo.build("stylegan2", RES, preset="tiny").D, 99)
    with pytest.raises(ConfigError, match="StyleGAN2/3 discriminators"):
        freeze_d(model_zoo.build("progan", RES, preset="tiny").D, 1)


def test_cli_resume_from_and_freeze_d_train_without_moving_frozen_layers(tmp_path):
    path, spec = _pretrained(tmp_path)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "--model", "stylegan2", "--data", "shapes:32", "--resolution", "16",
                                      "--kimg", "0.008", "--batch", "4", "--snapshot-kimg", "0.008", "--out", str(out),
                                      "--device", "cpu", "--no-progress", "--resume-from", str(path),
                                      "--freeze-d", "2"])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(latest_snapshot(out))
    assert ckpt.metadata["train"]["freeze_d"] == 2
    D = model_zoo.load(ckpt.path, which="D")                 # frozen weights load into a plain D
    before = spec.D.state_dict()
    for key in ("b16.fromrgb.weight", "b16.fromrgb.bias", "b16.conv0.weight", "b16.conv0.bias"):
        assert torch.equal(D.state_dict()[key], before[key]), key
    assert not torch.equal(D.state_dict()["b16.conv1.weight"], before["b16.conv1.weight"])
    bad = CliRunner().invoke(app, ["train", "--model", "stylegan2", "--resolution", "32", "--out",
                                   str(tmp_path / "bad"), "--resume-from", str(path), "--device", "cpu"])
    assert bad.exit_code == 2 and "is a 16px network, not 32px" in bad.output


def test_a_run_started_from_a_pretrained_file_resumes_from_any_folder(tmp_path, monkeypatch):
    """The --resume-from path was compared as typed: a rerun from another folder, or with the absolute path of the
    same file, was refused as '--set resume_from: recorded run1/x.pt, now /abs/run1/x.pt'; leaving the flag out
    blamed '--set ada_kimg', a setting the user never gave. The file is recorded absolute and compared as a file."""
    from ganbench.train.options import _same_file

    path, _ = _pretrained(tmp_path)
    Trainer(_opts(tmp_path, path)).run()
    assert load_checkpoint(latest_snapshot(tmp_path / "run")).metadata["train"]["resume_from"] == str(path.resolve())
    monkeypatch.chdir(tmp_path)
    again = Trainer(_opts(tmp_path, Path("pretrained.pt"), kimg=0.016))      # relative, same file: resumes
    assert again.cur_nimg == 8
    with pytest.raises(ConfigError, match=r"--resume-from: recorded .*pretrained.pt, now \(none\)") as err:
        Trainer(_opts(tmp_path, None, kimg=0.016, preset="tiny"))
    assert "ada_kimg" not in str(err.value)
    other = save_checkpoint(tmp_path / "other.pt", *_state_and_meta(path))
    with pytest.raises(ConfigError, match=r"--resume-from: recorded .*pretrained.pt, now .*other.pt"):
        Trainer(_opts(tmp_path, other, kimg=0.016))
    assert _same_file("run1/x.pt", str(tmp_path / "run1" / "x.pt"))          # snapshots that recorded it as typed
    assert not _same_file("run1/x.pt", str(tmp_path / "run2" / "x.pt")) and _same_file(None, None)


def _state_and_meta(path: Path):
    ckpt = load_checkpoint(path)
    return ckpt.state, ckpt.metadata
