"""The training loop end to end: CLI, snapshots, exact resume, schedules, ADA on an overfitting D, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import model_zoo
from _toy_family import build_toy
from ganbench.checkpoint import load_checkpoint, snapshot_kimg
from ganbench.cli import app
from ganbench.data import ShapesDataset
from ganbench.errors import CheckpointError, ConfigError, ResumeMismatch
from ganbench.results import append_rows
from ganbench.train import Trainer, TrainOptions, run_training
from ganbench.train.data_stream import DataStream
from ganbench.train.loop import latest_snapshot
from ganbench.train.progressive import LodSchedule, make_schedule, process_reals

runner = CliRunner()


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the tiny test-only family `toy` for the duration of one test."""
    model_zoo.list_models()
    monkeypatch.setitem(model_zoo.MODELS._items, "toy", build_toy)
    return "toy"


@pytest.fixture(scope="module")
def tiny_cli_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    result = runner.invoke(app, ["train", "--model", "stylegan2", "--preset", "tiny", "--data", "shapes:64",
                                 "--resolution", "16", "--kimg", "0.064", "--batch", "4", "--snapshot-kimg", "0.032",
                                 "--out", str(out), "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def test_cli_help() -> None:
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for flag in ("--model", "--data", "--kimg", "--snapshot-kimg", "--resume", "--cond", "--augment", "--device"):
        assert flag in result.output


def test_tiny_cli_run_writes_snapshot_grid_and_stats(tiny_cli_run: Path) -> None:
    # snapshots every 0.032 kimg keep their own files (a whole-kimg name would overwrite the first one), after
    # the initial networks as kimg 0 (NVlabs' network-snapshot-000000)
    assert sorted(p.name for p in tiny_cli_run.glob("network-snapshot-*")) == [
        "network-snapshot-000000.032.pt", "network-snapshot-000000.064.pt", "network-snapshot-000000.pt"]
    assert load_checkpoint(tiny_cli_run / "network-snapshot-000000.pt").state["cur_nimg"] == 0
    assert load_checkpoint(tiny_cli_run / "network-snapshot-000000.032.pt").state["cur_nimg"] == 32
    ckpt = load_checkpoint(latest_snapshot(tiny_cli_run))
    assert ckpt.state["cur_nimg"] == 64 and ckpt.metadata["arch"] == "stylegan2"
    assert ckpt.metadata["dataset"] == "shapes-n64-r16-seed0" and ckpt.metadata["seed"] == 0
    assert {"G", "D", "G_ema", "optimizers", "augment_p", "pl_mean", "rng", "data_order"} <= set(ckpt.state)
    records = [json.loads(line) for line in (tiny_cli_run / "stats.jsonl").read_text().splitlines()]
    assert [r["cur_nimg"] for r in records] == [32, 64]
    assert {"kimg", "s_per_kimg", "sec", "augment_p", "lod", "loss/G", "loss/D"} <= set(records[-1])
    assert all(np.isfinite(r["loss/G"]) and np.isfinite(r["loss/D"]) for r in records)
    grid = Image.open(tiny_cli_run / "fakes000000.064.png")
    assert grid.size == (8 * 16, 4 * 16) and grid.mode == "RGB"
    assert (tiny_cli_run / "reals.png").exists() and (tiny_cli_run / "fakes_init.png").exists()


def test_saved_G_ema_loads_and_reproduces_output(tmp_path: Path) -> None:
    opts = TrainOptions(model="stylegan2", data="shapes:32", resolution=16, kimg=0.016, batch=4, seed=1,
                        out=tmp_path, preset="tiny", snapshot_kimg=1, device="cpu")
    trainer = Trainer(opts)
    trainer.run()
    G = model_zoo.load(latest_snapshot(tmp_path))
    z = torch.randn([3, G.z_dim], generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = trainer.G_ema(z, None, noise_mode="const")
        assert torch.equal(G(z, None, noise_mode="const"), expected)


def _weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _resume_matches(model: str, data: str, resolution: int, tmp_path: Path, stop: float, **kw) -> None:
    full = run_training(model, data, resolution, out=tmp_path / "full", **kw)
    part = tmp_path / "part"
    run_training(model, data, resolution, out=part, stop_kimg=stop, **kw)
    assert load_checkpoint(latest_snapshot(part)).state["cur_nimg"] == int(stop * 1000)
    run_training(model, data, resolution, out=part, **kw)    # resumes by default
    a = load_checkpoint(latest_snapshot(full)).state
    b = load_checkpoint(latest_snapshot(part)).state
    assert a["cur_nimg"] == b["cur_nimg"] == int(round(kw["kimg"] * 1000))
    for net in ("G", "D", "G_ema"):
        assert _weights_equal(a[net], b[net]), f"{net} differs after resume"
    assert a["augment_p"] == b["augment_p"] and a["pl_mean"] == b["pl_mean"]
    sa = [json.loads(x) for x in (full / "stats.jsonl").read_text().splitlines()]
    sb = [json.loads(x) for x in (part / "stats.jsonl").read_text().splitlines()]
    assert [r["cur_nimg"] for r in sa] == [r["cur_nimg"] for r in sb]
    assert [r["tick"] for r in sb] == list(range(len(sb)))
    assert [r["loss/G"] for r in sa] == [r["loss/G"] for r in sb]


def test_resume_is_bit_exact_with_ada_cond_mixing_and_lazy_regs(toy: str, tmp_path: Path) -> None:
    _resume_matches(toy, "shapes:40", 16, tmp_path, stop=0.064, kimg=0.192, batch=8, seed=3, snapshot_kimg=0.064,
                    tick_kimg=0.032, cond=True, augment="bgcfnc", augment_p=0.5, device="cpu")


def test_resume_is_bit_exact_for_progressive_progan(tmp_path: Path) -> None:
    _resume_matches("progan", "shapes:32", 16, tmp_path, stop=0.032, kimg=0.096, batch=8, seed=0,
                    snapshot_kimg=0.032, preset="tiny", device="cpu")
    lods = [json.loads(x)["lod"] for x in (tmp_path / "full" / "stats.jsonl").read_text().splitlines()]
    assert lods[0] > lods[-1] and lods == sorted(lods, reverse=True)


def test_lod_schedule_and_compression() -> None:
    s = LodSchedule(levels=3, train_kimg=600, fade_kimg=600)
    assert [s.lod(k) for k in (0, 599, 600, 900, 1200, 3600, 4200, 9999)] == [3, 3, 3, 2.5, 2, 0, 0, 0]
    assert s.schedule_kimg == 3 * 1200 + 600
    full = make_schedule({"start_res": 4, "kimg_per_phase": 600}, 32, 100_000)
    assert full == s
    tiny = make_schedule({"start_res": 4, "kimg_per_phase": 600, "fade_kimg": 600}, 32, 4.2)
    assert tiny.schedule_kimg == pytest.approx(4.2) and tiny.lod(0) == 3 and tiny.lod(3.6) == 0
    assert make_schedule(None, 32, 10) is None
    with pytest.raises(ConfigError, match="start_res"):
        make_schedule({"start_res": 6}, 32, 10)


def test_process_reals_matches_box_downscale() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(process_reals(x, 0.0), x)
    low = torch.nn.functional.avg_pool2d(x, 4).repeat_interleave(4, 2).repeat_interleave(4, 3)
    assert torch.allclose(process_reals(x, 2.0), low, atol=1e-6)
    half = process_reals(x, 1.5)
    mid = torch.nn.functional.avg_pool2d(x, 2).repeat_interleave(2, 2).repeat_interleave(2, 3)
    assert torch.allclose(half, 0.5 * mid + 0.5 * low, atol=1e-6)


def test_data_stream_is_deterministic_sharded_and_resumable() -> None:
    ds = ShapesDataset(n=10, resolution=8)
    a = DataStream(ds, batch=4, seed=0)
    first = [a.next_indices() for _ in range(6)]
    assert sorted(sum(first[:2], []) + first[2][:2]) == list(range(10))     # one epoch = a permutation
    b = DataStream(ds, batch=4, seed=0)
    b.next_indices()
    b.next_indices()
    c = DataStream(ds, batch=4, seed=0)
    c.load_state_dict(b.state_dict())
    assert [c.next_indices() for _ in range(4)] == first[2:]
    r0, r1 = DataStream(ds, 5, 0, rank=0, world=2), DataStream(ds, 5, 0, rank=1, world=2)
    assert sorted(r0.next_indices() + r1.next_indices()) == list(range(10))
    images, labels = DataStream(ds, 3, 0).next()
    assert images.dtype == torch.uint8 and images.shape == (3, 3, 8, 8) and labels.shape == (3, 4)


def test_ada_p_rises_when_D_overfits_a_tiny_dataset(toy: str, tmp_path: Path) -> None:
    run_training(toy, "shapes:16", 16, kimg=0.512, batch=16, seed=0, out=tmp_path, snapshot_kimg=1,
                 tick_kimg=0.128, augment="bgc", ada_kimg=5, loss="ns-r1", r1_gamma=0.01, r1_interval=16,
                 lr_d=0.005, lr_g=0.0005, device="cpu")
    records = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert max(r["ada/rt"] for r in records) > 0.6          # D is confident on the 16 reals ...
    assert max(r["augment_p"] for r in records) > 0.02     # ... so ADA raised p
    ckpt = load_checkpoint(latest_snapshot(tmp_path))
    assert ckpt.state["augment_p"] == pytest.approx(records[-1]["augment_p"])


def test_snapshots_are_named_after_the_boundary_they_cross(toy: str, tmp_path: Path) -> None:
    # batch 16 never lands on a multiple of 20 images: steps end at 32, 48, 64 and are named 20, 40 and
    # (the run's length) 50, as NVlabs names a snapshot by the kimg it stands for
    run_training(toy, "shapes:16", 8, kimg=0.05, batch=16, seed=0, out=tmp_path, snapshot_kimg=0.02, device="cpu")
    names = sorted((p.name for p in tmp_path.glob("network-snapshot-*.pt")), key=snapshot_kimg)
    assert names == ["network-snapshot-000000.pt", "network-snapshot-000000.020.pt",
                     "network-snapshot-000000.040.pt", "network-snapshot-000000.050.pt"]
    assert [load_checkpoint(tmp_path / n).state["cur_nimg"] for n in names] == [0, 32, 48, 64]
    assert {p.name for p in tmp_path.glob("fakes0*.png")} == {n.replace("network-snapshot-", "fakes")
                                                             .replace(".pt", ".png") for n in names}


def test_augment_flags_select_pipeline(toy: str, tmp_path: Path) -> None:
    base = dict(model=toy, data="shapes:8", resolution=8, kimg=0.008, batch=4, seed=0, out=tmp_path, device="cpu")
    assert Trainer(TrainOptions(**base)).augment_pipe is None
    forced = Trainer(TrainOptions(**base, augment=True))
    assert forced.augment_name == "bgc" and forced.ada is not None and forced.ada.target == 0.6
    assert Trainer(TrainOptions(**base, augment="blit")).augment_name == "blit"
    ada = Trainer(TrainOptions(**{**base, "model": "stylegan2-ada"}, preset="tiny", augment=False))
    assert ada.augment_pipe is None


def test_bad_options_are_one_line_errors(toy: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--batch 0"):
        run_training(toy, "shapes:8", 8, kimg=0.01, batch=0, seed=0, out=tmp_path)
    with pytest.raises(ConfigError, match="unknown training option"):
        Trainer(TrainOptions(toy, "shapes:8", 8, 0.01, 4, 0, tmp_path, train={"r1_gama": 1}))
    run_training(toy, "shapes:8", 8, kimg=0.008, batch=4, seed=0, out=tmp_path, snapshot_kimg=1)
    with pytest.raises(ResumeMismatch, match="use another --out or --no-resume"):
        run_training("stylegan2", "shapes:8", 8, kimg=0.008, batch=4, seed=0, out=tmp_path, preset="tiny")
    result = runner.invoke(app, ["train", "--model", "nosuchgan", "--out", str(tmp_path / "x"), "--kimg", "0.01"])
    assert result.exit_code == 2 and "unknown model 'nosuchgan'" in result.output


@pytest.mark.parametrize("name", model_zoo.list_models())
def test_every_family_trains_through_the_loop(name: str, tmp_path: Path) -> None:
    trainer = Trainer(TrainOptions(model=name, data="shapes:16", resolution=16, kimg=0.008, batch=4, seed=0,
                                   out=tmp_path, preset="tiny", snapshot_kimg=1, tick_kimg=0.004, device="cpu"))
    phases = [p.name for p in trainer.phases]
    assert phases[0].startswith("G") and phases[-1].startswith("D")
    trainer.run()
    records = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [r["cur_nimg"] for r in records] == [4, 8]
    assert all(np.isfinite(r["loss/G"]) and np.isfinite(r["loss/D"]) for r in records)
    spec = trainer.train_cfg
    if spec.get("progressive"):
        assert records[0]["lod"] > 0            # starts small: the schedule drives the networks' lod buffers
    if spec.get("blur_sigma"):
        # the loss blurs before augmenting (NVIDIA's order), so D's own blur stays off
        assert records[0]["blur_sigma"] > 0 and getattr(trainer.D, "blur_sigma", 0.0) == 0.0
    G = model_zoo.load(latest_snapshot(tmp_path))
    z = torch.randn([2, G.z_dim], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(G(z, None, noise_mode="const"), trainer.G_ema(z, None, noise_mode="const"))


def test_cli_set_overrides_parse_literals() -> None:
    from ganbench.cli.train_cmd import parse_overrides

    assert parse_overrides(["r1_gamma=0.5", "betas=(0, 0.9)", "augment=bgc", "style_mixing=0"]) == {
        "r1_gamma": 0.5, "betas": (0, 0.9), "augment": "bgc", "style_mixing": 0}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["r1_gamma"])


def test_optimizers_get_the_lazy_regularisation_correction(toy: str, tmp_path: Path) -> None:
    trainer = Trainer(TrainOptions(toy, "shapes:8", 8, 0.008, 4, 0, tmp_path, train={"lr_d": 0.004}))
    assert [p.name for p in trainer.phases] == ["Gmain", "Greg", "Dmain", "Dreg"]   # toy: pl and R1 every 4
    g, d = trainer.optimizers["G"].param_groups[0], trainer.optimizers["D"].param_groups[0]
    assert g["lr"] == pytest.approx(0.002 * 4 / 5) and d["lr"] == pytest.approx(0.004 * 4 / 5)
    assert d["betas"] == (0.0, pytest.approx(0.99 ** 0.8))
    plain = Trainer(TrainOptions(toy, "shapes:8", 8, 0.008, 4, 0, tmp_path, train={"loss": "wgan-gp"}))
    assert [p.name for p in plain.phases] == ["Gboth", "Dboth"]
    assert plain.optimizers["D"].param_groups[0]["lr"] == pytest.approx(0.002)


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    script = (
        "import sys; sys.path.insert(0, {tests!r}); import model_zoo; from _toy_family import build_toy; "
        "model_zoo.list_models(); model_zoo.MODELS._items['toy'] = build_toy; "
        "from ganbench.train import run_training; "
        "run_training('toy', 'shapes:40', 16, kimg=0.384, batch=8, seed=5, out=sys.argv[1], snapshot_kimg=0.064, "
        "augment='bgc', augment_p=0.3, device='cpu')"
    ).format(tests=str(Path(__file__).parent))
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "full")], check=True, env=env, timeout=600)
    part = tmp_path / "part"
    proc = subprocess.Popen([sys.executable, "-c", script, str(part)], env=env)
    deadline = time.time() + 300
    while not list(part.glob("network-snapshot-*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    subprocess.run([sys.executable, "-c", script, str(part)], check=True, env=env, timeout=600)
    a = load_checkpoint(latest_snapshot(tmp_path / "full")).state
    b = load_checkpoint(latest_snapshot(part)).state
    assert a["cur_nimg"] == b["cur_nimg"] == 384
    for net in ("G", "D", "G_ema"):
        assert _weights_equal(a[net], b[net]), net


# -- issue 15: trustworthy runs ------------------------------------------------------------------

def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_issue15_12_resume_only_when_recorded_settings_match(toy: str, tmp_path: Path) -> None:
    base = dict(kimg=0.008, batch=4, seed=0, snapshot_kimg=1, device="cpu")
    run_training(toy, "shapes:8", 8, out=tmp_path, **base)
    before = _files(tmp_path)
    changes = [
        ("shapes:16", {}, "--data"),
        ("shapes:8", {"batch": 8}, "--batch"),
        ("shapes:8", {"seed": 1}, "--seed"),
        ("shapes:8", {"r1_gamma": 0.5}, "r1_gamma"),
        ("shapes:8", {"augment": "bgc"}, "augment"),
    ]
    for data, change, flag in changes:
        with pytest.raises(ConfigError) as info:
            run_training(toy, data, 8, out=tmp_path, **{**base, **change})
        message = str(info.value)
        assert flag in message and "--no-resume" in message and "another --out" in message, message
        assert "replaced-<time>" in message and "overwrites" not in message   # what --no-resume really does
        assert "\n" not in message
    assert _files(tmp_path) == before                       # nothing written or changed
    result = runner.invoke(app, ["train", "--model", toy, "--data", "shapes:8", "-r", "8", "--batch", "8",
                                 "--kimg", "0.008", "--out", str(tmp_path), "--device", "cpu"])
    assert result.exit_code == 2 and "--batch" in result.output, result.output
    # the same settings with a longer --kimg resume; --no-resume starts over with other settings
    run_training(toy, "shapes:8", 8, out=tmp_path, **{**base, "kimg": 0.016})
    assert load_checkpoint(latest_snapshot(tmp_path)).state["cur_nimg"] == 16
    run_training(toy, "shapes:16", 8, out=tmp_path / "fresh", **base)
    run_training(toy, "shapes:8", 8, out=tmp_path / "fresh", resume=False, **{**base, "batch": 8})


@pytest.mark.parametrize("args,words", [
    (["--kimg", "nan"], ["--kimg", "nan"]),
    (["--kimg", "inf"], ["--kimg", "inf"]),
    (["--kimg", "0.0001"], ["--kimg"]),
    (["--snapshot-kimg", "nan"], ["--snapshot-kimg"]),
    (["--seed", "-1"], ["--seed", "-1"]),
    (["--seed", str(2 ** 32)], ["--seed"]),
    (["--set", "lr_g=nan"], ["lr_g", "nan"]),
    (["--set", "lr_g=abc"], ["lr_g", "abc"]),
    (["--set", "lr_g=-0.1"], ["lr_g"]),
    (["--set", "r1_gamma=inf"], ["r1_gamma", "inf"]),
    (["--set", "r1_gamma=1e999"], ["r1_gamma", "inf"]),
    (["--set", "betas=(0, 1.5)"], ["betas"]),
    (["--set", "r1_interval=0"], ["r1_interval"]),
    (["--set", "augment_p=2"], ["augment_p"]),
    (["--set", "style_mixing=True"], ["style_mixing"]),
    (["--set", "loss=nosuchloss"], ["nosuchloss"]),
    (["--set", "channel_base=1e999"], ["channel_base", "inf"]),
])
def test_issue15_13_every_train_option_is_validated_before_the_run(tmp_path: Path, args: list[str],
                                                                   words: list[str]) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", "stylegan2", "--preset", "tiny", "--data", "shapes:8",
                                 "-r", "8", "--kimg", "0.008", "--batch", "4", "--out", str(out), "--device",
                                 "cpu", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1, result.output
    for word in words:
        assert word in result.output, result.output
    assert not out.exists()


def test_issue15_19_next_run_removes_stale_temp_files_it_owns(toy: str, tmp_path: Path) -> None:
    base = dict(batch=4, seed=0, snapshot_kimg=0.004, device="cpu")
    run_training(toy, "shapes:8", 8, out=tmp_path, kimg=0.004, **base)
    owned = [".network-snapshot-000000.008.pt.k2j3h4.tmp", ".fakes000000.008.png.a8d7f6.tmp",
             ".stats.jsonl.x1y2z3.tmp", ".reals.png.q9w8e7.tmp"]
    foreign = [".notes.txt.abc123.tmp", "mine.tmp", ".network-snapshot-000000.008.pt.keep"]
    for name in owned + foreign:
        (tmp_path / name).write_bytes(b"partial")
    run_training(toy, "shapes:8", 8, out=tmp_path, kimg=0.008, **base)
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(owned) and set(foreign) <= names


def test_issue15_19_failed_train_creates_no_files(toy: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shapes = ShapesDataset(n=4, resolution=8)
    for i in range(4):
        Image.fromarray(shapes.image(i).transpose(1, 2, 0)).save(data / f"img{i}.png")
    raw = (data / "img3.png").read_bytes()
    (data / "img3.png").write_bytes(raw[: len(raw) // 2])       # header fine, pixels missing
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--model", toy, "--data", str(data), "-r", "8", "--kimg", "0.008",
                                 "--batch", "4", "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 2 and "img3.png" in result.output, result.output
    assert not out.exists()
    # a resumed run that fails before its first tick leaves the folder exactly as it was
    run_training(toy, "shapes:8", 8, kimg=0.008, batch=4, seed=0, out=out, snapshot_kimg=0.004, tick_kimg=0.004,
                 device="cpu")
    before = _files(out)

    def broken_step(self: Trainer) -> dict:
        raise ConfigError("step failed")

    import pytest as _pytest
    with _pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "step", broken_step)
        with pytest.raises(ConfigError, match="step failed"):
            run_training(toy, "shapes:8", 8, kimg=0.016, batch=4, seed=0, out=out, snapshot_kimg=0.004,
                         tick_kimg=0.004, device="cpu")
    assert _files(out) == before


def test_initial_snapshot_holds_the_untrained_networks_and_resumes_exactly(toy: str, tmp_path: Path) -> None:
    # NVlabs writes network-snapshot-000000 first, so a run's metrics start where it started
    kw = dict(kimg=0.048, batch=8, seed=3, snapshot_kimg=0.016, device="cpu", quiet=True)
    fresh = Trainer(TrainOptions(model=toy, data="shapes:16", resolution=8, out=tmp_path / "unused", **kw))
    full = run_training(toy, "shapes:16", 8, out=tmp_path / "full", **kw)
    init = load_checkpoint(full / "network-snapshot-000000.pt").state
    assert init["cur_nimg"] == 0 and init["batch_idx"] == 0
    for net in ("G", "D", "G_ema"):
        assert _weights_equal(init[net], getattr(fresh, net).state_dict())
    assert (full / "fakes000000.png").is_file()
    # a run interrupted before its first regular snapshot resumes from kimg 0 and ends bit-equal
    part = tmp_path / "part"
    part.mkdir()
    for name in ("network-snapshot-000000.pt", "reals.png", "fakes_init.png", "fakes000000.png"):
        (part / name).write_bytes((full / name).read_bytes())
    run_training(toy, "shapes:16", 8, out=part, **kw)
    a, b = (load_checkpoint(latest_snapshot(d)).state for d in (full, part))
    assert a["cur_nimg"] == b["cur_nimg"] == 48
    for net in ("G", "D", "G_ema"):
        assert _weights_equal(a[net], b[net]), f"{net} differs after resuming from kimg 0"
    # --no-initial-snapshot: only the trained snapshots
    off = run_training(toy, "shapes:16", 8, out=tmp_path / "off", initial_snapshot=False, **kw)
    assert sorted(snapshot_kimg(p.name) for p in off.glob("network-snapshot-*.pt")) == [0.016, 0.032, 0.048]


def test_no_resume_moves_the_previous_run_aside(toy: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # a fresh run must not leave the old run's later snapshots beside its own: resume and eval would mix them
    base = dict(seed=0, snapshot_kimg=0.008, device="cpu")
    run_training(toy, "shapes:8", 8, kimg=0.016, batch=4, out=tmp_path, **base)
    # eval's rows live in results.csv and its per-writer shards folder: both belong to the old run
    append_rows(tmp_path / "results.csv", [{"run": tmp_path.name, "checkpoint": "network-snapshot-000000.016.pt",
                                            "kimg": 0.016, "metric": "fid", "value": 1.0, "metric_group": "fid"}])
    (tmp_path / "notes.txt").write_text("mine")
    old = _files(tmp_path)
    run_training(toy, "shapes:8", 8, kimg=0.008, batch=8, out=tmp_path, resume=False, **base)
    assert sorted(p.name for p in tmp_path.glob("network-snapshot-*")) == ["network-snapshot-000000.008.pt",
                                                                           "network-snapshot-000000.pt"]
    assert load_checkpoint(tmp_path / "network-snapshot-000000.008.pt").metadata["train"]["batch"] == 8
    (moved,) = tmp_path.glob("replaced-*")
    assert _files(moved) == {k: v for k, v in old.items() if k != "notes.txt"}
    assert (tmp_path / "notes.txt").read_text() == "mine" and not (tmp_path / "results.csv").exists()
    assert not (tmp_path / "results.csv.shards").exists() and (moved / "results.csv.shards").is_dir()
    assert f"moved the previous run's {len(old)} files" in capsys.readouterr().out
    # resuming a finished run says so and touches nothing
    before = _files(tmp_path)
    run_training(toy, "shapes:8", 8, kimg=0.008, batch=8, out=tmp_path, **base)
    assert "already at kimg 0.008" in capsys.readouterr().out and _files(tmp_path) == before


def test_a_new_run_moves_an_old_runs_results_aside_even_without_its_snapshots(toy: str, tmp_path: Path) -> None:
    """Snapshots deleted, results.csv kept, a new run trained into the folder: its snapshots got the old names, so
    eval skipped them as done and reported the old run's numbers. The old results now move to replaced-<time>/."""
    base = dict(seed=0, snapshot_kimg=0.008, device="cpu", kimg=0.008, batch=8)
    run_training(toy, "shapes:8", 8, out=tmp_path, **base)
    append_rows(tmp_path / "results.csv", [{"run": tmp_path.name, "checkpoint": "network-snapshot-000000.008.pt",
                                            "kimg": 0.008, "metric": "fid", "value": 1.0, "metric_group": "fid"}])
    for snap in tmp_path.glob("network-snapshot-*"):
        snap.unlink()
    run_training(toy, "shapes:8", 8, out=tmp_path, **{**base, "seed": 7})
    assert not (tmp_path / "results.csv").exists()
    (moved,) = tmp_path.glob("replaced-*")
    assert (moved / "results.csv").is_file()
    assert load_checkpoint(tmp_path / "network-snapshot-000000.008.pt").metadata["seed"] == 7


def test_progressive_run_resumes_only_with_the_same_schedule(tmp_path: Path) -> None:
    # ProGAN's growing schedule is compressed to fit --kimg: another length would change lod mid-run
    base = dict(batch=8, seed=0, snapshot_kimg=0.016, preset="tiny", device="cpu", quiet=True)
    run_training("progan", "shapes:16", 16, kimg=0.032, out=tmp_path, stop_kimg=0.016, **base)
    with pytest.raises(ConfigError, match=r"--kimg: recorded 0.032, now 0.064 \(the growing schedule"):
        run_training("progan", "shapes:16", 16, kimg=0.064, out=tmp_path, **base)
    run_training("progan", "shapes:16", 16, kimg=0.032, out=tmp_path, **base)


def test_resume_with_a_state_dict_mismatch_names_the_keys(toy: str, tmp_path: Path) -> None:
    """Issue 15.15: resuming a snapshot whose G lacks a weight says which key, not torch's first line."""
    from ganbench.checkpoint import save_checkpoint

    run_training(toy, "shapes:16", 8, kimg=0.016, batch=16, seed=0, out=tmp_path, snapshot_kimg=0.016, device="cpu")
    path = latest_snapshot(tmp_path)
    ckpt = load_checkpoint(path)
    dropped = sorted(ckpt.state["G"])[0]
    ckpt.state["G"] = {k: v for k, v in ckpt.state["G"].items() if k != dropped}
    ckpt.state["G"]["surplus.weight"] = torch.zeros(1)
    save_checkpoint(path, ckpt.state, ckpt.metadata)
    with pytest.raises(CheckpointError, match=rf"{path.name}: G .*{dropped}.*surplus\.weight"):
        run_training(toy, "shapes:16", 8, kimg=0.032, batch=16, seed=0, out=tmp_path, snapshot_kimg=0.016,
                     device="cpu")


def test_batch_defaults_to_the_presets_published_batch(tmp_path: Path) -> None:
    """Without --batch a run takes its preset's batch (it used to be a fixed 16 that overrode every preset)."""
    # stylegan2-ada-pytorch cfg_specs 'auto', 1 GPU: mb = max(min(min(4096 // res, 32), 64), 1)
    assert model_zoo.default_batch("stylegan2-ada", 64, "auto") == 32
    assert model_zoo.default_batch("stylegan2-ada", 256, "auto") == 16
    assert model_zoo.default_batch("stylegan2", 64) == 32          # NVIDIA's README examples, --batch=32
    tiny = model_zoo.default_batch("stylegan2", 16, "tiny")
    trainer = Trainer(TrainOptions(model="stylegan2", data="shapes:32", resolution=16, kimg=0.016, batch=None,
                                   seed=0, out=tmp_path / "t", preset="tiny", device="cpu", quiet=True))
    assert trainer.opts.batch == tiny and trainer.batch_now == tiny
    result = CliRunner().invoke(app, ["train", "--model", "stylegan2", "--preset", "tiny", "--data", "shapes:32",
                                      "--resolution", "16", "--kimg", "0.016", "--out", str(tmp_path / "cli"),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"batch {tiny} " in result.output.splitlines()[0]


def test_cuda_rng_is_saved_and_restored_by_training_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Saved by position (get_rng_state_all), a resume on another index or with fewer GPUs visible restored
    another GPU's generator or failed; now the training device's generator goes to the training device.
    CUDA's RNG calls are stand-ins here (no GPU)."""
    from ganbench.train import loop

    states = {i: torch.tensor([10 + i], dtype=torch.uint8) for i in range(2)}
    written = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: states[torch.device(device).index])
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: written.append((int(state[0]), device)))
    saved = loop.rng_state(torch.device("cuda", 1))
    assert int(saved["cuda_device"][0]) == 11 and "cuda" not in saved
    loop.set_rng_state(saved, torch.device("cuda", 0))          # resumed on another GPU
    assert written == [(11, torch.device("cuda", 0))]
    older = {k: v for k, v in saved.items() if k != "cuda_device"} | {"cuda": [states[0], states[1]]}
    loop.set_rng_state(older, torch.device("cuda", 1))          # an older snapshot: by position
    loop.set_rng_state(older, torch.device("cuda", 5))          # fewer GPUs saved than this index: left alone
    loop.set_rng_state(saved, torch.device("cpu"))
    assert written == [(11, torch.device("cuda", 0)), (11, torch.device("cuda", 1))]


def test_resume_reads_the_snapshot_onto_the_cpu(toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """map_location=device put the numpy RNG keys on CUDA (.numpy() then failed) and Adam's step counts on
    the GPU; load_state_dict moves weights and moments to the parameters' device itself."""
    from ganbench.train import loop

    run_training(toy, "shapes:16", 8, out=tmp_path, kimg=0.008, batch=4, seed=0, snapshot_kimg=0.004, device="cpu")
    seen = []
    real_load = loop.load_checkpoint
    monkeypatch.setattr(loop, "load_checkpoint", lambda path, **kw: seen.append(kw) or real_load(path, **kw))
    run_training(toy, "shapes:16", 8, out=tmp_path, kimg=0.012, batch=4, seed=0, snapshot_kimg=0.004, device="cpu")
    assert seen and all(kw.get("map_location") == "cpu" for kw in seen)


def test_eval_opens_the_runs_own_data_with_the_crop_and_resize_it_trained_with(toy: str, tmp_path: Path,
                                                                                  monkeypatch) -> None:
    """A run trained with --crop center-wide:8 --resize box recorded only its data spec, so `eval RUN` scored it
    against centre-cropped Lanczos reals (mean |diff| 87 per pixel): the wrong real images, without a word. The
    checkpoint now records the crop and resize, and eval opens the run's data the same way."""
    from ganbench.evaluate import EvalOptions, evaluate
    from ganbench.results import read_results

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    (tmp_path / "wide").mkdir()
    for i in range(16):
        Image.fromarray(rng.integers(0, 256, size=(24, 40, 3), dtype=np.uint8)).save(tmp_path / "wide" / f"{i:02d}.png")
    run = tmp_path / "run"
    run_training(toy, str(tmp_path / "wide"), 16, kimg=0.016, batch=8, seed=0, out=run, snapshot_kimg=1,
                 crop="center-wide:8", resize="box", device="cpu")
    trained_on = load_checkpoint(latest_snapshot(run)).metadata["dataset"]
    evaluate([run], EvalOptions(metrics=["fid"], n=8, extractor="shapes-net"), out=tmp_path / "r.csv")
    assert set(read_results(tmp_path / "r.csv")["dataset"]) == {trained_on}


def test_a_run_trained_with_mirror_records_it_and_eval_says_how_nvlabs_scores_it(toy: str, tmp_path: Path,
                                                                                 monkeypatch) -> None:
    from ganbench.evaluate import EvalOptions, evaluate

    monkeypatch.setenv("GANBENCH_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    run_training(toy, "shapes:16", 16, kimg=0.016, batch=8, seed=0, out=run, snapshot_kimg=1, mirror=True,
                 device="cpu")
    assert load_checkpoint(latest_snapshot(run)).metadata["train"]["mirror"] is True
    summary = evaluate([run], EvalOptions(metrics=["fid"], n=8, extractor="shapes-net"), out=tmp_path / "r.csv")
    assert any("trained with x-flipped copies of its data (--mirror)" in w for w in summary.warnings), summary.warnings
    summary = evaluate([run], EvalOptions(metrics=["fid"], n=8, extractor="shapes-net", mirror=True),
                       out=tmp_path / "r.csv")
    assert summary.warnings == [] and set(summary.added["n_real"]) == {32}
    r = CliRunner().invoke(app, ["eval", str(run), "-m", "fid", "--n", "8", "--mirror", "--out", str(tmp_path / "c.csv")])
    assert r.exit_code == 0 and "x-flipped" not in r.output, r.output


def test_a_resume_with_another_crop_resize_or_mirror_names_the_flag(toy: str, tmp_path: Path) -> None:
    """The metadata records --crop, --resize and --mirror (eval reopens the run's data with them); a resume that
    changes one names that flag, not `--set mirror`."""
    from ganbench.data import open_dataset
    from ganbench.data.export import export_dataset

    data = str(export_dataset(open_dataset("shapes:16", resolution=16), tmp_path / "data"))
    run = tmp_path / "run"
    run_training(toy, data, 16, kimg=0.016, batch=8, seed=0, out=run, snapshot_kimg=1, device="cpu")
    for change, said in (({"mirror": True}, "--mirror: recorded False, now True"),
                         ({"resize": "box"}, "--resize: recorded None, now box")):
        with pytest.raises((ConfigError, ResumeMismatch), match=said):
            run_training(toy, data, 16, kimg=0.032, batch=8, seed=0, out=run, snapshot_kimg=1, device="cpu", **change)
