"""What a person sees while training (issue 11): announce line, tick lines in any log, a bar only on a
terminal, TensorBoard event files beside stats.jsonl, and a folder lock."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import model_zoo
from _toy_family import build_toy
from ganbench.cli import app
from ganbench.errors import ConfigError
from ganbench.train import Trainer, TrainOptions, run_training
from ganbench.train.output import RunOutput, format_time, tick_line

runner = CliRunner()
TICK_FIELDS = ("tick", "kimg", "time", "sec/tick", "sec/kimg", "maintenance", "cpumem", "augment", "loss/G", "loss/D")


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> str:
    model_zoo.list_models()
    monkeypatch.setitem(model_zoo.MODELS._items, "toy", build_toy)
    return "toy"


def _stats(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "stats.jsonl").read_text().splitlines()]


def test_format_time_matches_nvlabs() -> None:
    assert [format_time(s) for s in (0, 42.4, 185, 7385, 93784)] == ["0s", "42s", "3m 05s", "2h 03m 05s",
                                                                      "1d 02h 03m"]


def test_tick_lines_go_to_stdout_without_a_terminal(toy: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--model", toy, "--data", "shapes:16", "-r", "8", "--kimg", "0.016", "--batch", "4",
            "--snapshot-kimg", "0.008", "--out", str(out), "--device", "cpu"]
    result = runner.invoke(app, args + ["--set", "augment_p=0.25", "--augpipe", "bgc"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("new run: toy 8px") and "shapes:16" in lines[0] and "16 images" in lines[0]
    assert "parameters" in lines[0] and "device cpu" in lines[0] and "augment bgc" in lines[0]
    ticks = [line for line in lines if line.startswith("tick ")]
    records = _stats(out)
    assert len(ticks) == len(records) == 2                      # every tick, though stdout is no terminal
    for line, record in zip(ticks, records):
        for field in TICK_FIELDS:
            assert field in line, line
        assert re.search(rf"kimg {record['kimg']:.3f}\b", line) and f"loss/G {record['loss/G']:.4f}" in line
        assert f"augment {record['augment_p']:.3f}" in line
    assert lines[-1].startswith("done: 0.016 kimg") and lines[-1].endswith("network-snapshot-000000.016.pt")
    assert "━" not in result.output and "\x1b[" not in result.output      # no progress bar in a log
    assert {"maintenance_sec", "cpumem_gb", "sec_per_tick"} <= set(records[0])

    again = runner.invoke(app, [*args[:8], "0.024", *args[9:], "--set", "augment_p=0.25", "--augpipe", "bgc"])
    assert again.exit_code == 0, again.output
    first = again.stdout.splitlines()[0]
    assert first.startswith("resuming from network-snapshot-000000.016.pt at kimg 0.016: toy 8px"), first
    assert [r["tick"] for r in _stats(out)] == [0, 1, 2]


def test_progress_bar_only_on_a_terminal(toy: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    opts = TrainOptions(model=toy, data="shapes:8", resolution=8, kimg=0.008, batch=4, seed=0, out=tmp_path / "a",
                        snapshot_kimg=0.004, device="cpu", progress=True)
    trainer = Trainer(opts)
    screen = io.StringIO()
    trainer.output.console = Console(file=screen, force_terminal=True, width=120)
    trainer.run()
    assert "0.008/0.008 kimg" in screen.getvalue()              # the bar, on the (fake) terminal
    printed = capsys.readouterr().out
    assert printed.count("\ntick ") + printed.startswith("tick ") == 2 and "0.008/0.008" not in printed
    plain = io.StringIO()
    trainer = Trainer(TrainOptions(**{**opts.__dict__, "out": tmp_path / "b"}))
    trainer.output.console = Console(file=plain, force_terminal=False)
    trainer.run()
    assert plain.getvalue() == ""


def test_quiet_prints_nothing_but_writes_stats(toy: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_training(toy, "shapes:8", 8, kimg=0.008, batch=4, seed=0, out=tmp_path, snapshot_kimg=1, device="cpu",
                 quiet=True)
    assert capsys.readouterr().out == "" and len(_stats(tmp_path)) == 1


def _scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_tensorboard_event_files_hold_the_tick_scalars(toy: str, tmp_path: Path) -> None:
    kw = dict(batch=4, seed=0, snapshot_kimg=0.008, tick_kimg=0.004, device="cpu", quiet=True)
    run_training(toy, "shapes:16", 8, kimg=0.016, out=tmp_path, **kw)
    assert list(tmp_path.glob("events.out.tfevents.*"))
    records = _stats(tmp_path)
    for tag in ("loss/G", "loss/D", "augment_p", "s_per_kimg"):
        got = _scalars(tmp_path, tag)
        assert [s for s, _ in got] == [r["cur_nimg"] for r in records] == [4, 8, 12, 16]
        assert [v for _, v in got] == pytest.approx([r[tag] for r in records], rel=1e-6)   # float32 in the file
    # an interrupted attempt logged ticks 12 and 16 but only its 8-image snapshot survived: the resumed
    # run's event file hides the orphaned events, so every step appears once, with the new values
    (tmp_path / "network-snapshot-000000.016.pt").unlink()
    run_training(toy, "shapes:16", 8, kimg=0.016, out=tmp_path, **kw)
    records = _stats(tmp_path)
    got = _scalars(tmp_path, "loss/G")
    assert [s for s, _ in got] == [r["cur_nimg"] for r in records] == [4, 8, 12, 16]
    assert [v for _, v in got] == pytest.approx([r["loss/G"] for r in records], rel=1e-6)


def test_without_tensorboard_only_stats_are_written(toy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)      # import fails as if not installed
    run_training(toy, "shapes:8", 8, kimg=0.008, batch=4, seed=0, out=tmp_path, snapshot_kimg=1, device="cpu")
    assert not list(tmp_path.glob("events.out.tfevents.*")) and len(_stats(tmp_path)) == 1
    printed = capsys.readouterr().out
    assert "| stats.jsonl in" in printed and "TensorBoard" not in printed


def test_a_run_folder_in_use_is_refused(tmp_path: Path) -> None:
    first = RunOutput(tmp_path)
    first.open()
    second = RunOutput(tmp_path)
    with pytest.raises(ConfigError, match="in use by another"):
        second.claim()
    first.close()
    second.claim()
    second.close()


def test_tick_line_shows_gpu_memory_and_lod_when_present() -> None:
    record = {"tick": 3, "kimg": 1.5, "sec": 65, "sec_per_tick": 2.0, "s_per_kimg": 4.0, "maintenance_sec": 0.5,
              "cpumem_gb": 1.25, "gpumem_gb": 2.5, "gpumem_reserved_gb": 3.0, "augment_p": 0.125, "lod": 1.5,
              "loss/G": 0.5, "loss/D": 1.25}
    line = tick_line(record, extra=("lod",))
    assert line.split() == ["tick", "3", "kimg", "1.500", "time", "1m", "05s", "sec/tick", "2.00", "sec/kimg", "4.00",
                            "maintenance", "0.50", "cpumem", "1.25", "gpumem", "2.50", "reserved", "3.00", "augment",
                            "0.125", "lod", "1.500", "loss/G", "0.5000", "loss/D", "1.2500"]


def test_stats_lines_are_strict_json_even_when_a_loss_diverges(tmp_path: Path) -> None:
    output = RunOutput(tmp_path, quiet=True)
    record = {"tick": 0, "kimg": 0.004, "cur_nimg": 4, "sec": 1.0, "sec_per_tick": 1.0, "s_per_kimg": 250.0,
              "maintenance_sec": 0.0, "cpumem_gb": 0.5, "augment_p": 0.0, "loss/G": float("nan"),
              "loss/D": float("inf")}
    output.tick(record)
    output.close()
    line = (tmp_path / "stats.jsonl").read_text()
    assert json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}")) == {
        **record, "loss/G": None, "loss/D": None}
